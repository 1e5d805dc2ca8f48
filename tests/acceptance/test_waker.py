"""The waker thread announces committed enqueues even when the program exits right after them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psycopg
from psycopg import sql

from tests.helpers import REPO_ROOT, stem_env

SCRIPT = textwrap.dedent(
    """
    import sys
    from stem_pg import Stem, StemConfig
    app = Stem(sys.argv[1], namespace=sys.argv[2], config=StemConfig())
    with app.waker.enqueueing():  # as if another thread were enqueueing: the waker thread sends
        app.enqueue("t", {}, queue="from-a-script")
    # no app.close(): the interpreter's exit must still send the wake-up
    """
)


def test_a_script_that_exits_right_after_enqueue_still_wakes_workers(
    database_url: str, namespace: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"{namespace}:jobs")))
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url, namespace],
            cwd=REPO_ROOT, env=stem_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        notes = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert notes == ["from-a-script"]
