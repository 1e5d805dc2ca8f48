"""The worker runtime: claim, execute, flush, heartbeat and rescue, on asyncio.

``Worker`` is imported on first use (PEP 562): ``stem worker run`` imports this package's
light modules (the lean process's plan, the options) without the driver and the runtime,
which only the lean process that runs the workers loads (stem_pg.worker.lean).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stem_pg.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from stem_pg.worker.worker import Worker

__all__ = ["Worker", "WorkerSettings"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from stem_pg.worker.worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
