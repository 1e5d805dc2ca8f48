"""What a producer meets first when something is not set up: a namespace that is not
migrated raises NotMigratedError, an unreachable database DatabaseUnavailable within
seconds (not a PoolTimeout after 30), each with one clear message and no password; and
STEM_BROKER_URL / STEM_NAMESPACE win over what the app's code says."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from stem_pg import DatabaseUnavailable, NotMigratedError, Stem
from stem_pg.config.settings import StemConfig

PASSWORD = "Wr0ngPassw0rd"


def not_migrated_message(namespace: str) -> str:
    return (
        f"namespace {namespace!r} is not migrated (or is at an older revision);"
        f" run: stem migrate --namespace {namespace}"
    )


def test_enqueue_on_an_unmigrated_namespace_raises_not_migrated(
    database_url: str, fresh_namespace: str
) -> None:
    app = Stem(database_url, namespace=fresh_namespace, config=StemConfig())
    try:
        with pytest.raises(NotMigratedError) as caught:
            app.enqueue("some.task", {})
        assert str(caught.value) == not_migrated_message(fresh_namespace)
        with psycopg.connect(database_url) as conn, pytest.raises(NotMigratedError):
            app.enqueue("some.task", {}, connection=conn)
        with pytest.raises(NotMigratedError, match=fresh_namespace):
            asyncio.run(app.aenqueue("some.task", {}))
    finally:
        app.close()


def bad_urls(database_url: str) -> list[tuple[str, str]]:
    """(URL, what its error must name): a closed port; a database that does not exist."""
    host_port = database_url.split("@", 1)[1].split("/", 1)[0]
    return [
        (f"postgresql://app:{PASSWORD}@127.0.0.1:1/app", "127.0.0.1:1/app"),
        (f"postgresql://postgres:{PASSWORD}@{host_port}/stem_no_such_db", "stem_no_such_db"),
    ]


def test_an_unreachable_database_fails_fast_with_one_clear_error(database_url: str) -> None:
    for url, named in bad_urls(database_url):
        app = Stem(url, config=StemConfig())
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as caught:
            app.enqueue("some.task", {})
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert message.startswith("cannot connect to the database at ") and named in message, message
        assert "\n" not in message and PASSWORD not in message

        async def aenqueue(app: Stem = app) -> Any:
            return await app.aenqueue("some.task", {})

        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as caught:
            asyncio.run(aenqueue())
        assert time.monotonic() - started < 10
        assert named in str(caught.value) and PASSWORD not in str(caught.value)


def test_the_environment_wins_over_the_apps_code(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """As Celery's CELERY_BROKER_URL wins over the app's broker: one deployment's producers,
    workers and shell commands then agree on the database and namespace."""
    monkeypatch.setenv("STEM_BROKER_URL", database_url)
    monkeypatch.setenv("STEM_NAMESPACE", "from-env")
    app = Stem(f"postgresql://app:{PASSWORD}@127.0.0.1:1/app", namespace="from-code")
    assert (app.url, app.namespace) == (database_url, "from-env")
    monkeypatch.delenv("STEM_NAMESPACE")
    assert Stem(namespace="from-code").namespace == "from-code"
    monkeypatch.delenv("STEM_BROKER_URL")
    assert Stem("postgresql://app@h/db").url == "postgresql://app@h/db"
