"""Opening connections: one place that sets connection options and hides passwords."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from stem_pg.core.dsn import libpq_url, pooler, remember_url_secrets
from stem_pg.core.errors import DatabaseUnavailable
from stem_pg.core.redaction import one_line, redact
from stem_pg.db.shared import open_shared

__all__ = [
    "DatabaseUnavailable",
    "connect",
    "connect_async",
    "connection",
    "connection_options",
    "pooled",
    "with_keepalives",
]

APPLICATION_NAME = "stem_pg"
#: TCP keepalives on every connection: one to a peer that vanished without a word (a silent
#: network partition) fails after about 25 s of silence instead of hanging. A URL that sets
#: any of them keeps its own values.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


#: Seconds to wait for a server that does not answer (a wrong host, a firewall dropping
#: packets) before the connection fails, unless the URL sets ``connect_timeout`` itself:
#: libpq would otherwise wait for the operating system's TCP timeout (minutes).
CONNECT_TIMEOUT = 5


def _unavailable(exc: psycopg.Error, url: str) -> DatabaseUnavailable:
    # Any class: libpq's ProgrammingError for a URL it cannot parse quotes the bad token,
    # which may be the password itself.
    return DatabaseUnavailable(f"cannot connect to the database{_where(url)}: {one_line(str(exc))}")


def _where(url: str) -> str:
    """`` at host:port/dbname`` as libpq reads ``url`` (its defaults filled in), or nothing."""
    try:
        params = conninfo_to_dict(libpq_url(url))
    except psycopg.Error:
        return ""
    hosts = str(params.get("host") or params.get("hostaddr") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    places = ",".join(
        f"{host or 'local socket'}:{ports[min(i, len(ports) - 1)] or '5432'}" for i, host in enumerate(hosts)
    )
    dbname = params.get("dbname") or params.get("user")
    return redact(f" at {places}" + (f"/{dbname}" if dbname else ""))


def pooled(url: str) -> bool:
    """Whether ``url`` points at a pooler in transaction mode (``?stem_pooler=transaction``)."""
    return pooler(url) == "transaction"


def connection_options(url: str) -> dict[str, object]:
    """psycopg's options for a connection to ``url``: behind a transaction pooler no
    statement is prepared (PgBouncer before 1.21 would hand a prepared name to a server
    session that does not have it)."""
    return {"prepare_threshold": None} if pooled(url) else {}


def with_keepalives(url: str, **params: str | int) -> str:
    """``url`` as a connection string with ``params``, and the ``KEEPALIVES`` and
    ``CONNECT_TIMEOUT`` it does not set itself (stem_pg's own options left out)."""
    url = libpq_url(url)
    try:
        given = conninfo_to_dict(url)
        defaults = {**KEEPALIVES, "connect_timeout": CONNECT_TIMEOUT}
        return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given}, **params)
    except psycopg.Error:
        return url  # connecting reports the bad URL


def connect(url: str, *, autocommit: bool = True, role: str = "client") -> psycopg.Connection[TupleRow]:
    """A new synchronous connection, labelled in ``pg_stat_activity`` by ``role``."""
    remember_url_secrets(url)
    try:
        conninfo = with_keepalives(url, application_name=f"{APPLICATION_NAME}:{role}")
        return psycopg.connect(conninfo, autocommit=autocommit, **connection_options(url))  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise _unavailable(exc, url) from None


async def connect_async(
    url: str, *, autocommit: bool = True, role: str = "worker", shared: bool = False
) -> psycopg.AsyncConnection[TupleRow]:
    """A new asynchronous connection, labelled in ``pg_stat_activity`` by ``role``; ``shared``:
    one that several tasks use in turns (stem_pg.db.shared)."""
    remember_url_secrets(url)
    try:
        conninfo = with_keepalives(url, application_name=f"{APPLICATION_NAME}:{role}")
        options = connection_options(url)
        if shared:
            return await open_shared(conninfo, autocommit=autocommit, **options)
        return await psycopg.AsyncConnection.connect(conninfo, autocommit=autocommit, **options)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise _unavailable(exc, url) from None


@contextmanager
def connection(url: str, *, role: str = "client") -> Iterator[psycopg.Connection[TupleRow]]:
    """A short-lived autocommit connection, closed on exit."""
    conn = connect(url, role=role)
    try:
        yield conn
    finally:
        conn.close()
