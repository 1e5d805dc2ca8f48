"""Database URLs: validation, and redaction so passwords never reach a log."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from stem_pg.core.errors import ConfigError

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]*(?P<tail>@)", re.I)
_PASSWORD_IN_CONNINFO = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def redact(text: str) -> str:
    """Replace every password in ``text`` (URLs or ``key=value`` conninfo) by ``***``."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", text)
    return _PASSWORD_IN_CONNINFO.sub(r"\1***", text)


def validate_url(url: object, *, source: str) -> str:
    """Return a libpq-ready ``postgresql://`` URL, or raise ConfigError naming ``source``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{source}: expected a postgresql:// URL, got {url!r}")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{source}: {redact(url)!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"{source}: {redact(url)!r} is not a PostgreSQL URL;"
            " stem_pg runs on Postgres alone (use postgresql://user@host:5432/dbname)"
        )
    return "postgresql://" + url.strip().split("://", 1)[1]
