"""``manage.py stem_migrate``: ``stem migrate`` on the project's database and namespace.

The URL and namespace are ``get_app()``'s (``STEM_PG``; STEM_BROKER_URL / STEM_NAMESPACE win);
``--url`` and ``--namespace`` still override them, as do the other options of ``stem migrate``.
"""

from __future__ import annotations

from stem_pg.contrib.django.management.commands._delegate import DelegatingCommand, given


class Command(DelegatingCommand):
    help = "Create or upgrade the project's stem_pg namespace: the options of `stem migrate`."

    def run(self, args: list[str], *, prog_name: str) -> None:
        from stem_pg.cli import run_command
        from stem_pg.contrib.django.settings import get_app

        app = get_app()
        url = [] if given(args, "--url") else ["--url", app.url]
        namespace = [] if given(args, "--namespace") else ["--namespace", app.namespace]
        run_command(("migrate",), [*args, *url, *namespace], prog_name=prog_name)
