"""Import the user's application object from a ``module:attribute`` string, and point it at
the database and namespace the rules choose."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from stem_pg.core.dsn import validate_url
from stem_pg.core.errors import ConfigError

if TYPE_CHECKING:
    from stem_pg.client.app import Stem
    from stem_pg.config.settings import Component, StemConfig


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


def point_app(
    app: Stem,
    config: StemConfig,
    *,
    url: str | None,
    namespace: str | None,
    component: Component,
    direct_url: str | None,
) -> Stem:
    """Point a loaded app at the database and namespace the rules choose (StemConfig.url_for
    and namespace_for; ``url``, ``namespace`` and ``direct_url``: the ``--url``,
    ``--namespace`` and ``--direct-url`` values, None when not given)."""
    app.url = config.url_for(flag=url, app=lambda: app.url)
    if direct_url:
        app.direct_url = validate_url(direct_url, source="--direct-url")
    app.namespace = config.namespace_for(component, flag=namespace, app=app.namespace)
    return app
