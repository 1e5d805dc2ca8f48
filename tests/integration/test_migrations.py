"""Migrations on a real Postgres: reversible, matching the code's schema, one schema per namespace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, pool
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Engine

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.namespaces import Channels
from stem_pg.core.states import LIVE_STATES, TERMINAL_STATES, DeadLetterReason, TaskState
from stem_pg.schema.migrate import current_revision, head_revision, migrate
from stem_pg.schema.tables import metadata_for
from tests.helpers import MIGRATED_TABLES, migrated_namespace, unique_namespace

Db = psycopg.Connection[tuple[Any, ...]]

TABLES = MIGRATED_TABLES
VIEWS = {
    "task_states",
    "queue_depths",
    "queue_health",
    "limiter_state",
    "broadcast_deliveries",
    "workflow_runs",
    "workflow_steps",
}
VERSION_TABLE = "alembic_version"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    sa_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    engine = create_engine(sa_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def other_namespace(database_url: str) -> Iterator[str]:
    """A second unique namespace, migrated; dropped afterwards."""
    with migrated_namespace(database_url) as name:
        yield name


def _relations(db: Db, schema: str) -> set[str]:
    rows = db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {row[0] for row in rows}


def _schema_exists(db: Db, schema: str) -> bool:
    row = db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None and row[0] == 1


def test_upgrade_downgrade_upgrade(database_url: str, fresh_namespace: str, db: Db) -> None:
    ns = fresh_namespace
    migrate(database_url, ns)
    assert _relations(db, ns) == TABLES | VIEWS | {VERSION_TABLE}
    assert current_revision(database_url, ns) == head_revision()

    migrate(database_url, ns, "downgrade", "base")
    assert _relations(db, ns) == set()
    assert not _schema_exists(db, ns), "downgrade base leaves nothing behind, not even the schema"
    assert current_revision(database_url, ns) is None

    migrate(database_url, ns)
    assert _relations(db, ns) == TABLES | VIEWS | {VERSION_TABLE}
    assert current_revision(database_url, ns) == head_revision()


def test_upgrade_twice_is_a_no_op(database_url: str, namespace: str, db: Db) -> None:
    migrate(database_url, namespace)
    assert _relations(db, namespace) == TABLES | VIEWS | {VERSION_TABLE}


def test_migrated_schema_matches_metadata(engine: Engine, namespace: str) -> None:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == namespace
        if type_ == "table":
            return name != VERSION_TABLE
        return True

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        diffs = compare_metadata(context, metadata_for(namespace))
    assert diffs == []


# What compare_metadata does not look at: partial-index predicates, CHECK
# constraints and storage parameters (and it takes text and text[] for the same
# type). So the metadata is also created in a scratch schema, inside a
# transaction that is rolled back, and Postgres renders both schemas' catalogs.
_CATALOG = {
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> 'alembic_version'
    """,
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = %(name)s AND tablename <> 'alembic_version'
    """,
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.connamespace = %(schema)s::regnamespace AND c.relname <> 'alembic_version'
    """,
    "storage": """
        SELECT relname, reloptions FROM pg_class
        WHERE relnamespace = %(schema)s::regnamespace AND relkind = 'r'
          AND relname <> 'alembic_version'
    """,
}


def _catalog(db: Db, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    quoted = sql.Identifier(schema).as_string(None)

    def normal(value: Any) -> Any:
        if isinstance(value, str):  # index definitions name their schema
            return value.replace(quoted + ".", "")
        if isinstance(value, list):  # reloptions
            return tuple(sorted(value))
        return value

    return {
        part: {tuple(normal(v) for v in row) for row in db.execute(query, {"schema": quoted, "name": schema})}
        for part, query in _CATALOG.items()
    }


def test_catalog_matches_metadata(engine: Engine, namespace: str, db: Db) -> None:
    scratch = unique_namespace()
    with engine.connect() as connection:
        connection.execute(sa_text(f'CREATE SCHEMA "{scratch}"'))
        metadata_for(scratch).create_all(connection)
        raw = connection.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        expected = _catalog(raw, scratch)
        connection.rollback()
    actual = _catalog(db, namespace)
    for part in _CATALOG:
        only_db, only_code = actual[part] - expected[part], expected[part] - actual[part]
        assert actual[part] == expected[part], f"{part}: database has {only_db}, metadata has {only_code}"
    partial = {"jobs_claim_idx", "jobs_lease_idx", "jobs_expires_idx", "results_expires_idx"}
    assert partial <= {name for name, definition in actual["indexes"] if " WHERE " in definition}
    assert not _schema_exists(db, scratch)


def _allowed_values(db: Db, namespace: str, constraint: str) -> set[str]:
    row = db.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conname = %s AND connamespace = %s::regnamespace",
        (constraint, sql.Identifier(namespace).as_string(None)),
    ).fetchone()
    assert row is not None, f"{constraint} is missing"
    return set(re.findall(r"'([^']*)'::text", row[0]))


def test_state_machine_matches_check_constraints(namespace: str, db: Db) -> None:
    live = _allowed_values(db, namespace, "jobs_state_check")
    terminal = _allowed_values(db, namespace, "results_state_check")
    assert live == {s.value for s in LIVE_STATES}
    assert terminal == {s.value for s in TERMINAL_STATES}
    assert live | terminal == {s.value for s in TaskState}
    assert not live & terminal
    assert all(state.is_terminal == (state.value in terminal) for state in TaskState)
    assert _allowed_values(db, namespace, "dead_letters_reason_check") == {r.value for r in DeadLetterReason}


def test_version_table_lives_in_the_namespace(database_url: str, fresh_namespace: str, db: Db) -> None:
    def public_version_table() -> object:
        row = db.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        return row[0] if row else None

    before = public_version_table()
    migrate(database_url, fresh_namespace)
    assert public_version_table() == before, "migrate must not touch public.alembic_version"
    query = sql.SQL("SELECT version_num FROM {}.alembic_version").format(sql.Identifier(fresh_namespace))
    assert db.execute(query).fetchall() == [(head_revision(),)]


def _job_rows(db: Db, namespace: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT id, queue, args FROM {}.jobs ORDER BY seq").format(sql.Identifier(namespace))
    return db.execute(query).fetchall()


def test_two_namespaces_are_isolated(database_url: str, namespace: str, other_namespace: str, db: Db) -> None:
    first = Stem(database_url, namespace=namespace, config=StemConfig())
    second = Stem(database_url, namespace=other_namespace, config=StemConfig())
    try:
        with psycopg.connect(database_url, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(Channels(namespace).jobs)))
            second.enqueue("t", {"from": "second"}, task_id="same-id")
            assert list(listener.notifies(timeout=0.5)) == []
            first.enqueue("t", {"from": "first"}, task_id="same-id")
            notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [(n.channel, n.payload) for n in notes] == [(Channels(namespace).jobs, "default")]
    finally:
        first.close()
        second.close()
    assert _job_rows(db, namespace) == [("same-id", "default", {"from": "first"})]
    assert _job_rows(db, other_namespace) == [("same-id", "default", {"from": "second"})]


def test_downgrading_one_namespace_leaves_the_other(
    database_url: str, namespace: str, other_namespace: str, db: Db
) -> None:
    migrate(database_url, other_namespace, "downgrade", "base")
    assert not _schema_exists(db, other_namespace)
    assert _relations(db, namespace) == TABLES | VIEWS | {VERSION_TABLE}
    assert current_revision(database_url, namespace) == head_revision()


def test_workers_and_results_of_two_namespaces_do_not_mix(
    database_url: str, namespace: str, other_namespace: str, db: Db
) -> None:
    """Same task name, same task id, a worker in each namespace: each runs its own job,
    each result waiter sees its own namespace's value, and the completion NOTIFY of one
    namespace never reaches the other's channel."""
    from tests.helpers import running_worker

    apps = [Stem(database_url, namespace=ns, config=StemConfig()) for ns in (namespace, other_namespace)]
    for app in apps:

        @app.task(name="where")
        def where(app: Stem = app) -> str:
            return app.namespace

    try:
        with psycopg.connect(database_url, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(Channels(other_namespace).done)))
            with running_worker(apps[0]):
                handle = apps[0].enqueue("where", task_id="same-id")
                assert handle.get(timeout=10) == namespace
                assert list(listener.notifies(timeout=0.5)) == []  # nothing on the other's channel
            assert apps[1].result("same-id").result() is None
            with running_worker(apps[1]):
                assert apps[1].enqueue("where", task_id="same-id").get(timeout=10) == other_namespace
        assert apps[0].result("same-id").get(timeout=1) == namespace
    finally:
        for app in apps:
            app.close()
