"""Import the user's application object from a ``module:attribute`` string."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from stem_pg.core.errors import ConfigError

if TYPE_CHECKING:
    from stem_pg.client.app import Stem


def load_app(spec: str) -> Stem:
    """Import ``package.module:app`` (the current directory is importable, as with Celery)."""
    from stem_pg.client.app import Stem  # psycopg and the client: only for commands that load an app

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app: {spec!r} must look like 'package.module:app'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app: cannot import module {module_name!r}: {exc}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, Stem):
        raise ConfigError(f"--app: {spec!r} is {type(app).__name__}, not a stem_pg.Stem application")
    return app
