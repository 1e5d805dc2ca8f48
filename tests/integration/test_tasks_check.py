"""``stem tasks check``'s findings against the real Postgres: waiting work of every source
(queued and scheduled jobs, beat schedules, planned canvas members, unfinished workflow
runs) judged against a new release that renames a task and changes two signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stem_pg import chain
from stem_pg.client.app import Stem
from stem_pg.core.deploy_check import Problem, find_problems
from stem_pg.core.schedule_spec_parse import parse_spec
from stem_pg.core.schedules import ScheduleEntry
from stem_pg.db.connect import connection
from stem_pg.db.stores.tasks_check import waiting_groups
from tests.acceptance import deployapp


@pytest.fixture
def releases(database_url: str, namespace: str) -> Iterator[tuple[Stem, Stem]]:
    for stem in (deployapp.old, deployapp.new):
        stem.url, stem.namespace = database_url, namespace
    yield deployapp.old, deployapp.new
    for stem in (deployapp.old, deployapp.new):
        stem.close()


def problems(stem: Stem) -> list[Problem]:
    with connection(stem.url, role="cli") as conn:
        groups = waiting_groups(conn, stem.queries)
    return find_problems(groups, stem.registry, stem.workflows)


def test_every_source_of_waiting_work_is_checked_against_the_new_release(releases: tuple[Stem, Stem]) -> None:
    old, new = releases
    old.enqueue("deploy.send_mail", {"to": "a@x"})
    old.enqueue("deploy.send_mail", {"to": "b@x"})
    old.enqueue("deploy.send_mail", {"to": "c@x"}, countdown=3600)
    old.enqueue("deploy.resize", {"path": "p.png", "width": 10})
    old.enqueue("deploy.ping")
    old.schedules.save(ScheduleEntry("mail", "deploy.send_mail", parse_spec("every:5m"), {"to": "d@x"}))
    old.apply(chain(deployapp.ping.s(), deployapp.send_mail.s().set(result_arg="to")))
    # the previous result arrives as ``width``: given, as far as the binding goes
    old.apply(chain(deployapp.ping.s(), deployapp.resize_old.s(path="p").set(result_arg="width")))
    old.start_workflow("deploy.onboard", {"user": "u1"})

    assert problems(old) == []
    assert [p.line() for p in problems(new)] == [
        "deploy.onboard: params do not fit: missing a required argument: 'plan' (1 workflow)",
        "deploy.resize: arguments do not fit: missing a required argument: 'height' (1 queued, 1 canvas)",
        "deploy.send_mail: task not registered; did you mean 'deploy.send_email'?"
        " (2 queued, 1 scheduled, 1 schedule, 1 canvas)",
    ]
