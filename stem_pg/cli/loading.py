"""Import the user's application object from a ``module:attribute`` string (the rule lives
in stem_pg.client.loading: the lean worker process loads the app with it too)."""

from __future__ import annotations

from stem_pg.client.loading import load_app

__all__ = ["load_app"]
