"""Django tasks (the tasks framework's @task) that run on stem_pg workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connection

from stem_pg.contrib.django.compat import TaskContext

if TYPE_CHECKING:
    from django_tasks import task
else:
    try:  # Django >= 6.0
        from django.tasks import task
    except ImportError:  # the django-tasks backport
        from django_tasks import task


@task()
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def where(context: TaskContext, label: str) -> dict[str, Any]:
    """Runs inside Django: reads the database through the ORM's connection."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_database()")
        (database,) = cur.fetchone()
    return {"label": label, "attempt": context.attempt, "database": database}


@task()
def explode(reason: str) -> None:
    raise ValueError(reason)


@task()
def welcome(user: str) -> str:
    return f"welcome {user}"


@task()
async def add_later(a: int, b: int) -> int:
    """An async task: it runs on the worker's event loop."""
    return a + b
