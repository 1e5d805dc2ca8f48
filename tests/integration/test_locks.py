"""The lock store on a real Postgres: owner-checked, expiring, fencing tokens that only grow."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.core.errors import LockNotAcquired
from stem_pg.db.stores.locks import LockStore

Db = psycopg.Connection[tuple[Any, ...]]


def test_owner_checked_acquire_renew_release(app: Stem, db: Db) -> None:
    store = LockStore(app.queries)
    first = store.acquire(db, key="k", owner="a", ttl=30)
    assert first is not None and first.owner == "a"
    assert store.acquire(db, key="k", owner="b", ttl=30) is None, "held by a"
    assert store.renew(db, key="k", owner="b", token=first.token, ttl=30) is None, "b is not the owner"
    assert store.release(db, key="k", owner="b", token=first.token) is False
    renewed = store.renew(db, key="k", owner="a", token=first.token, ttl=60)
    assert renewed is not None and renewed.token == first.token and renewed.expires_at > first.expires_at
    assert store.release(db, key="k", owner="a", token=first.token) is True
    assert store.get(db, key="k") is None
    second = store.acquire(db, key="k", owner="b", ttl=30)
    assert second is not None and second.token > first.token


def test_an_expired_lock_can_be_taken_and_the_old_holder_is_fenced_off(app: Stem, db: Db) -> None:
    store = LockStore(app.queries)
    old = store.acquire(db, key="k", owner="a", ttl=0.2)
    assert old is not None
    time.sleep(0.3)
    info = store.get(db, key="k")
    assert info is not None and not info.held
    new = store.acquire(db, key="k", owner="b", ttl=30)
    assert new is not None and new.token > old.token
    # The old holder wakes up: it can neither renew nor release what is not its any more.
    assert store.renew(db, key="k", owner="a", token=old.token, ttl=30) is None
    assert store.release(db, key="k", owner="a", token=old.token) is False
    assert store.get(db, key="k").owner == "b"  # type: ignore[union-attr]


def test_tokens_grow_across_keys_and_reacquisitions(app: Stem, db: Db) -> None:
    store = LockStore(app.queries)
    tokens = []
    for key, owner in [("x", "a"), ("y", "a"), ("x", "a"), ("x", "a")]:
        lease = store.acquire(db, key=key, owner=owner, ttl=30)
        assert lease is not None
        tokens.append(lease.token)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_app_lock_context_manager(app: Stem) -> None:
    with app.lock("reports", ttl=30) as held:
        first_token = held.token
        with (
            pytest.raises(LockNotAcquired, match="lock 'reports' is held by someone else"),
            app.lock("reports", ttl=30),
        ):
            pass
        assert held.renew(ttl=60)
    assert held.lease is None
    with app.lock("reports", ttl=30) as again:  # released on exit, so free again
        assert again.token > first_token


def test_app_lock_waits_for_a_release(app: Stem) -> None:
    holder = app.lock("slow", ttl=30)
    assert holder.acquire()
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    try:
        with app.lock("slow", ttl=30, wait=5) as waiter:
            assert waiter.lease is not None
    finally:
        timer.cancel()


def test_only_one_of_many_threads_holds_the_lock(app: Stem) -> None:
    inside, overlaps, done = [0], [0], []
    guard = threading.Lock()

    def work() -> None:
        with app.lock("counter", ttl=30, wait=20):
            with guard:
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
            time.sleep(0.02)
            with guard:
                inside[0] -= 1
        done.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(done) == 8 and overlaps[0] == 1


async def test_async_lock(app: Stem) -> None:
    try:
        async with app.alock("a", ttl=30) as held:
            assert held.token > 0
            with pytest.raises(LockNotAcquired):
                async with app.alock("a", ttl=30):
                    pass
    finally:
        await app.aclose()
