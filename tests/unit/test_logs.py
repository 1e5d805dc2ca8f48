"""Log lines of workers and beat (issue 15): the JSON format and its fields, the level and
format settings, the line each outcome gets, and the periodic summary."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from stem_pg.config.logs import LogSettings, configure_logging
from stem_pg.core import logs as core_logs
from stem_pg.core.errors import ConfigError
from stem_pg.core.logs import ContextFilter, JsonFormatter, TextFormatter, current_job
from stem_pg.core.redaction import remember_secret
from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight
from stem_pg.worker.logs import Summary, log_outcome

JOB = ClaimedJob(
    id="job-1",
    task="app.add",
    queue="default",
    priority=0,
    args={},
    headers=None,
    attempts=2,
    max_retries=3,
    expires_at=None,
    visibility_timeout=None,
    acks_late=True,
)
SECRET = "s3cret-of-the-tests"


@pytest.fixture(autouse=True)
def process_fields() -> Iterator[None]:
    """Each test starts with no process fields: a beat or worker run earlier in this
    process (the integration tests) leaves its own bound."""
    saved = dict(core_logs._process)
    core_logs._process.clear()
    yield
    core_logs._process.clear()
    core_logs._process.update(saved)


def render(formatter: logging.Formatter, level: int, msg: str, *args: object, **extra: object) -> str:
    record = logging.getLogger("t").makeRecord("t", level, __file__, 1, msg, args, None, extra=extra)
    ContextFilter().filter(record)
    return formatter.format(record)


def test_a_json_line_has_the_base_fields_the_task_fields_and_the_extras() -> None:
    core_logs.bind_process(worker="w-1", namespace="prod")
    line = json.loads(
        render(JsonFormatter(), logging.WARNING, "hello %s", "you", **core_logs.job_fields(JOB), reason="x")
    )
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "WARNING",
        "logger": "t",
        "message": "hello you",
        "task": "app.add",
        "id": "job-1",
        "queue": "default",
        "attempt": 2,
        "worker": "w-1",
        "namespace": "prod",
        "reason": "x",
    }


def test_a_handlers_own_line_names_the_job_running_in_its_context() -> None:
    token = current_job.set(JOB)
    try:
        line = json.loads(render(JsonFormatter(), logging.INFO, "from the handler"))
    finally:
        current_job.reset(token)
    assert (line["task"], line["id"], line["queue"], line["attempt"]) == ("app.add", "job-1", "default", 2)
    assert "task" not in json.loads(render(JsonFormatter(), logging.INFO, "outside any handler"))


def test_extras_and_tracebacks_are_redacted_in_both_formats() -> None:
    remember_secret(SECRET)
    trace = f"Traceback (most recent call last):\nValueError: postgresql://u:{SECRET}@db/x"
    for formatter in (JsonFormatter(), TextFormatter()):
        text = render(
            formatter, logging.ERROR, "failed", error=f"password={SECRET}", traceback=trace, url=f"x {SECRET}"
        )
        assert SECRET not in text, text
        assert "ValueError: postgresql://u:***@db/x" in text
    line = json.loads(render(JsonFormatter(), logging.ERROR, "failed", traceback=trace))
    assert line["traceback"].startswith("Traceback (most recent call last):")


def test_the_level_and_format_come_from_options_then_the_environment() -> None:
    env = {"STEM_LOG_LEVEL": "warning", "STEM_LOG_FORMAT": "JSON"}
    assert LogSettings.resolve(None, None, env) == LogSettings("WARNING", "json")
    assert LogSettings.resolve("debug", "text", env) == LogSettings("DEBUG", "text")
    assert LogSettings.resolve(None, None, {}) == LogSettings("INFO", "text")
    with pytest.raises(ConfigError, match=r"^STEM_LOG_LEVEL: 'loud' is not one of debug, info"):
        LogSettings.resolve(None, None, {"STEM_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match=r"^--log-format: 'xml' is not one of text, json$"):
        LogSettings.resolve(None, "xml", {})


def test_configure_logging_sends_json_lines_to_the_stream() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("stem_pg").level)
    stream = io.StringIO()
    try:
        configure_logging(LogSettings("INFO", "json"), stream)
        logging.getLogger("stem_pg.worker.test").info("one %d", 1)
        logging.getLogger("stem_pg.worker.test").debug("not shown")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("stem_pg").setLevel(saved[2])
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "one 1"


def entry(started: bool = True) -> Inflight:
    return Inflight(JOB, "token", 30.0, started=started)


def logged(caplog: pytest.LogCaptureFixture, outcome: Outcome) -> list[tuple[int, str, str | None]]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="stem_pg.worker.tasks"):
        log_outcome(entry(), outcome)
    return [(r.levelno, r.getMessage(), getattr(r, "event", None)) for r in caplog.records]


def test_each_outcome_gets_its_line_at_its_level(caplog: pytest.LogCaptureFixture) -> None:
    failed = Finish(
        "job-1",
        "t",
        TaskState.FAILED,
        error="ValueError: boom",
        traceback="Traceback...\nValueError: boom",
        dead_reason=DeadLetterReason.MAX_RETRIES_EXCEEDED,
    )
    assert logged(caplog, failed) == [
        (logging.ERROR, "task app.add[job-1] failed on attempt 2: ValueError: boom", "failed"),
        (
            logging.WARNING,
            "task app.add[job-1] dead-lettered (max_retries_exceeded) after attempt 2: ValueError: boom",
            "dead_letter",
        ),
    ]
    [(level, message, event)] = logged(caplog, RetryLater("job-1", "t", 1.5, "OSError: later"))
    assert (level, event) == (logging.INFO, "retry")
    assert message.startswith(
        "task app.add[job-1] retry: attempt 2 failed (OSError: later); attempt 3 runs in 1.50s"
    )
    unregistered = Finish(
        "job-1", "t", TaskState.FAILED, error="not registered", dead_reason=DeadLetterReason.UNREGISTERED_TASK
    )
    assert logged(caplog, unregistered) == [
        (
            logging.ERROR,
            "received unregistered task app.add[job-1] on queue default: dead-lettered (unregistered_task)",
            "dead_letter",
        )
    ]
    revoked = Finish("job-1", "t", TaskState.CANCELLED, error="revoked: not wanted")
    assert logged(caplog, revoked) == [(logging.INFO, "task app.add[job-1] revoked: not wanted", "revoked")]
    [(level, message, event)] = logged(caplog, Finish("job-1", "t", TaskState.SUCCEEDED, result="1"))
    assert (level, event) == (logging.DEBUG, "succeeded")
    assert message.startswith("task app.add[job-1] succeeded in ")
    assert [level for level, _, _ in logged(caplog, Release("job-1", "t"))] == [logging.DEBUG]


def test_a_success_costs_no_record_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="stem_pg.worker.tasks"):
        log_outcome(entry(), Finish("job-1", "t", TaskState.SUCCEEDED, result="1"))
    assert caplog.records == []


def test_the_summary_counts_each_interval_and_is_silent_when_idle(caplog: pytest.LogCaptureFixture) -> None:
    counts: Counter[str] = Counter()
    summary = Summary(counts, "w-1", 60.0)
    with caplog.at_level(logging.INFO, logger="stem_pg.worker.summary"):
        assert summary.run_once() is None
        counts.update(succeeded=5, failed=1, retried=2, released=3)
        assert summary.run_once() == {"succeeded": 5, "failed": 1, "cancelled": 0, "retried": 2}
        assert summary.run_once() is None
        counts.update(cancelled=1)
        assert summary.run_once() == {"succeeded": 0, "failed": 0, "cancelled": 1, "retried": 0}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("worker w-1: processed 8 in the last ")
    assert messages[0].endswith("s: 5 succeeded, 1 failed, 2 retried")
    assert messages[1].endswith("s: 0 succeeded, 0 failed, 0 retried, 1 cancelled")
