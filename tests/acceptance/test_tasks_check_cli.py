"""``stem tasks check`` from a shell, as CI runs it before a deploy: exit 1 while jobs of a
renamed task wait, 0 once the rename has landed (the old jobs drained, producers on the new
name); ``--json`` for machines."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from stem_pg.client.app import Stem
from tests.acceptance import deployapp
from tests.helpers import run_stem, running_worker

NEW = "tests.acceptance.deployapp:new"


@pytest.fixture
def releases(database_url: str, namespace: str) -> Iterator[tuple[Stem, Stem]]:
    for stem in (deployapp.old, deployapp.new):
        stem.url, stem.namespace = database_url, namespace
    yield deployapp.old, deployapp.new
    for stem in (deployapp.old, deployapp.new):
        stem.close()


@pytest.mark.timeout(120)
def test_check_fails_on_a_renamed_task_and_passes_after_the_rename_lands(
    releases: tuple[Stem, Stem], database_url: str, namespace: str
) -> None:
    old, new = releases
    waiting = [old.enqueue("deploy.send_mail", {"to": f"{n}@x"}) for n in range(3)]

    check = run_stem(database_url, "tasks", "check", "--app", NEW, "--namespace", namespace)
    assert check.returncode == 1, check.stderr
    assert check.stdout == (
        "deploy.send_mail: task not registered; did you mean 'deploy.send_email'? (3 queued)\n"
    )
    as_json = run_stem(database_url, "tasks", "check", "--app", NEW, "--namespace", namespace, "--json")
    assert as_json.returncode == 1, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {
            "task": "deploy.send_mail",
            "problem": "task not registered; did you mean 'deploy.send_email'?",
            "counts": {"queued": 3},
        }
    ]

    with running_worker(old):  # the old release drains its jobs; producers move to the new name
        for job in waiting:
            job.get(timeout=10)
    new.enqueue("deploy.send_email", {"to": "d@x"})
    check = run_stem(database_url, "tasks", "check", "--app", NEW, "--namespace", namespace)
    assert (check.returncode, check.stdout) == (
        0,
        f"ok: {NEW} can run all 1 waiting jobs, schedules, canvas members and workflow runs\n",
    ), check.stderr
