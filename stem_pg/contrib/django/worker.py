"""The application a stem_pg worker runs for a Django project.

    DJANGO_SETTINGS_MODULE=mysite.settings stem worker run --app stem_pg.contrib.django.worker:app

(``manage.py stem_worker`` runs exactly that). Reading ``app`` sets Django up if it is not
yet, imports the ``tasks`` module of every installed application (as Celery's autodiscovery
does), and returns ``get_app()`` with every task of each ``StemBackend`` registered on it.
Nothing happens at import: the attribute is built on first access.
"""

from __future__ import annotations

from typing import Any

from stem_pg.client.app import Stem
from stem_pg.core.errors import ConfigError

_built: Stem | None = None


def worker_app() -> Stem:
    """The project's app with its Django tasks registered (built once per process)."""
    global _built
    if _built is None:
        from django.core.exceptions import ImproperlyConfigured

        try:
            _built = _build()
        except ImproperlyConfigured as exc:  # one line from the CLI, not a traceback
            raise ConfigError(f"Django settings: {exc}") from None
    return _built


def _build() -> Stem:
    import django
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    if not apps.ready:
        django.setup()
    from django.conf import settings

    from stem_pg.contrib.django.settings import get_app

    app = get_app()
    autodiscover_modules("tasks")
    if getattr(settings, "TASKS", None):  # Django's tasks framework is configured
        _register_django_tasks(app)
    return app


def _register_django_tasks(app: Stem) -> None:
    from stem_pg.contrib.django.compat import task_backends
    from stem_pg.contrib.django.tasks import StemBackend

    for backend in task_backends.all():
        if isinstance(backend, StemBackend):
            backend.register_all(app)


def __getattr__(name: str) -> Any:
    if name == "app":
        return worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
