"""The Django integration's pure parts: Django's connection parameters as a URL, the
exception class of a stored traceback, and the state -> status table (no database)."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

from stem_pg.contrib.django.results import STATUSES, class_path
from stem_pg.contrib.django.settings import _url
from stem_pg.core.dsn import validate_url
from stem_pg.core.states import TaskState


@pytest.mark.parametrize(
    ("params", "url"),
    [
        ({"dbname": "app", "host": "db", "port": "5432", "user": "app"}, "postgresql://app@db:5432/app"),
        (
            {"dbname": "app", "user": "a b", "password": "p@ss:/w?rd", "host": "db"},
            "postgresql://a%20b:p%40ss%3A%2Fw%3Frd@db/app",
        ),
        ({"dbname": "app", "host": "/var/run/postgresql"}, "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql"),
        ({"dbname": "app", "host": "::1", "port": 5433}, "postgresql://[::1]:5433/app"),
        (
            {"dbname": "app", "host": "db", "sslmode": "require", "client_encoding": "UTF8",
             "cursor_factory": object, "context": object(), "prepare_threshold": None},
            "postgresql://db/app?sslmode=require",
        ),
    ],
)  # fmt: skip
def test_django_connection_parameters_become_a_libpq_url(params: dict[str, object], url: str) -> None:
    assert _url(params) == url
    assert validate_url(url, source="test") == url


@pytest.mark.parametrize(
    ("traceback", "error", "path"),
    [
        ('Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n', None,
         "builtins.ValueError"),
        ("Traceback (most recent call last):\nshop.tasks.Declined: card\n", None, "shop.tasks.Declined"),
        (None, "KeyError: 'k'", "builtins.KeyError"),
        (None, "revoked by an operator", "builtins.Exception"),
        (None, "Declined: not a builtin", "builtins.Exception"),
    ],
)  # fmt: skip
def test_the_exception_class_is_read_from_the_stored_traceback(
    traceback: str | None, error: str | None, path: str
) -> None:
    assert class_path(traceback, error) == path


def test_every_state_has_a_django_status() -> None:
    assert set(STATUSES) == set(TaskState)
    assert {str(STATUSES[s]) for s in (TaskState.QUEUED, TaskState.RETRIED)} == {"READY"}
    assert str(STATUSES[TaskState.CANCELLED]) == "FAILED"
