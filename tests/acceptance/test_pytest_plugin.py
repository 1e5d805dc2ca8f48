"""The pytest plugin (stem_pg.testing.pytest_plugin), as a user's suite meets it: pytest run in a
scratch project that only installs stem_pg, finding the plugin through its entry point."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from _pytest.fixtures import getfixturemarker

from stem_pg.client.app import Stem
from stem_pg.testing.pytest_plugin import load_app
from tests import conftest as project_conftest
from tests.helpers import stem_env

APP = """
from stem_pg import Stem

app = Stem(namespace="production")   # the fixture binds it to a test namespace instead

@app.task(name="shop.total")
def total(prices: list[int]) -> int:
    return sum(prices)
"""

TESTS = """
from pathlib import Path

from stem_pg.testing import assert_enqueued, run_until_idle
from shop import app, total


def test_the_app_is_bound_to_a_fresh_namespace(stem_app, stem_namespace, stem_database_url):
    assert stem_app is app and app.namespace == stem_namespace != "production"
    assert app.url == stem_database_url
    Path("namespaces.txt").open("a").write(stem_namespace + "\\n")
    handle = total.delay([1, 2, 3])
    assert_enqueued(total, kwargs={"prices": [1, 2, 3]})
    (outcome,) = run_until_idle(app)
    assert outcome.result == 6 and handle.get(timeout=5) == 6


def test_each_test_has_its_own_namespace(stem_app, stem_namespace):
    Path("namespaces.txt").open("a").write(stem_namespace + "\\n")
    assert app.testing.enqueued_jobs() == []


def test_eager_mode_needs_no_fixture():
    with app.testing.eager():
        assert total.delay([4, 5]).get() == 9
"""


def _pytest(project: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = stem_env(STEM_TEST_DATABASE_URL=database_url, PYTHONPATH=str(project))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_plugin_is_registered_as_a_pytest_entry_point() -> None:
    found = importlib.metadata.entry_points(group="pytest11", name="stem_pg")
    assert [entry.value for entry in found] == ["stem_pg.testing.pytest_plugin"]


def test_the_plugin_is_harmless_where_its_fixtures_are_not_used(request: pytest.FixtureRequest) -> None:
    """This suite loads it too (the entry point): it adds three ``stem_*`` fixtures, none of them
    autouse, and none that this project's conftest defines."""
    plugin = request.config.pluginmanager.get_plugin("stem_pg")
    assert plugin is not None
    markers = {name: getfixturemarker(getattr(plugin, name)) for name in dir(plugin)}
    fixtures = {name: marker for name, marker in markers.items() if marker is not None}
    assert sorted(fixtures) == ["stem_app", "stem_database_url", "stem_namespace"]
    assert not any(marker.autouse for marker in fixtures.values())
    assert [name for name in dir(project_conftest) if name.startswith("stem_")] == []


def test_a_users_suite_gets_a_bound_app_and_a_namespace_per_test(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "shop.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_shop.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nstem_app = shop:app\n")

    done = _pytest(tmp_path, database_url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    names = (tmp_path / "namespaces.txt").read_text().split()
    assert len(set(names)) == 2
    with psycopg.connect(database_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)", [names]).fetchone()
    assert left == (0,)  # dropped after each test


def test_stem_app_without_an_app_says_how_to_give_one(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(stem_app):\n    pass\n")
    done = _pytest(tmp_path, database_url)
    assert done.returncode != 0
    assert "the stem_app fixture needs your app: set `stem_app = mypackage.tasks:app`" in done.stdout


def test_stem_app_names_an_app_or_a_function_that_builds_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "factory.py").write_text(
        "from stem_pg import Stem\n\ndef create_app():\n    return Stem(namespace='x')\n\nnot_an_app = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(load_app("factory:create_app"), Stem)
    with pytest.raises(pytest.UsageError, match="expected module:attribute, got 'factory'"):
        load_app("factory")
    with pytest.raises(pytest.UsageError, match="'factory' has no attribute 'nothing'"):
        load_app("factory:nothing")
    with pytest.raises(pytest.UsageError, match="factory:not_an_app is not a Stem app"):
        load_app("factory:not_an_app")
