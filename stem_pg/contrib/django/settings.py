"""``settings.STEM_PG`` -> the project's ``Stem`` application, and Django databases as URLs.

``STEM_PG`` is a dict; every key is optional:

* ``"database"``: the Django database alias the namespace lives in (default ``"default"``);
  the URL is built from its settings, and the tasks backend writes in its transactions;
* ``"url"``: a ``postgresql://`` URL instead (then the tasks backend uses stem_pg's own pool);
* ``"namespace"``: the namespace (default ``stem``);
* ``"app"``: ``"package.module:app"``, a ``Stem`` of your own (with ``@app.task`` handlers)
  to use instead of a plain one; ``"url"`` and ``"namespace"``, when given, are applied to it.

The environment wins as everywhere in stem_pg: STEM_BROKER_URL over the URL, STEM_NAMESPACE
(and STEM_WORKER_NAMESPACE for workers) over the namespace.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from stem_pg.client.app import Stem
from stem_pg.core.dsn import validate_url

if TYPE_CHECKING:
    from collections.abc import Mapping

KEYS = ("app", "database", "namespace", "url")
#: What Django passes psycopg besides libpq's own parameters.
_NOT_LIBPQ = {"cursor_factory", "context", "prepare_threshold", "client_encoding"}

_lock = threading.Lock()
_app: Stem | None = None
_built_here = False  # a Stem of our own (closed when forgotten), not STEM_PG["app"]'s


def stem_settings() -> dict[str, str]:
    """``settings.STEM_PG``, checked: ImproperlyConfigured names an unknown key or a bad value."""
    options: object = getattr(settings, "STEM_PG", {})
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"STEM_PG must be a dict, got {type(options).__name__}")
    for key, value in options.items():
        if key not in KEYS:
            raise ImproperlyConfigured(f"STEM_PG: unknown key {key!r} (known: {', '.join(KEYS)})")
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(f"STEM_PG[{key!r}] must be a non-empty string")
    return dict(options)


def database_alias() -> str:
    return stem_settings().get("database", "default")


def database_url(alias: str | None = None) -> str:
    """The ``postgresql://`` URL of Django database ``alias`` (default: STEM_PG's ``database``,
    else ``default``), from its settings as Django's backend would connect.

    Raises ImproperlyConfigured for an unknown alias or a database that is not PostgreSQL.
    """
    alias = alias or database_alias()
    if alias not in settings.DATABASES:
        raise ImproperlyConfigured(f"STEM_PG: no database {alias!r} in settings.DATABASES")
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ImproperlyConfigured(
            f"STEM_PG: database {alias!r} uses {wrapper.vendor}; stem_pg needs PostgreSQL"
        )
    return _url(wrapper.get_connection_params())


def _url(params: Mapping[str, Any]) -> str:
    """A libpq URL of Django's connection parameters (a socket directory goes in ``?host=``)."""
    rest = {k: v for k, v in params.items() if k not in _NOT_LIBPQ and v is not None}
    user, password = rest.pop("user", None), rest.pop("password", None)
    host, port = str(rest.pop("host", "") or ""), rest.pop("port", None)
    dbname = str(rest.pop("dbname", "") or "")
    if host.startswith("/") or "," in host:
        rest["host"], host = host, ""
    elif ":" in host:
        host = f"[{host}]"
    auth = ""
    if user:
        auth = quote(str(user), safe="") + (f":{quote(str(password), safe='')}" if password else "") + "@"
    query = urlencode({k: str(v) for k, v in rest.items()})
    return f"postgresql://{auth}{host}{f':{port}' if port else ''}/{quote(dbname, safe='')}" + (
        f"?{query}" if query else ""
    )


def get_app() -> Stem:
    """The project's ``Stem`` application, built from ``STEM_PG`` once (and again after a
    settings change in tests). Raises ImproperlyConfigured for bad settings."""
    global _app, _built_here
    with _lock:
        if _app is None:
            options = stem_settings()
            _app, _built_here = _build(options), "app" not in options
        return _app


def forget_app(*, setting: str, **_: Any) -> None:
    """``setting_changed`` receiver: the next ``get_app()`` reads the new settings."""
    global _app
    if setting in ("STEM_PG", "DATABASES"):
        with _lock:
            old, _app = _app, None
        if old is not None and _built_here:
            old.close()


def _build(options: dict[str, str]) -> Stem:
    spec = options.get("app")
    if spec is None:
        return Stem(options.get("url") or database_url(), namespace=options.get("namespace"))
    app = _import(spec)
    if "url" in options and not app.config.broker_url:  # STEM_BROKER_URL wins, as in Stem()
        app.url = validate_url(options["url"], source="STEM_PG['url']")
    if "namespace" in options:
        app.namespace = app.config.namespace_for(app=options["namespace"])
    return app


def _import(spec: str) -> Stem:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ImproperlyConfigured(f"STEM_PG['app']: {spec!r} must look like 'package.module:app'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"STEM_PG['app']: cannot import module {module_name!r}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, Stem):
        raise ImproperlyConfigured(f"STEM_PG['app']: {spec!r} is {type(app).__name__}, not a stem_pg.Stem")
    return app
