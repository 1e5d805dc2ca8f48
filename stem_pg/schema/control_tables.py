"""The control-plane tables of migrations ``0003`` and ``0007`` as SQLAlchemy metadata (see
``stem_pg.schema.tables``).

Broadcast fan-out, revokes, paused queues, control commands and their replies.
The ``broadcast_deliveries`` view is not a table and is not described here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from stem_pg.core.control import DELIVERY_MODES, FANOUT_STATES


def add_control_tables(metadata: MetaData) -> None:
    """Add the tables of migrations 0003 and 0007 to ``metadata``."""
    _broadcast_messages(metadata)
    _broadcast_subscriptions(metadata)
    _broadcast_fanout(metadata)
    _revokes(metadata)
    _paused_queues(metadata)
    _control_replies(metadata)
    _control_commands(metadata)


def _moment(name: str, *, nullable: bool = True, now: bool = False) -> Column[datetime]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=text("now()") if now else None,
    )


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _broadcast_messages(metadata: MetaData) -> Table:
    """One row per publish to a broadcast channel."""
    messages = Table(
        "broadcast_messages",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("task_id", Text, nullable=False),
        Column("channel", Text, nullable=False),
        Column("task", Text, nullable=False),
        Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("delivery", Text, nullable=False, server_default=text("'at-least-once'::text")),
        Column("durable", Boolean, nullable=False, server_default=text("false")),
        Column("max_retries", Integer, nullable=False, server_default=text("0")),
        _moment("not_before", nullable=False, now=True),
        _moment("expires_at"),
        _moment("published_at", nullable=False, now=True),
        CheckConstraint(_one_of("delivery", DELIVERY_MODES), name="broadcast_messages_delivery_check"),
    )
    Index("broadcast_messages_task_id_idx", messages.c.task_id, unique=True)
    Index("broadcast_messages_channel_idx", messages.c.channel, messages.c.id)
    return messages


def _broadcast_subscriptions(metadata: MetaData) -> Table:
    """Which worker listens to which channel."""
    subscriptions = Table(
        "broadcast_subscriptions",
        metadata,
        Column("channel", Text, nullable=False),
        Column("worker_id", Text, nullable=False),
        _moment("subscribed_at", nullable=False, now=True),
        PrimaryKeyConstraint("channel", "worker_id", name="broadcast_subscriptions_pkey"),
    )
    Index("broadcast_subscriptions_worker_idx", subscriptions.c.worker_id)
    return subscriptions


def _broadcast_fanout(metadata: MetaData) -> Table:
    """One row per message and subscriber: the delivery record."""
    fanout = Table(
        "broadcast_fanout",
        metadata,
        Column(
            "message_id",
            BigInteger,
            ForeignKey("broadcast_messages.id", ondelete="CASCADE", name="broadcast_fanout_message_id_fkey"),
            nullable=False,
        ),
        Column("subscriber", Text, nullable=False),
        Column("state", Text, nullable=False, server_default=text("'pending'::text")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        _moment("not_before", nullable=False, now=True),
        _moment("started_at"),
        _moment("finished_at"),
        Column("result", JSONB, nullable=True),
        Column("error", Text, nullable=True),
        PrimaryKeyConstraint("message_id", "subscriber", name="broadcast_fanout_pkey"),
        CheckConstraint(_one_of("state", FANOUT_STATES), name="broadcast_fanout_state_check"),
        postgresql_with={"autovacuum_vacuum_scale_factor": "0.02"},
    )
    Index(
        "broadcast_fanout_claim_idx",
        fanout.c.subscriber,
        fanout.c.message_id,
        postgresql_where=text("state = 'pending'"),
    )
    Index("broadcast_fanout_subscriber_idx", fanout.c.subscriber, fanout.c.state)
    return fanout


def _revokes(metadata: MetaData) -> Table:
    """Append-only revokes; ``version`` orders them for workers catching up."""
    revokes = Table(
        "revokes",
        metadata,
        Column("version", BigInteger, Identity(always=True), primary_key=True),
        Column("task_id", Text, nullable=False),
        Column("reason", Text, nullable=True),
        Column("terminate", Boolean, nullable=False, server_default=text("false")),
        _moment("revoked_at", nullable=False, now=True),
        _moment("expires_at", nullable=False),
    )
    Index("revokes_task_id_idx", revokes.c.task_id)
    Index("revokes_expires_idx", revokes.c.expires_at)
    return revokes


def _paused_queues(metadata: MetaData) -> Table:
    """Queues no worker claims from until resumed."""
    return Table(
        "paused_queues",
        metadata,
        Column("queue", Text, primary_key=True),
        _moment("paused_at", nullable=False, now=True),
        Column("paused_by", Text, nullable=True),
        Column("reason", Text, nullable=True),
    )


def _control_replies(metadata: MetaData) -> Table:
    """Workers' replies to control commands, keyed by the command's ``request_id``."""
    replies = Table(
        "control_replies",
        metadata,
        Column("request_id", Text, nullable=False),
        Column("worker_id", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        _moment("created_at", nullable=False, now=True),
        PrimaryKeyConstraint("request_id", "worker_id", name="control_replies_pkey"),
    )
    Index("control_replies_created_idx", replies.c.created_at)
    return replies


def _control_commands(metadata: MetaData) -> Table:
    """Control commands (migration 0007): workers act on these rows, never on a NOTIFY payload."""
    commands = Table(
        "control_commands",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("request_id", Text, nullable=False),
        Column("command", Text, nullable=False),
        Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("targets", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("wants_reply", Boolean, nullable=False, server_default=text("true")),
        Column("issued_by", Text, nullable=False, server_default=text("CURRENT_USER")),
        _moment("created_at", nullable=False, now=True),
        UniqueConstraint("request_id", name="control_commands_request_id_key"),
    )
    Index("control_commands_created_idx", commands.c.created_at)
    return commands
