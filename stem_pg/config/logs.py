"""How a worker or beat process logs: ``--loglevel`` and ``--log-format`` (or STEM_LOG_LEVEL
and STEM_LOG_FORMAT), turned into one stderr handler on the root logger."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from stem_pg.core.errors import ConfigError
from stem_pg.core.logs import LOG_FORMATS, ContextFilter, formatter
from stem_pg.core.redaction import install_log_redaction

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Libraries whose INFO and DEBUG lines would drown the worker's own; they still show warnings.
_QUIET = ("psycopg", "asyncio", "alembic")


@dataclass(frozen=True)
class LogSettings:
    """A level name (``INFO``...) and a format (``text`` or ``json``), checked."""

    level: str = "INFO"
    format: str = "text"

    def __post_init__(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ConfigError(f"log level {self.level!r} is not one of {', '.join(LOG_LEVELS)}")
        if self.format not in LOG_FORMATS:
            raise ConfigError(f"log format {self.format!r} is not one of {', '.join(LOG_FORMATS)}")

    @classmethod
    def resolve(cls, level: str | None, fmt: str | None, env: Mapping[str, str] | None = None) -> LogSettings:
        """The options given, else STEM_LOG_LEVEL / STEM_LOG_FORMAT, else INFO and text;
        raises ConfigError naming the option or variable and its bad value."""
        env = os.environ if env is None else env
        return cls(
            level=_choice(level, "--loglevel", env, "STEM_LOG_LEVEL", LOG_LEVELS, "INFO").upper(),
            format=_choice(fmt, "--log-format", env, "STEM_LOG_FORMAT", LOG_FORMATS, "text").lower(),
        )


def _choice(
    given: str | None,
    option: str,
    env: Mapping[str, str],
    variable: str,
    allowed: tuple[str, ...],
    default: str,
) -> str:
    source, value = (option, given) if given else (variable, env.get(variable, "").strip())
    if not value:
        return default
    if value.upper() not in {a.upper() for a in allowed}:
        raise ConfigError(f"{source}: {value!r} is not one of {', '.join(a.lower() for a in allowed)}")
    return value


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Send every record of this process to ``stream`` (stderr) in ``settings.format``,
    stem_pg's and the application's from ``settings.level`` up, with the task fields
    filled in and secrets masked. Replaces the root logger's handlers; forked worker
    processes inherit it."""
    install_log_redaction()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.format))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelName(settings.level)
    root.setLevel(level)
    logging.getLogger("stem_pg").setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
