"""Signed broadcast messages: a verifying worker runs a signed message and fails, without
running it, one that is unsigned (the fan-out row says ``signature_invalid``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.core.signing import Signing
from tests.helpers import running_worker, wait_for

ROUTING = """
broadcasts:
  ctl: {delivery: at-least-once}
routes:
  - match: {task: "ctl.*"}
    target: {type: broadcast, name: ctl}
"""
KEYS = {"k1": "broadcast-secret-0123456789"}


def build(url: str, namespace: str, signing: Signing | None, seen: list[str]) -> Stem:
    stem = Stem(
        url, namespace=namespace, routing=load_routing_yaml(ROUTING), config=StemConfig(), signing=signing
    )

    @stem.task(name="ctl.hello")
    def hello(who: str) -> str:
        seen.append(who)
        return f"hello {who}"

    return stem


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def signed(database_url: str, namespace: str, seen: list[str]) -> Iterator[Stem]:
    stem = build(database_url, namespace, Signing.from_spec(KEYS), seen)
    yield stem
    stem.close()


@pytest.fixture
def unsigned(database_url: str, namespace: str, seen: list[str]) -> Iterator[Stem]:
    stem = build(database_url, namespace, None, seen)
    yield stem
    stem.close()


def fanout(db: psycopg.Connection[Any], ns: str) -> dict[str, tuple[str, str | None]]:
    rows = db.execute(
        sql.SQL(
            "SELECT m.args ->> 'who', f.state, f.error FROM {ns}.broadcast_fanout AS f"
            " JOIN {ns}.broadcast_messages AS m ON m.id = f.message_id"
        ).format(ns=sql.Identifier(ns))
    ).fetchall()
    return {who: (state, error) for who, state, error in rows}


def test_a_verifying_worker_runs_signed_messages_only(
    signed: Stem, unsigned: Stem, seen: list[str], db: psycopg.Connection[Any], namespace: str
) -> None:
    with running_worker(signed, broadcasts=("ctl",)) as worker:
        wait_for(lambda: db.execute(
            sql.SQL("SELECT 1 FROM {}.broadcast_subscriptions").format(sql.Identifier(namespace))
        ).fetchall())  # fmt: skip
        good = signed.enqueue("ctl.hello", {"who": "signed"})
        unsigned.enqueue("ctl.hello", {"who": "unsigned"})
        assert good.get(timeout=20) == {worker.id: "hello signed"}
        # its final state: a message claimed ('running') but not yet refused when the worker
        # stops is given back ('pending'), as on any graceful stop
        final = ("succeeded", "failed", "cancelled")
        wait_for(lambda: fanout(db, namespace).get("unsigned", ("pending",))[0] in final, 20)
    assert seen == ["signed"]
    assert fanout(db, namespace) == {
        "signed": ("succeeded", None),
        "unsigned": ("failed", "signature_invalid: unsigned"),
    }
