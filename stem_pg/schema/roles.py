"""Three roles per namespace, so the database's privileges decide who may do what.

``stem roles`` creates (or brings up to date) three group roles, without LOGIN:

* ``<ns>_producer``: enqueue (jobs, unique keys, debounced jobs, canvases, workflows, broadcasts) and
  read results and task states. It cannot command, pause or revoke, touch dead
  letters or schedules, or read the control plane.
* ``<ns>_worker``: what ``stem worker run`` and ``stem beat`` need: claim, finish,
  heartbeat, dead-letter, answer control commands, keep the namespace tidy. It can
  read commands, revokes and pauses but not write them, and cannot replay or purge
  dead letters.
* ``<ns>_operator``: everything on every table of the namespace: control commands,
  revokes, pauses, the dead-letter queue, schedules.

Log-in users get one by membership (``GRANT "prod_worker" TO app_worker``). The
script is idempotent: run it again after ``stem migrate`` so new tables are covered.
"""

from __future__ import annotations

from typing import Literal

from psycopg import sql

from stem_pg.core.namespaces import validate_namespace

RoleKind = Literal["producer", "worker", "operator"]
ROLE_KINDS: tuple[RoleKind, ...] = ("producer", "worker", "operator")

#: The jobs columns a producer may update: unique_key, and what a debounced enqueue replaces.
PRODUCER_JOB_UPDATES = (
    "unique_key, queue, priority, args, headers, max_retries, not_before, expires_at,"
    " visibility_timeout, acks_late"
)

#: Per role: (privileges, objects of the namespace). Views are read with their owner's rights.
_PRODUCER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SELECT, INSERT", ("jobs", "canvases", "canvas_members", "broadcast_messages", "broadcast_fanout")),
    # unique keys whose unique_for ran out; a debounced enqueue replacing the waiting job's call
    (f"UPDATE ({PRODUCER_JOB_UPDATES})", ("jobs",)),
    ("SELECT, INSERT, UPDATE", ("wf_runs", "wf_steps", "wf_waiters")),
    ("SELECT, INSERT, UPDATE, DELETE", ("locks",)),
    (
        "SELECT",
        (
            "results",
            "result_minutes",
            "result_rollup",
            "workers",
            "broadcast_subscriptions",
            "task_states",
            "queue_depths",
            "queue_health",
            "limiter_state",
            "broadcast_deliveries",
            "workflow_runs",
            "workflow_steps",
        ),
    ),
)
_WORKER: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "SELECT, INSERT, UPDATE, DELETE",
        (
            "jobs",
            "results",
            "workers",
            "broadcast_messages",
            "broadcast_subscriptions",
            "broadcast_fanout",
            "canvases",
            "canvas_members",
            "wf_runs",
            "wf_steps",
            "wf_waiters",
            "locks",
            "schedule_fires",
            "control_replies",
            "limiters",
            "result_minutes",  # maintenance rolls results up for the dashboard's chart
            "result_rollup",
        ),
    ),
    ("SELECT, UPDATE", ("schedules",)),  # beat records each entry's last fire
    ("SELECT, INSERT", ("dead_letters",)),
    ("SELECT, DELETE", ("revokes", "control_commands")),  # read, and prune the expired
    (
        "SELECT",
        (
            "paused_queues",
            "task_states",
            "queue_depths",
            "queue_health",
            "limiter_state",
            "broadcast_deliveries",
            "workflow_runs",
            "workflow_steps",
        ),
    ),
)
_SEQUENCES = ("lock_tokens",)


def role_name(namespace: str, kind: RoleKind) -> str:
    """``<namespace>_<kind>``: at most 57 bytes, within Postgres' identifier limit."""
    return f"{validate_namespace(namespace)}_{kind}"


def roles_sql(namespace: str) -> sql.Composed:
    """The idempotent script that creates the three roles of ``namespace`` and grants them."""
    ns = sql.Identifier(validate_namespace(namespace))
    parts: list[sql.Composable] = []
    for kind in ROLE_KINDS:
        role = sql.Identifier(role_name(namespace, kind))
        parts.append(
            sql.SQL(
                "DO $stem$ BEGIN CREATE ROLE {role} NOLOGIN;"
                " EXCEPTION WHEN duplicate_object THEN NULL; END $stem$;\n"
                "GRANT USAGE ON SCHEMA {ns} TO {role};\n"
            ).format(role=role, ns=ns)
        )
        if kind == "operator":
            parts.append(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {ns} TO {role};\n"
                    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {ns} TO {role};\n"
                ).format(ns=ns, role=role)
            )
            continue
        for privileges, objects in _PRODUCER if kind == "producer" else _WORKER:
            tables = sql.SQL(", ").join(sql.SQL("{}.{}").format(ns, sql.Identifier(o)) for o in objects)
            parts.append(
                sql.SQL("GRANT {privileges} ON {tables} TO {role};\n").format(
                    privileges=sql.SQL(privileges), tables=tables, role=role
                )
            )
        for sequence in _SEQUENCES:
            parts.append(
                sql.SQL("GRANT USAGE ON SEQUENCE {}.{} TO {};\n").format(ns, sql.Identifier(sequence), role)
            )
    return sql.Composed(parts)


def create_roles(url: str, namespace: str) -> list[str]:
    """Create (or update) the three roles of ``namespace``; returns their names."""
    from stem_pg.db.connect import connection
    from stem_pg.db.stores.roles import RoleStore

    script = roles_sql(namespace)
    with connection(url, role="cli") as conn:
        RoleStore().apply(conn, script)
    return [role_name(namespace, kind) for kind in ROLE_KINDS]
