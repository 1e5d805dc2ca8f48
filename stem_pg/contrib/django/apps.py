"""The Django application of stem_pg: its management commands, and a fresh app per settings change."""

from __future__ import annotations

from django.apps import AppConfig


class StemPgConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    name = "stem_pg.contrib.django"
    label = "stem_pg"
    verbose_name = "stem_pg"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from stem_pg.contrib.django.settings import forget_app

        setting_changed.connect(forget_app, dispatch_uid="stem_pg.contrib.django.forget_app")
