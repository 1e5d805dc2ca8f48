"""Settings of the test Django project: the database is STEM_TEST_DATABASE_URL's (the test
session sets it), the stem_pg namespace STEM_PG's (the tests override it, or STEM_NAMESPACE)."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

_url = urlsplit(os.environ.get("STEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS = ["django_tasks", "stem_pg.contrib.django", "tests.django_project.shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
STEM_PG = {"app": os.environ.get("SHOP_STEM_APP", "tests.django_project.shop.stem:app"), "namespace": "shop"}
TASKS = {"default": {"BACKEND": "stem_pg.contrib.django.tasks.StemBackend"}}
LOGGING_CONFIG = None
