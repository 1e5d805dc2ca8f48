"""Database URLs: checked whole at start-up the way libpq will read them, with errors that
name what is wrong and never show the password (stem_pg.core.redaction masks it later)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stem_pg.core.errors import ConfigError
from stem_pg.core.redaction import SECRET_ASSIGNMENT, redact, remember_secret

__all__ = [
    "POOLER_OPTION",
    "UrlParts",
    "libpq_url",
    "pooler",
    "redact",
    "remember_url_secrets",
    "split_url",
    "validate_url",
]

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
#: The connection options libpq (18) knows; any other query parameter is refused by libpq.
LIBPQ_KEYWORDS = frozenset(
    {
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
    }
)
_SECRET_KEYWORDS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)
_WHOLE_NUMBER_KEYWORDS = frozenset(
    {"connect_timeout", "keepalives", "keepalives_count", "keepalives_idle", "keepalives_interval"}
    | {"tcp_user_timeout"}
)
#: stem_pg's own URL option (libpq never sees it): ``?stem_pooler=transaction`` says the URL
#: points at a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``), so no
#: session state is relied on there: no prepared statements, no LISTEN, no session settings.
POOLER_OPTION = "stem_pooler"
POOLER_MODES = ("transaction",)
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")
_TOKEN = re.compile(r"[a-z][a-z0-9_+.-]{0,39}", re.I)


@dataclass(frozen=True)
class UrlParts:
    """The pieces of a URL as libpq splits them, still percent-encoded."""

    user: str | None
    password: str | None
    hosts: tuple[str, ...]
    ports: tuple[str, ...]
    dbname: str | None
    query: str | None
    problem: str | None = None  # what makes the host list unreadable (then nothing follows it)


def split_url(rest: str) -> UrlParts:
    """Split what follows ``scheme://`` as libpq's URI parser does (it reads the user info
    up to the first "@" before a "/", so "?" and "#" may stand in a password)."""
    user = password = None
    ahead = len(rest)
    for i, ch in enumerate(rest):
        if ch in "@/":
            ahead = i
            break
    pos = 0
    if ahead < len(rest) and rest[ahead] == "@":
        user, colon, pw = rest[:ahead].partition(":")
        password = pw if colon else None
        pos = ahead + 1
    hosts: list[str] = []
    ports: list[str] = []
    end = ""
    while True:
        if rest[pos : pos + 1] == "[":
            close = rest.find("]", pos)
            if close < 0:
                return UrlParts(user, password, (), (), None, None, "an unterminated '[' in the host")
            if close == pos + 1:
                return UrlParts(user, password, (), (), None, None, "an empty IPv6 address '[]'")
            hosts.append(rest[pos + 1 : close])
            pos = close + 1
            if pos < len(rest) and rest[pos] not in ":/?,":
                return UrlParts(user, password, (), (), None, None, "unexpected text after ']' in the host")
        else:
            stop = _find_any(rest, ":/?,", pos)
            hosts.append(rest[pos:stop])
            pos = stop
        end = rest[pos : pos + 1]
        if end == ":":
            stop = _find_any(rest, "/?,", pos + 1)
            ports.append(rest[pos + 1 : stop])
            pos = stop
            end = rest[pos : pos + 1]
        if end != ",":
            break
        pos += 1
    dbname = query = None
    if end == "/":
        stop = _find_any(rest, "?", pos + 1)
        dbname, pos = rest[pos + 1 : stop], stop
        end = rest[pos : pos + 1]
    if end == "?":
        query = rest[pos + 1 :]
    return UrlParts(user, password, tuple(hosts), tuple(ports), dbname, query)


def _find_any(text: str, chars: str, start: int) -> int:
    for i in range(start, len(text)):
        if text[i] in chars:
            return i
    return len(text)


def _decode(raw: str) -> str | None:
    """libpq's percent-decoding, or None where libpq refuses the text."""
    if " " in raw or _PERCENT.search(raw):
        return None
    out = re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), raw)
    return None if "\0" in out else out


def _encoding_problem(raw: str | None, where: str) -> str | None:
    if raw is None:
        return None
    if " " in raw:
        return f"a space in {where} (write it as %20)"
    if _PERCENT.search(raw):
        return f"an invalid percent-escape in {where} (a literal % is written %25)"
    if "\0" in raw or "%00" in raw:
        return f"a NUL character in {where}"
    return None


def remember_url_secrets(url: str) -> None:
    """Remember every password ``url`` holds (raw and decoded), even if the URL is invalid,
    so that no later message or log line shows it."""
    _, sep, rest = url.strip().partition("://")
    candidates = [m.group("value").strip("'") for m in SECRET_ASSIGNMENT.finditer(url)]
    if sep:
        parts = split_url(rest)
        candidates.append(parts.password or "")
        # With an unencoded "@" or "/" in it, the password the user meant runs to the last "@".
        candidates.append(rest.rpartition("@")[0].partition(":")[2])
        for pair in (parts.query or "").split("&"):
            key, _, value = pair.partition("=")
            if (_decode(key) or key) in _SECRET_KEYWORDS:
                candidates.append(value)
    for raw in candidates:
        remember_secret(raw)
        remember_secret(_decode(raw))


def validate_url(url: object, *, source: str) -> str:
    """Return a libpq-ready ``postgresql://`` URL, or raise ConfigError naming ``source``
    and what is wrong (never the password: see ``_shown``)."""
    if not isinstance(url, str) or not url.strip():
        got = repr(url) if url is None or isinstance(url, str) else type(url).__name__
        raise ConfigError(f"{source}: expected a postgresql:// URL, got {got}")
    text = url.strip()
    remember_url_secrets(text)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"{source}: {_shown(text)}not a PostgreSQL URL{_scheme_hint(scheme, sep)};"
            " stem_pg runs on Postgres alone (use postgresql://user@host:5432/dbname)"
        )
    problem = _url_problem(rest)
    if problem:
        raise ConfigError(f"{source}: {_shown(text)}not a valid URL: {problem}")
    return "postgresql://" + rest


def _shown(text: str) -> str:
    """``'<url>' is `` when the URL visibly holds no secret, else nothing: a malformed URL
    may put part of a password where a host or port should be."""
    lowered = text.lower()
    before_at = text.partition("://")[2].rpartition("@")[0]
    if "password" in lowered or "secret" in lowered or "key" in lowered or ":" in before_at:
        return ""
    return f"{redact(text)!r} is "


def _scheme_hint(scheme: str, sep: str) -> str:
    if not sep:
        return " (a key=value connection string is not accepted)" if "=" in scheme else ""
    return f" (scheme {scheme!r})" if _TOKEN.fullmatch(scheme) else ""


def _url_problem(rest: str) -> str | None:
    """What libpq would refuse (or misread) in the part after ``postgresql://``, or None."""
    if "\0" in rest:
        return "a NUL character"
    parts = split_url(rest)
    if any("@" in host for host in parts.hosts):
        return "an unencoded '@' in the user name or password (write it as %40)"
    if any(c in f"{parts.user}{parts.password}" for c in "?#"):
        # libpq would read them, but other URL parsers (SQLAlchemy's for migrations) end there.
        return "an unencoded '?' or '#' in the user name or password (write %3F, %23)"
    if parts.user is None and "@" in (parts.dbname or ""):
        # libpq reads the user info up to the first "/": "u:pa/ss@h" is host "u", port "pa".
        return "an '@' after the host: a '/' in the user name or password is written %2F"
    problem = (
        _encoding_problem(parts.user, "the user name")
        or _encoding_problem(parts.password, "the password")
        or parts.problem
    )
    if problem:
        return problem
    for host in parts.hosts:
        if problem := _encoding_problem(host, "the host"):
            return problem
    for port in parts.ports:
        if problem := _port_problem(port):
            return problem
    return _encoding_problem(parts.dbname, "the database name") or _query_problem(parts.query or "")


def _port_problem(raw: str) -> str | None:
    if raw and not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 65535):
        return "the port must be a number from 1 to 65535"
    return None


def _query_problem(query: str) -> str | None:
    if not query:
        return None
    for pair in query.split("&"):
        if pair.count("=") != 1:
            return "a query parameter without exactly one '=' (write key=value&key=value)"
        raw_key, _, raw_value = pair.partition("=")
        key, value = _decode(raw_key), _decode(raw_value)
        if key == POOLER_OPTION:
            if value not in POOLER_MODES:
                return f"query parameter {POOLER_OPTION!r} must be one of {', '.join(POOLER_MODES)}"
            continue
        if key is None or not (key in LIBPQ_KEYWORDS or (key, value) == ("ssl", "true")):
            named = f" {key!r}" if key is not None and _TOKEN.fullmatch(key) else ""
            return f"unknown query parameter{named} (libpq connection options only)"
        if value is None:
            return _encoding_problem(raw_value, f"query parameter {key!r}")
        if key == "port" and (problem := next(filter(None, map(_port_problem, value.split(","))), None)):
            return problem
        if key in _WHOLE_NUMBER_KEYWORDS and not value.lstrip("-").isdigit():
            return f"query parameter {key!r} must be a whole number"
        if key == "sslmode" and value not in _SSLMODES:
            return f"query parameter 'sslmode' must be one of {', '.join(_SSLMODES)}"
    return None


def _query_pairs(url: str) -> tuple[str, list[str]]:
    """``url`` before its query, and the query's ``key=value`` pairs (none for a key=value
    connection string, which stem_pg refuses anyway: ``validate_url``)."""
    if "://" not in url:
        return url, []
    head, sep, query = url.partition("?")
    return head, query.split("&") if sep and query else []


def pooler(url: str) -> str | None:
    """The pooler mode ``url`` names with ``?stem_pooler=...`` (``transaction``), or None."""
    for pair in _query_pairs(url)[1]:
        key, _, value = pair.partition("=")
        if _decode(key) == POOLER_OPTION:
            return _decode(value)
    return None


def libpq_url(url: str) -> str:
    """``url`` without stem_pg's own options, as libpq (which refuses unknown ones) takes it."""
    head, pairs = _query_pairs(url)
    if not pairs:
        return url
    kept = [pair for pair in pairs if _decode(pair.partition("=")[0]) != POOLER_OPTION]
    return head + ("?" + "&".join(kept) if kept else "")
