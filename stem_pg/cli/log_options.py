"""``--loglevel`` and ``--log-format``: the logging options of the long-running commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from stem_pg.config.logs import LOG_LEVELS, LogSettings, configure_logging
from stem_pg.core.logs import LOG_FORMATS


def _check(allowed: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """A typer callback refusing a value outside ``allowed`` (any case) as a usage error."""

    def check(value: str | None) -> str | None:
        if value is not None and value.upper() not in {a.upper() for a in allowed}:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(a.lower() for a in allowed)}")
        return value

    return check


LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--loglevel",
        "-l",
        metavar="LEVEL",
        help="debug, info, warning, error or critical. Defaults to STEM_LOG_LEVEL, then info.",
        callback=_check(LOG_LEVELS),
        show_default=False,
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="text|json",
        help="text, or json: one object per line (time, level, logger, message, and task, id,"
        " queue, attempt, worker, namespace when known). Defaults to STEM_LOG_FORMAT, then text.",
        callback=_check(LOG_FORMATS),
        show_default=False,
    ),
]


def configure(level: str | None, fmt: str | None) -> None:
    """Log to stderr as the options (or STEM_LOG_LEVEL / STEM_LOG_FORMAT) say; a bad
    variable raises ConfigError (one ``error:`` line)."""
    configure_logging(LogSettings.resolve(level, fmt))
