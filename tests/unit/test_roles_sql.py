"""The roles script of ``stem roles`` (no database: what it grants to whom)."""

from __future__ import annotations

import re

import pytest

from stem_pg.core.errors import NamespaceError
from stem_pg.schema.roles import PRODUCER_JOB_UPDATES, ROLE_KINDS, role_name, roles_sql


def grants(namespace: str) -> dict[str, dict[str, set[str]]]:
    """role -> table -> privileges, from the rendered script."""
    found: dict[str, dict[str, set[str]]] = {}
    pattern = re.compile(r'^GRANT (?P<privs>.+?) ON (?P<tables>"[^;]+?) TO "(?P<role>[^"]+)";$', re.M)
    for match in pattern.finditer(roles_sql(namespace).as_string(None)):
        tables = re.findall(r'"[^"]+"\."([^"]+)"', match["tables"])
        for table in tables:
            privs = {p.strip() for p in match["privs"].split(",")}
            found.setdefault(match["role"], {}).setdefault(table, set()).update(privs)
    return found


def test_three_roles_named_after_the_namespace_and_created_idempotently() -> None:
    text = roles_sql("prod-us").as_string(None)
    assert [role_name("prod-us", k) for k in ROLE_KINDS] == [
        "prod-us_producer",
        "prod-us_worker",
        "prod-us_operator",
    ]
    for kind in ROLE_KINDS:
        assert f'CREATE ROLE "prod-us_{kind}" NOLOGIN; EXCEPTION WHEN duplicate_object' in text
        assert f'GRANT USAGE ON SCHEMA "prod-us" TO "prod-us_{kind}";' in text
    assert (
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "prod-us" TO "prod-us_operator"' in text
    )


def test_only_the_operator_writes_commands_revokes_pauses_schedules_and_dead_letters() -> None:
    granted = grants("prod")
    for role in ("prod_producer", "prod_worker"):
        privileges = granted[role]
        for table in ("control_commands", "revokes", "paused_queues", "schedules"):
            assert "INSERT" not in privileges.get(table, set()), (role, table)
        assert not privileges.get("paused_queues", set()) & {"UPDATE", "DELETE"}
        assert not privileges.get("dead_letters", set()) & {"UPDATE", "DELETE"}  # replay, purge
    assert "control_replies" not in granted["prod_producer"]
    assert "schedules" not in granted["prod_producer"]
    column_update = {p.strip() for p in f"UPDATE ({PRODUCER_JOB_UPDATES})".split(",")}  # as grants() splits
    assert granted["prod_producer"]["jobs"] == {"SELECT", "INSERT"} | column_update
    assert granted["prod_worker"]["control_commands"] == {"SELECT", "DELETE"}  # read, prune


def test_a_bad_namespace_is_refused() -> None:
    with pytest.raises(NamespaceError):
        roles_sql('x"; DROP ROLE postgres; --')
