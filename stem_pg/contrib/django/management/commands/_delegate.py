"""What the stem_pg management commands share: they hand their arguments to a ``stem`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand

from stem_pg.core.errors import StemError
from stem_pg.core.redaction import redact

#: Django's own options, applied by manage.py before the command runs (stem does not know them).
_DJANGO_VALUED = ("--settings", "--pythonpath")
_DJANGO_FLAGS = ("--traceback", "--no-color", "--force-color", "--skip-checks")


def without_django_options(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--settings X``, ``--pythonpath=X``, ``--traceback``..."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_VALUED:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_VALUED)) and arg not in _DJANGO_FLAGS:
            kept.append(arg)
    return kept


def given(args: Sequence[str], *names: str) -> bool:
    """Whether option ``names`` (``--url``) is among ``args``, alone or as ``--url=...``."""
    return any(a in names or a.partition("=")[0] in names for a in args)


class DelegatingCommand(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    """A command whose options are a ``stem`` command's: manage.py's arguments go to ``run``
    unparsed (``--help`` shows stem's options, under ``manage.py <name>``)."""

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            self.run(without_django_options(argv[2:]), prog_name=f"{Path(argv[0]).name} {argv[1]}")
        except (ImproperlyConfigured, StemError) as exc:  # one line, as from stem itself
            self.stderr.write(f"error: {redact(str(exc))}")
            sys.exit(1)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("stem_args", nargs=argparse.REMAINDER, help="Options of the stem command.")

    def handle(self, *args: Any, **options: Any) -> None:  # call_command("stem_worker", ...)
        self.run([*args, *options.get("stem_args", [])], prog_name=f"manage.py {self._name()}")

    def _name(self) -> str:
        return type(self).__module__.rpartition(".")[2]

    def run(self, args: list[str], *, prog_name: str) -> None:
        raise NotImplementedError
