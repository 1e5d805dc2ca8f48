"""Debounced enqueue: ``app.enqueue(name, kwargs, debounce="5s", key="user-42")`` (and
``aenqueue``, and an ``EnqueueRequest(..., debounce=, key=)`` in ``enqueue_many``).

A later enqueue with the same task and key replaces the job that waits to start: its
arguments become the latest ones and its run time moves to now + ``debounce``, so a burst
of calls runs once, with the last arguments, ``debounce`` after the last call. Every handle
of the burst names that one job. Once a worker has claimed the job, the next enqueue with
the key makes a new job.

Race-safe: the holder is read ``FOR UPDATE`` (a second producer waits for the first one's
commit, then replaces its arguments; a worker's claim skips a locked job), and two producers
that find no holder cannot both insert one (``jobs_debounce_idx``): the loser looks again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from stem_pg.client.backend import Backend
from stem_pg.client.results import TaskResult
from stem_pg.core.durations import parse_duration
from stem_pg.core.envelope import JobSpec
from stem_pg.core.errors import TaskError
from stem_pg.core.planning import EnqueueRequest, Planner, at_item
from stem_pg.core.signals import publish_info
from stem_pg.core.storable import MAX_NAME_LENGTH, check_text
from stem_pg.db.missing import migrated
from stem_pg.db.stores.debounce import DebounceStore

#: Rounds of "no holder, but our insert lost to another producer's"; each round finds it.
ROUNDS = 5

Debounce = float | timedelta | str


def debounce_seconds(value: Debounce | None, *, task: str) -> float:
    """``debounce=`` as positive seconds: a number, a timedelta or text like ``5s``; a TaskError otherwise."""
    what = f"{task}: debounce"
    if value is None:
        raise TaskError(f"{task}: key= goes with debounce= (e.g. debounce='5s'); give both or neither")
    if isinstance(value, str):
        try:
            value = parse_duration(value, what=what)
        except ValueError as exc:
            raise TaskError(str(exc)) from None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not seconds > 0
        or math.isinf(seconds)
    ):
        raise TaskError(f"{what} must be a positive duration (seconds, timedelta or '5s'), got {value!r}")
    return float(seconds)


@dataclass(frozen=True)
class Debounced:
    """A debounced request, checked and planned: its job, key and delay (seconds)."""

    request: EnqueueRequest
    spec: JobSpec
    key: str
    delay: float


def plan_debounced(
    planner: Planner, items: Sequence[EnqueueRequest], *, connection: object, numbered: bool
) -> dict[int, Debounced]:
    """The debounced requests among ``items``, by position, checked before anything is
    written; with ``numbered`` an error names the request's position."""
    planned = {}
    for index, request in enumerate(items):
        if request.debounced:
            try:
                planned[index] = _checked(planner, request, connection)
            except TaskError as exc:
                if not numbered:
                    raise
                raise at_item(index, exc) from None
    return planned


def _checked(planner: Planner, request: EnqueueRequest, connection: object) -> Debounced:
    name, key = request.task, request.key
    delay = debounce_seconds(request.debounce, task=name)
    if connection is not None:
        raise TaskError(f"{name}: a debounced enqueue commits on its own; drop connection=")
    if not isinstance(key, str) or not key:
        raise TaskError(f"{name}: debounce needs a key= (a non-empty string), got {key!r}")
    check_text(key, what=f"{name}: debounce key", max_length=MAX_NAME_LENGTH)
    for option, given in (
        ("countdown", request.countdown),
        ("eta", request.eta),
        ("task_id", request.task_id),
    ):
        if given is not None:
            raise TaskError(f"{name}: debounce sets the job's id and run time; drop {option}=")
    if planner.plan_routed([request], numbered=False):
        raise TaskError(f"{name}: routed to a broadcast channel, which cannot be debounced")
    spec = planner.plan(request)
    if spec.unique_key is not None:
        raise TaskError(f"{name}: a unique task cannot be debounced (give one or the other)")
    return Debounced(request, spec, key, delay)


def upsert_sync(backend: Backend, planner: Planner, item: Debounced) -> TaskResult:
    """Replace the waiting job of the task and key with ``item``'s call, or insert it; its handle."""
    spec, store = item.spec, DebounceStore(backend.queries)
    signals = backend.signals
    if signals.before_publish:
        signals.before_publish.send(publish_info(spec))
    with migrated(backend.namespace), backend.pool.connection() as conn:
        for _ in range(ROUNDS):
            with conn.transaction():
                held = store.holder(conn, task=spec.task, key=item.key)
                if held is not None:  # the call is signed with the id it runs under
                    store.replace(conn, spec=_as(planner, item, held), delay=item.delay)
                    break
                if store.insert(conn, spec=spec, key=item.key, delay=item.delay):
                    held = spec.id
                    break
        else:
            raise _lost(item)
    if signals.after_publish:
        signals.after_publish.send(publish_info(spec, held))
    return TaskResult(backend, held)


async def upsert_async(backend: Backend, planner: Planner, item: Debounced) -> TaskResult:
    """The async twin of ``upsert_sync`` (on the backend's async pool)."""
    spec, store = item.spec, DebounceStore(backend.queries)
    signals = backend.signals
    if signals.before_publish:
        await signals.before_publish.asend(publish_info(spec))
    with migrated(backend.namespace):
        async with (await backend.apool()).connection() as conn:
            for _ in range(ROUNDS):
                async with conn.transaction():
                    held = await store.aholder(conn, task=spec.task, key=item.key)
                    if held is not None:
                        await store.areplace(conn, spec=_as(planner, item, held), delay=item.delay)
                        break
                    if await store.ainsert(conn, spec=spec, key=item.key, delay=item.delay):
                        held = spec.id
                        break
            else:
                raise _lost(item)
    if signals.after_publish:
        await signals.after_publish.asend(publish_info(spec, held))
    return TaskResult(backend, held)


def _as(planner: Planner, item: Debounced, task_id: str) -> JobSpec:
    """``item``'s call planned under the id of the job it replaces (signed for that id)."""
    return planner.plan(replace(item.request, task_id=task_id, debounce=None, key=None))


def _lost(item: Debounced) -> TaskError:
    task, key = item.spec.task, item.key
    return TaskError(f"{task}: debounce key {key!r} changed hands {ROUNDS} times while enqueueing; try again")
