"""Log records that say which task, worker and namespace they are about: the fields a
``--log-format json`` line carries, the filter that fills them in, and the formatters.

A worker binds its id and namespace once per process (``bind_process``) and the job it
runs in the current context (``current_job``), so a line a handler logs carries them
too. The fields are record attributes, as ``logging``'s ``extra`` sets them; a line of
stem_pg's own passes them explicitly.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from stem_pg.core.redaction import redact

#: What ``--log-format`` accepts.
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The fields of a task's line, in the order a JSON line lists them.
TASK_FIELDS = ("task", "id", "queue", "attempt", "worker", "namespace")
#: An ``extra`` key whose text is rendered like an exception's traceback.
TRACEBACK_FIELD = "traceback"

# Every attribute a plain LogRecord has: what is left on a record is an ``extra`` field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JobLike(Protocol):
    """What the context needs of a claimed job (``ClaimedJob`` in the stores)."""

    @property
    def id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def attempts(self) -> int: ...


#: The job whose handler runs in this context (None outside a handler).
current_job: ContextVar[JobLike | None] = ContextVar("stem_current_job", default=None)
_process: dict[str, str] = {}


def bind_process(**fields: str) -> None:
    """Fields every line of this process carries from now on (``worker``, ``namespace``);
    a forked worker process binds its own."""
    _process.update(fields)


def job_fields(job: JobLike) -> dict[str, Any]:
    """The ``extra`` of a line about ``job``."""
    return {"task": job.task, "id": job.id, "queue": job.queue, "attempt": job.attempts}


class ContextFilter(logging.Filter):
    """Fills in the task fields of a record from the process and the running job, and
    turns a ``traceback`` extra into the record's exception text (redacted: extras are
    set after the redacting record factory ran). Attach it to a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        job = current_job.get()
        if job is not None and "task" not in fields:
            fields.update(job_fields(job))
        for key, value in _process.items():
            fields.setdefault(key, value)
        text = fields.get(TRACEBACK_FIELD)
        if isinstance(text, str) and not record.exc_text and not record.exc_info:
            record.exc_text = redact(text.rstrip("\n"))
        return True


class TextFormatter(logging.Formatter):
    """The default format: ``time LEVEL logger: message`` (and a traceback below it)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the task
    fields when known, any other ``extra`` field, and ``traceback`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in TASK_FIELDS:
            if fields.get(key) is not None:
                line[key] = _clean(fields[key])
        for key, value in fields.items():
            if key not in _STANDARD and key not in line and key != TRACEBACK_FIELD:
                line[key] = _clean(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line[TRACEBACK_FIELD] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


def _clean(value: Any) -> Any:
    """An extra field as JSON shows it, with no secret in its text."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    return redact(str(value))


def stem_version() -> str:
    """The installed stem_pg's version, as banners show it."""
    try:
        return importlib.metadata.version("stem_pg")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "unknown"


def formatter(name: str) -> logging.Formatter:
    """The formatter ``--log-format name`` selects (``text`` or ``json``)."""
    return JsonFormatter() if name == "json" else TextFormatter()
