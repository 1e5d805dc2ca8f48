"""The worker's connections. ``per-loop``: one per loop, each opened on first use, reconnecting
on its own with backoff (stem_pg.db.managed), so a slow or lost one holds up no other loop.
``minimal``: the LISTEN connection, and one that the claim, flush, lease, maintenance and
control loops share, each statement (and transaction) in turn (stem_pg.db.shared)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from stem_pg.db.connect import pooled
from stem_pg.db.managed import AsyncConn, ManagedConnection

log = logging.getLogger(__name__)

OnConnect = Callable[[AsyncConn], Awaitable[None]]


class WorkerConnections:
    """``claim``, ``flush``, ``house`` (registration and leases), ``maintenance``, ``control``
    and ``listen`` (in ``minimal`` mode the first five are one); ``on_lost`` runs when any of
    them fails, ``on_reconnect`` (its role, for metrics) when one is back.

    Behind a transaction pooler (``url`` says ``stem_pooler=transaction``) ``listen`` and
    ``maintenance`` (its vacuum holds a session lock) go to ``direct_url``; without one
    there is no ``listen`` (the claim loop polls), and ``plan_claims`` is not run on a
    pooled connection (JobStore sets the plan in each claim's transaction). Nor on the
    ``minimal`` mode's shared connection: the other loops' statements must not be planned
    with sorts off (JobStore plans each claim there too)."""

    def __init__(
        self,
        url: str,
        *,
        direct_url: str | None = None,
        plan_claims: OnConnect,
        listen_connected: OnConnect,
        on_lost: Callable[[], None],
        on_reconnect: Callable[[str], None] | None = None,
        mode: str = "minimal",
    ) -> None:
        behind_pooler = pooled(url)
        if not behind_pooler:
            direct_url = None  # everything goes to ``url``
        elif direct_url is None:
            log.warning(
                "behind a transaction pooler (stem_pooler=transaction) without STEM_DIRECT_URL:"
                " this worker does not LISTEN (jobs are found by polling) and leaves the"
                " vacuum of the jobs table to autovacuum"
            )
        planned = None if behind_pooler else plan_claims
        self.listen: ManagedConnection | None = (
            ManagedConnection(direct_url or url, "worker-listen", listen_connected, on_lost=on_lost)
            if direct_url is not None or not behind_pooler
            else None
        )
        if mode == "minimal":
            # No session plan here: sorts off would reach every statement of the other loops
            # (and a sort that no plan avoids costs so much with sorts off that it is JIT-
            # compiled, ~1 s a statement). JobStore.claim plans each claim on a shared connection.
            shared = ManagedConnection(url, "worker", on_lost=on_lost, shared=True)
            self.claim = self.flush = self.house = self.control = shared
            self.maintenance = (
                shared
                if direct_url is None
                else ManagedConnection(direct_url, "worker-maintenance", on_lost=on_lost)
            )
        else:
            self.claim = ManagedConnection(url, "worker-claim", planned, on_lost=on_lost)
            self.flush = ManagedConnection(url, "worker-flush", on_lost=on_lost)
            self.house = ManagedConnection(url, "worker-leases", on_lost=on_lost)
            self.maintenance = ManagedConnection(direct_url or url, "worker-maintenance", on_lost=on_lost)
            self.control = ManagedConnection(url, "worker-control", on_lost=on_lost)
        every = (self.claim, self.flush, self.house, self.maintenance, self.control, self.listen)
        self.all = tuple(dict.fromkeys(c for c in every if c is not None))
        if on_reconnect is not None:
            for managed in self.all:
                managed.on_reconnect = on_reconnect

    async def discard(self) -> None:
        """Close them all (each is opened again on its next use)."""
        for managed in self.all:
            await managed.discard()
