"""What a worker process imports: never the migration tooling (alembic, SQLAlchemy, Mako).

A starting worker (and beat) checks its namespace's revision against the shipped
migrations; that check reads the migration files (``stem_pg.schema.revisions``), so
a worker's memory holds none of alembic's, SQLAlchemy's or Mako's modules (about
20 MB: bench/RESULTS.md, "Worker memory").
"""

from __future__ import annotations

import json
import subprocess
import sys

NEVER = ("alembic", "sqlalchemy", "mako", "pygments", "starlette", "jinja2", "uvicorn")

_WORKER_START = """
import json, sys
import stem_pg.cli.worker_cmd
from stem_pg.schema.health import check_migrated
from stem_pg.worker import supervisor, worker
from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(sys.argv[1], namespace=sys.argv[2], config=StemConfig())


@app.task(name="noop")
def noop() -> None:
    pass


check_migrated(app.url, app.namespace)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_starting_worker_imports_no_migration_tooling(database_url: str, namespace: str) -> None:
    """A fresh interpreter does what ``stem worker run`` does before its loops start: imports
    the CLI and the worker, loads an app and checks that the namespace is migrated."""
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_START, database_url, namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert imported.isdisjoint(NEVER), sorted(imported & set(NEVER))
    assert "psycopg" in imported  # it did load the worker's side
