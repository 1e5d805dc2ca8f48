"""The Django integration against a real Django project (tests/django_project) and real Postgres.

The project's views enqueue inside ``transaction.atomic()`` on Django's own connection: a
rolled-back block leaves no job, a committed one is run by a real worker process started with
``manage.py stem_worker``. Django tasks (the tasks framework's ``@task``) enqueued through
``StemBackend`` run on that worker, and their results are read back with ``get_result``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.acceptance.workerapp import WorkerProcess
from tests.helpers import REPO_ROOT, stem_env
from tests.namespace_stock import NamespaceStock

django = pytest.importorskip("django")

MANAGE = str(REPO_ROOT / "tests" / "django_project" / "manage.py")
SETTINGS = "tests.django_project.settings"


@pytest.fixture(scope="module")
def project(database_url: str) -> Iterator[None]:
    """Django set up in this process on the test database (once: Django cannot be set up twice)."""
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("STEM_TEST_DATABASE_URL", database_url)
        import tests.django_project.settings as module

        settings.configure(**{name: getattr(module, name) for name in dir(module) if name.isupper()})
        django.setup()
    yield


@pytest.fixture(scope="module")
def shop_namespace(namespace_stock: NamespaceStock) -> Iterator[str]:
    """One migrated namespace for the module (its worker serves every test)."""
    name = namespace_stock.take()
    yield name
    namespace_stock.discard(name)


@pytest.fixture
def shop(project: None, shop_namespace: str) -> Iterator[str]:
    """STEM_PG pointed at the module's namespace (the app follows the settings change)."""
    from django.test import override_settings

    with override_settings(
        STEM_PG={"app": "tests.django_project.shop.stem:app", "namespace": shop_namespace}
    ):
        yield shop_namespace


def manage(database_url: str, *args: str) -> list[str]:
    return [sys.executable, MANAGE, *args]


def manage_env(database_url: str, **extra: str) -> dict[str, str]:
    return stem_env(
        DJANGO_SETTINGS_MODULE=SETTINGS, STEM_TEST_DATABASE_URL=database_url, PYTHONUNBUFFERED="1", **extra
    )


@pytest.fixture(scope="module")
def worker(
    database_url: str, shop_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """``manage.py stem_worker`` serving the module's namespace (options as ``stem worker run``)."""
    log_path = tmp_path_factory.mktemp("django") / "worker.log"
    args = ["stem_worker", "--namespace", shop_namespace, "--concurrency", "4", "--poll-interval", "0.2"]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            manage(database_url, *args), cwd=REPO_ROOT, env=manage_env(database_url),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    process = WorkerProcess(popen, log_path)
    try:
        yield process
    finally:
        process.kill_group()


def job_rows(db: psycopg.Connection[Any], namespace: str, task_id: str) -> int:
    found = db.execute(
        psycopg.sql.SQL("SELECT (SELECT count(*) FROM {ns}.jobs WHERE id = %(id)s)"
                        " + (SELECT count(*) FROM {ns}.results WHERE id = %(id)s)").format(
            ns=psycopg.sql.Identifier(namespace)
        ),
        {"id": task_id},
    ).fetchone()  # fmt: skip
    assert found is not None
    return int(found[0])


def get(path: str) -> tuple[int, dict[str, Any]]:
    from django.test import Client

    response = Client(raise_request_exception=True).get(path)
    return response.status_code, json.loads(response.content)


def test_a_rolled_back_view_leaves_no_job(shop: str, db: psycopg.Connection[Any]) -> None:
    status, body = get("/orders/?order=3&fail=1")
    assert (status, body["committed"]) == (409, False)
    assert job_rows(db, shop, body["task_id"]) == 0


def test_a_committed_view_job_runs_on_a_manage_py_worker(
    shop: str, worker: WorkerProcess, db: psycopg.Connection[Any]
) -> None:
    from stem_pg.contrib.django import get_app

    status, body = get("/orders/?order=7")
    assert (status, body["committed"]) == (200, True)
    assert job_rows(db, shop, body["task_id"]) == 1
    assert get_app().result(body["task_id"]).get(timeout=60) == "receipt for order 7", worker.log()


def test_a_rolled_back_django_task_is_never_enqueued(shop: str, db: psycopg.Connection[Any]) -> None:
    status, body = get("/signup/?user=bob&fail=1")
    assert (status, body["committed"]) == (409, False)
    assert job_rows(db, shop, body["result_id"]) == 0


def wait_finished(task: Any, result_id: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = task.get_result(result_id)
        if result.is_finished or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_django_tasks_run_on_a_real_worker_and_their_results_read_back(
    shop: str, worker: WorkerProcess
) -> None:
    from django.utils import timezone

    from tests.django_project.shop.tasks import add, add_later, explode, welcome, where

    _, body = get("/signup/?user=ada")
    not_before = timezone.now() + timedelta(seconds=1)
    deferred = add_later.using(run_after=not_before, priority=5).enqueue(20, 22)
    assert body["committed"] is True
    enqueued = add.enqueue(2, 3)
    assert enqueued.status == "READY"
    context = where.enqueue(label="x")
    failing = explode.enqueue("no such order")

    signed_up = wait_finished(welcome, body["result_id"])
    assert (signed_up.status, signed_up.return_value) == ("SUCCESSFUL", "welcome ada"), worker.log()
    done = wait_finished(add, enqueued.id)
    assert (done.status, done.return_value, done.attempts) == ("SUCCESSFUL", 5, 1), worker.log()
    assert done.finished_at is not None and done.started_at is not None
    ran = wait_finished(where, context.id)
    assert ran.return_value == {
        "label": "x",
        "attempt": 1,
        "database": django.conf.settings.DATABASES["default"]["NAME"],
    }
    failed = wait_finished(explode, failing.id)
    assert failed.status == "FAILED"
    assert failed.errors[0].exception_class is ValueError
    assert "no such order" in failed.errors[0].traceback
    enqueued.refresh()
    assert enqueued.status == "SUCCESSFUL"
    later = wait_finished(add_later, deferred.id)
    assert (later.status, later.return_value) == ("SUCCESSFUL", 42), worker.log()
    assert later.started_at is not None and later.started_at >= not_before


def test_get_result_of_an_unknown_id_raises(shop: str) -> None:
    from stem_pg.contrib.django.compat import TaskResultDoesNotExist
    from tests.django_project.shop.tasks import add

    with pytest.raises(TaskResultDoesNotExist):
        add.get_result("no-such-task")


def test_stem_migrate_creates_the_settings_namespace(database_url: str, fresh_namespace: str) -> None:
    done = subprocess.run(
        manage(database_url, "stem_migrate"), cwd=REPO_ROOT,
        env=manage_env(database_url, STEM_NAMESPACE=fresh_namespace),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{fresh_namespace}: upgrade to head done"), done.stdout


def test_stem_worker_help_lists_the_worker_options(database_url: str) -> None:
    done = subprocess.run(
        manage(database_url, "stem_worker", "--help"), cwd=REPO_ROOT, env=manage_env(database_url),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Usage: manage.py stem_worker [OPTIONS]" in done.stdout
    assert "--concurrency" in done.stdout and "--queue" in done.stdout


def test_a_large_batch_as_the_first_statement_of_a_block_rolls_back_with_it(
    shop: str, db: psycopg.Connection[Any]
) -> None:
    """From 200 jobs on, enqueue_many streams a COPY inside a transaction block of its own;
    as the first statement of a Django block (no transaction begun yet) it must still be
    part of the block's transaction, not commit on its own."""
    from django.db import connection, transaction

    from stem_pg.contrib.django import get_app

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        batch = [("shop.receipt", {"order": n}) for n in range(250)]
        handles = get_app().enqueue_many(batch, connection=connection)
        raise Rollback
    assert sum(job_rows(db, shop, h.id) for h in handles[:5]) == 0


@pytest.mark.parametrize("command", ["stem_worker", "stem_migrate"])
def test_bad_stem_pg_settings_are_one_line_naming_the_key(database_url: str, command: str) -> None:
    done = subprocess.run(
        manage(database_url, command), cwd=REPO_ROOT,
        env=manage_env(database_url, SHOP_STEM_APP="shop_nowhere"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {'Django settings: ' if command == 'stem_worker' else ''}"
        "STEM_PG['app']: 'shop_nowhere' must look like 'package.module:app'"
    ], done.stderr
