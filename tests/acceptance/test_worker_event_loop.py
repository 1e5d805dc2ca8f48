"""``stem worker run --event-loop``: the workers' handlers run on the loop it names; a name
it does not know, or uvloop without the extra, is one line at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import ConfigError
from stem_pg.worker import startup
from tests.acceptance.workerapp import Workers
from tests.helpers import stem_env


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("flag", "module"), [((), "asyncio"), (("--event-loop", "uvloop"), "uvloop")])
def test_async_handlers_run_on_the_loop_the_flag_names(
    workers: Workers, database_url: str, namespace: str, flag: tuple[str, ...], module: str
) -> None:
    pytest.importorskip("uvloop")
    app = Stem(database_url, namespace=namespace, config=StemConfig())
    try:
        result = app.enqueue("acc.loop")
        workers.start(extra=flag, real_process=True)
        assert result.get(timeout=30).startswith(module)
    finally:
        app.close()


def test_an_unknown_loop_is_one_line(database_url: str, namespace: str) -> None:
    app = "tests.acceptance.workerapp:app"
    done = subprocess.run(
        [sys.executable, "-m", "stem_pg", "worker", "run", "--app", app, "--event-loop", "trio"],
        capture_output=True,
        text=True,
        timeout=60,
        env=stem_env(STEM_BROKER_URL=database_url, STEM_NAMESPACE=namespace),
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "--event-loop" in done.stderr


def test_uvloop_without_the_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'stem_pg\[uvloop\]'"):
        startup.loop_factory("uvloop")
    assert startup.loop_factory("asyncio") is None
