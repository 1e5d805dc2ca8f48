"""Django integration: settings, transactional enqueue, management commands, a tasks backend.

Add ``"stem_pg.contrib.django"`` to INSTALLED_APPS (for ``manage.py stem_worker`` and
``manage.py stem_migrate``) and configure it with ``STEM_PG = {...}`` (``settings``).
``get_app()`` is the project's ``Stem`` application; ``database_url()`` the URL of a Django
database. Enqueue with ``connection=django.db.connection`` to join the Django transaction.
``stem_pg.contrib.django.tasks.StemBackend`` runs Django's ``@task`` functions on stem_pg.
"""

from __future__ import annotations

from stem_pg.contrib.django.settings import database_url, get_app

__all__ = ["database_url", "get_app"]
