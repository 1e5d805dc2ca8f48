"""``app.testing``: the application's way to its test helpers (stem_pg.testing), opened lazily
so that an application never loads them (nor the worker parts they reuse) outside tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stem_pg.testing.app import AppTesting


class TestingAccess:
    """Gives the Stem facade its ``testing`` property."""

    @property
    def testing(self) -> AppTesting:
        """Test helpers for this app (stem_pg.testing): ``with app.testing.eager(): ...``,
        ``app.testing.run_until_idle()``, ``app.testing.assert_enqueued(task, kwargs=...)``."""
        from stem_pg.testing.app import AppTesting

        app: Any = self  # the Stem this class is mixed into (client.app imports this module)
        return AppTesting(app)
