"""``manage.py stem_worker``: ``stem worker run`` for this project (the same options).

It runs ``stem_pg.contrib.django.worker:app``: the project's ``Stem`` (``STEM_PG``) with every
task of the Django tasks backend registered; Django is set up in each worker process.
"""

from __future__ import annotations

from stem_pg.contrib.django.management.commands._delegate import DelegatingCommand, given

WORKER_APP = "stem_pg.contrib.django.worker:app"


class Command(DelegatingCommand):
    help = "Run stem_pg workers for this project: the options of `stem worker run` (--help lists them)."

    def run(self, args: list[str], *, prog_name: str) -> None:
        from stem_pg.cli import run_command

        app = [] if given(args, "--app", "-A") else ["--app", WORKER_APP]
        run_command(("worker", "run"), [*app, *args], prog_name=prog_name)
