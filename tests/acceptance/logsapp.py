"""The application of tests/acceptance/test_worker_logs.py: ``--app tests.acceptance.logsapp:app``.

* ``logs.fail`` raises and has no retry left: a failure (ERROR, with its traceback) and a
  dead letter (``max_retries_exceeded``);
* ``logs.flaky`` raises on its first attempt and succeeds on its second: a retry;
* ``logs.reject`` raises ``Reject``: a dead letter (``rejected``);
* ``logs.chatty`` logs a line of its own, which carries the job's fields too;
* ``logs.ok`` succeeds.
"""

from __future__ import annotations

import logging
import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.tasks import Reject
from stem_pg.worker.context import TaskContext

app_log = logging.getLogger("logsapp")


def make_logs_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="logs.fail", max_retries=0)
    def fail() -> None:
        raise ValueError("the answer is not 41")

    @stem.task(name="logs.flaky", max_retries=3, retry_backoff=0.1, retry_jitter=False)
    def flaky(ctx: TaskContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("the first try never works")
        return ctx.attempt

    @stem.task(name="logs.reject")
    def reject() -> None:
        raise Reject("not for us")

    @stem.task(name="logs.chatty")
    def chatty() -> None:
        app_log.warning("a line of the handler's own")

    @stem.task(name="logs.ok")
    def ok() -> int:
        return 42

    return stem


app = (
    make_logs_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
