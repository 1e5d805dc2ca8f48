"""The vacuum policy (stem_pg/core/vacuum.py): vacuum once dead rows pile up, back off while the
xmin horizon keeps them, name the holder once."""

from __future__ import annotations

from stem_pg.core.vacuum import DeadRows, HorizonHolder, VacuumPolicy

T0 = 1_700_000_000.0  # epoch seconds, server clock


def rows(dead: int, *, live: int = 0, last_vacuum: float | None = None, may: bool = True) -> DeadRows:
    return DeadRows(dead=dead, live=live, may_vacuum=may, last_vacuum=last_vacuum)


def session(xmin: int, *, age: float = 180.0, since: float | None = None, pid: int = 4242) -> HorizonHolder:
    return HorizonHolder(
        kind="session",
        xmin=xmin,
        xmin_age=12_345,
        pid=pid,
        application_name="report-tool",
        state="idle in transaction",
        age=age,
        since=since,
    )


def policy() -> VacuumPolicy:
    return VacuumPolicy(base=1000, scale=0.1)


def test_vacuums_once_dead_rows_pass_the_threshold() -> None:
    p = policy()
    assert not p.decide(rows(999), None).vacuum
    assert not p.decide(rows(1999, live=10_000), None).vacuum  # 1000 + 10 % of the live rows
    assert p.decide(rows(2000, live=10_000), None).vacuum
    assert not p.decide(rows(5000, may=False), None).vacuum  # not our table, or a vacuum is under way


def test_a_busy_queue_whose_horizon_moves_is_vacuumed_every_time() -> None:
    p = policy()
    for n in range(5):
        before, holder = rows(5000), session(100 + 50 * n, age=0.01, since=T0 + n)
        decision = p.decide(before, holder)
        assert decision.vacuum and decision.warning is None
        assert p.vacuumed(before, rows(10), holder) == 4990


def test_a_holder_older_than_our_last_vacuum_holds_vacuums_back_and_is_named_once() -> None:
    p = policy()
    holder = session(100)
    assert p.decide(rows(5000), holder).vacuum  # the first vacuum under it may still remove older rows
    assert p.vacuumed(rows(5000), rows(4990), holder) == 10
    held = p.decide(rows(9000), holder)
    assert not held.vacuum and held.reason == "horizon held"
    assert held.warning is not None
    named = ("pid 4242", "'report-tool'", "'idle in transaction'", "3 min 0 s", "12,345 transactions old")
    assert all(text in held.warning for text in named), held.warning
    assert "pg_terminate_backend(4242)" in held.warning
    for dead in (20_000, 50_000, 90_000):  # however many dead rows pile up: no vacuum, no new line
        again = p.decide(rows(dead), holder)
        assert (again.vacuum, again.warning) == (False, None)
    assert p.held_by == holder
    # It ends: the horizon moves on (the next oldest is a fresh snapshot), the next pass vacuums.
    after = p.decide(rows(90_000), session(9000, age=0.01, since=T0 + 500, pid=77))
    assert after.vacuum and p.held_by is None


def test_a_vacuum_by_another_worker_under_the_same_holder_counts() -> None:
    """Another worker (or autovacuum) vacuumed after the holder's snapshot was taken: the
    statistics' last vacuum says so, and this worker backs off without a vacuum of its own."""
    p = policy()
    holder = session(100, since=T0)
    decision = p.decide(rows(5000, last_vacuum=T0 + 30), holder)
    assert not decision.vacuum and decision.warning is not None and "pid 4242" in decision.warning
    # A vacuum before the snapshot was taken could not have removed what came after it.
    assert policy().decide(rows(5000, last_vacuum=T0 - 1), holder).vacuum


def test_a_young_holder_holds_back_without_a_warning_until_it_is_old() -> None:
    p = policy()
    holder = session(100, age=3.0, since=T0)  # a large enqueue_many, say
    quiet = p.decide(rows(5000, last_vacuum=T0 + 1), holder)
    assert (quiet.vacuum, quiet.warning) == (False, None)
    old = session(100, age=61.0, since=T0)
    loud = p.decide(rows(5000, last_vacuum=T0 + 1), old)
    assert not loud.vacuum and loud.warning is not None
    assert p.decide(rows(5000, last_vacuum=T0 + 1), session(100, age=90.0, since=T0)).warning is None


def test_each_new_holder_is_named_once() -> None:
    p = policy()
    first, second = session(100, since=T0), session(200, since=T0 + 60, pid=5151)
    assert p.decide(rows(5000, last_vacuum=T0 + 10), first).warning is not None
    assert p.decide(rows(5000, last_vacuum=T0 + 10), first).warning is None
    # The first commits, a vacuum runs, and another session pins the horizon later on.
    assert p.decide(rows(5000, last_vacuum=T0 + 10), second).vacuum
    p.vacuumed(rows(5000), rows(100), second)
    named = p.decide(rows(5000, last_vacuum=T0 + 70), second).warning
    assert named is not None and "pid 5151" in named


def test_replication_slots_and_prepared_transactions_are_named() -> None:
    slot = HorizonHolder(kind="slot", xmin=100, xmin_age=5000, name="standby_1", state="inactive")
    p = policy()
    p.vacuumed(rows(5000), rows(5000), slot)
    warning = p.decide(rows(6000), slot).warning
    assert warning is not None
    assert "replication slot 'standby_1' (inactive, xmin 5,000 transactions old)" in warning
    assert "pg_drop_replication_slot('standby_1')" in warning

    prepared = HorizonHolder(kind="prepared", xmin=300, xmin_age=7, name="tx-42", age=7200.0, since=T0)
    warning = policy().decide(rows(6000, last_vacuum=T0 + 1), prepared).warning
    assert warning is not None
    assert "prepared transaction 'tx-42' (prepared 2 h 0 min ago" in warning
    assert "ROLLBACK PREPARED 'tx-42'" in warning


def test_a_vacuum_that_removed_little_with_no_holder_in_sight_waits_for_new_dead_rows() -> None:
    """Something we cannot see held the horizon (the last vacuum removed next to nothing):
    the next vacuum waits until as many new dead rows as the threshold have come."""
    p = policy()
    assert p.decide(rows(5000), None).vacuum
    assert p.vacuumed(rows(5000), rows(4800), None) == 200  # < 10 %
    assert p.decide(rows(5799), None).reason == "the last vacuum removed little"
    assert p.decide(rows(5800), None).vacuum
    # One that removed most of them does not hold the next one back.
    q = policy()
    q.vacuumed(rows(5000), rows(400), None)
    assert q.decide(rows(1000), None).vacuum


def test_a_vacuum_that_removed_little_does_not_wait_once_its_holder_is_gone() -> None:
    p = policy()
    holder = session(100, age=1.0)
    p.vacuumed(rows(5000), rows(5000), holder)
    assert p.decide(rows(5001), None).vacuum  # nothing older than our own snapshot is left
    assert p.decide(rows(5001), session(900, age=0.01)).vacuum  # a newer horizon
