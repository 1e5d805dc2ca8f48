"""Keeping secrets out of messages and log lines: passwords in URLs and ``key=value``
connection strings are masked, and so is every password stem_pg has been given."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

MASK = "***"
#: Shorter remembered secrets are not masked where they stand alone (every "pw" of a log
#: line would go); they are still masked where a URL or ``password=`` holds them.
MIN_SECRET_LENGTH = 4

# libpq's URI parser ends the user info at the first "@" before a "/": an unencoded "/",
# "?" or "#" in the password is exactly when a URL ends up quoted in an error, so mask
# everything from the ":" after the user name to the last "@" before whitespace.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*(?P<tail>@)", re.I)
# ``password=``, ``sslpassword=``, ``oauth_client_secret=``, ``scram_client_key=``... in a
# conninfo string or a URL query; a quoted value without its closing quote runs to the end.
_SECRET_KEYWORD = r"(?:\w*password|\w*secret|scram_\w*key)"
SECRET_ASSIGNMENT = re.compile(
    rf"(?P<head>\b{_SECRET_KEYWORD}\s*=\s*)(?P<value>'(?:\\.|[^'\\])*'?|[^\s&]+)", re.I
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in later output of ``redact`` (and log records)."""
    global _secrets
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        # Longest first, so a secret that contains another is masked whole.
        _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every password of a URL or conninfo string, and every remembered
    secret, replaced by ``***``."""
    text = _PASSWORD_IN_URL.sub(rf"\g<head>{MASK}\g<tail>", text)
    text = SECRET_ASSIGNMENT.sub(rf"\g<head>{MASK}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def one_line(text: str) -> str:
    """``text`` redacted and on one line (libpq's messages carry a tab-indented hint)."""
    return " ".join(redact(text).split())


def redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in a log record's message, traceback and stack, in place.

    A record is only rewritten when it held a secret, so templates and arguments of every
    other record reach handlers as they were logged.
    """
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is the logging module's to report
        message = None
    if message is not None:
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact(text)
        if masked != text:
            # Handlers render exc_text when it is set; exc_info goes so none renders the original.
            record.exc_text, record.exc_info = masked, None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets (``redact``) in every record it sees; attach it
    to your own handlers, e.g. ``{"()": "stem_pg.core.redaction.RedactingFilter"}``."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def install_log_redaction() -> None:
    """Mask secrets in every log record this process creates, whatever handler, filter
    or configuration renders it later (the CLI, workers and beat call this; idempotent).

    It wraps the record factory rather than adding a filter to handlers: handlers
    configured after start-up (an application module calling ``dictConfig``) and records
    of other libraries (psycopg's pool) are covered too.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "stem_redacting", False):
        return

    def create(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        redact_record(record)
        return record

    wrapped: Callable[..., logging.LogRecord] = create
    wrapped.stem_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(wrapped)
