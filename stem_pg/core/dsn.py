"""Database URLs: validation, and redaction so passwords never reach a log."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from stem_pg.core.errors import ConfigError

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
# The password runs to the last "@" before whitespace: an unencoded "/", "?" or "#" in it
# makes the URL invalid, which is exactly when it ends up in an error message.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*(?P<tail>@)", re.I)
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
    except ValueError:
        # The parser's own message may quote part of the password: leave it out.
        raise ConfigError(
            f"{source}: {redact(url)!r} is not a valid URL (check the port, and percent-encode"
            " special characters in the password)"
        ) from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"{source}: {redact(url)!r} is not a PostgreSQL URL;"
            " stem_pg runs on Postgres alone (use postgresql://user@host:5432/dbname)"
        )
    return "postgresql://" + url.strip().split("://", 1)[1]
