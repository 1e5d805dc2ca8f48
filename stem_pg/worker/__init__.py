"""The worker runtime: claim, execute, flush, heartbeat and rescue, on asyncio."""

from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.worker import Worker

__all__ = ["Worker", "WorkerSettings"]
