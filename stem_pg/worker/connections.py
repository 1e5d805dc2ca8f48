"""The worker's connections. ``per-loop``: one per loop, each opened on first use, reconnecting
on its own with backoff (stem_pg.db.managed), so a slow or lost one holds up no other loop.
``minimal``: the LISTEN connection, and one that the claim, flush, lease, maintenance and
control loops share, each statement (and transaction) in turn (stem_pg.db.shared)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from stem_pg.db.managed import AsyncConn, ManagedConnection

OnConnect = Callable[[AsyncConn], Awaitable[None]]


class WorkerConnections:
    """``claim``, ``flush``, ``house`` (registration and leases), ``maintenance``, ``control``
    and ``listen`` (in ``minimal`` mode the first five are one); ``on_lost`` runs when any of
    them fails, ``on_reconnect`` (its role, for metrics) when one is back."""

    def __init__(
        self,
        url: str,
        *,
        plan_claims: OnConnect,
        listen_connected: OnConnect,
        on_lost: Callable[[], None],
        on_reconnect: Callable[[str], None] | None = None,
        mode: str = "per-loop",
    ) -> None:
        self.listen = ManagedConnection(url, "worker-listen", listen_connected, on_lost=on_lost)
        if mode == "minimal":
            shared = ManagedConnection(url, "worker", plan_claims, on_lost=on_lost, shared=True)
            self.claim = self.flush = self.house = self.maintenance = self.control = shared
            self.all: tuple[ManagedConnection, ...] = (shared, self.listen)
        else:
            self.claim = ManagedConnection(url, "worker-claim", plan_claims, on_lost=on_lost)
            self.flush = ManagedConnection(url, "worker-flush", on_lost=on_lost)
            self.house = ManagedConnection(url, "worker-leases", on_lost=on_lost)
            self.maintenance = ManagedConnection(url, "worker-maintenance", on_lost=on_lost)
            self.control = ManagedConnection(url, "worker-control", on_lost=on_lost)
            self.all = (self.claim, self.flush, self.house, self.maintenance, self.control, self.listen)
        if on_reconnect is not None:
            for managed in self.all:
                managed.on_reconnect = on_reconnect

    async def discard(self) -> None:
        """Close them all (each is opened again on its next use)."""
        for managed in self.all:
            await managed.discard()
