"""Signed payloads with real worker processes: a worker that verifies runs what a signed
producer enqueued (enqueue, enqueue_many's COPY, canvases, beat) and dead-letters,
without running it, a job that is unsigned, tampered with or signed by an unknown key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from stem_pg.beat.scheduler import Beat, BeatSettings
from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.core.canvas import chain
from stem_pg.core.envelope import JobSpec
from stem_pg.core.planning import EnqueueRequest
from stem_pg.core.schedules import parse_entry
from stem_pg.core.signing import SIGNATURE_HEADER, Signing
from tests.acceptance.signingapp import make_signing_app
from tests.acceptance.workerapp import Workers, create_tables, query
from tests.helpers import run_cli, stem_env, wait_for

OLD = "old-secret-for-k1-0123456789"
NEW = "new-secret-for-k2-9876543210"
#: The worker verifies with both keys (rotation: k2 is new, k1 still in use somewhere).
WORKER_ENV = {"STEM_SIGNING_KEYS": f"k1={OLD},k2={NEW}"}
WAIT = 60.0
APP = "tests.acceptance.signingapp:app"


@pytest.fixture
def producers(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[dict[str, Stem]]:
    """Apps on the test namespace: ``new`` signs with k2, ``old`` with k1, ``rogue`` with an
    unknown key, ``plain`` does not sign."""
    create_tables(db, namespace)
    apps = {
        "new": make_signing_app(database_url, namespace, Signing.from_spec({"k1": OLD, "k2": NEW}, "k2")),
        "old": make_signing_app(database_url, namespace, Signing.from_spec({"k1": OLD})),
        "rogue": make_signing_app(database_url, namespace, Signing.from_spec({"k9": "x" * 32})),
        "plain": make_signing_app(database_url, namespace, None),
    }
    yield apps
    for application in apps.values():
        application.close()


def insert_row(db: psycopg.Connection[Any], ns: str, spec: JobSpec, args: dict[str, Any]) -> None:
    """Insert a job by plain SQL, as anyone with INSERT on the jobs table can."""
    query(
        db,
        ns,
        "INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [spec.id, spec.task, spec.queue, spec.priority, json.dumps(args), spec.headers, spec.max_retries],
    )


def ran(db: psycopg.Connection[Any], ns: str) -> set[str]:
    return {row[0] for row in query(db, ns, "SELECT task_id FROM {ns}.ledger WHERE event = 'ran'")}


def dead(db: psycopg.Connection[Any], ns: str) -> dict[str, tuple[str, str]]:
    rows = query(db, ns, "SELECT task_id, reason, error FROM {ns}.dead_letters")
    return {task_id: (reason, error) for task_id, reason, error in rows}


def settled(db: psycopg.Connection[Any], ns: str, ids: set[str], workers: Workers) -> None:
    wait_for(
        lambda: ids <= ran(db, ns) | set(dead(db, ns)),
        WAIT,
        f"jobs {sorted(ids - ran(db, ns) - set(dead(db, ns)))} to run or die\n{workers.logs()}",
        interval=0.1,
    )


@pytest.mark.timeout(120)
def test_unsigned_tampered_and_unknown_key_jobs_are_dead_lettered_never_run(
    producers: dict[str, Stem], workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    new, old, rogue, plain = producers["new"], producers["old"], producers["rogue"], producers["plain"]
    signed_new = new.enqueue("sig.record", {"n": 1})
    signed_old = old.enqueue("sig.record", {"n": 2})  # rotation: the old key still verifies
    unsigned = plain.plan(EnqueueRequest("sig.record", {"n": 3}))
    insert_row(db, namespace, unsigned, {"n": 3})
    tampered = new.plan(EnqueueRequest("sig.record", {"n": 4}))
    assert json.loads(tampered.headers)[SIGNATURE_HEADER].startswith("k2:")  # the new key signs
    insert_row(db, namespace, tampered, {"n": 4, "extra": "injected"})
    unknown = rogue.enqueue("sig.record", {"n": 5})
    odd_headers = new.plan(EnqueueRequest("sig.record", {"n": 7}))
    odd_headers.headers = '["x"]'
    insert_row(db, namespace, odd_headers, {"n": 7})
    # Odd numbers and text survive jsonb's round trip with their signature intact.
    odd = new.enqueue("sig.record", {"n": 6, "big": 1e16, "zero": -0.0, "tiny": 1.5e-7, "t": "é\u2603"})
    ids = {signed_new.id, signed_old.id, unsigned.id, tampered.id, unknown.id, odd.id, odd_headers.id}

    workers.start(app=APP, env=WORKER_ENV)
    settled(db, namespace, ids, workers)

    assert ran(db, namespace) == {signed_new.id, signed_old.id, odd.id}, (dead(db, namespace), workers.logs())
    letters = dead(db, namespace)
    assert set(letters) == {unsigned.id, tampered.id, unknown.id, odd_headers.id}
    assert letters[unsigned.id] == ("signature_invalid", "signature_invalid: unsigned")
    assert letters[tampered.id] == ("signature_invalid", "signature_invalid: bad signature (key 'k2')")
    assert letters[unknown.id] == ("signature_invalid", "signature_invalid: signed with unknown key 'k9'")
    assert letters[odd_headers.id][1] == "signature_invalid: headers or arguments are not JSON objects"
    states = query(db, namespace, "SELECT id, state, attempts FROM {ns}.results WHERE id = ANY(%s)", [[*ids]])
    assert {i: (s, a) for i, s, a in states if i in letters} == {i: ("failed", 1) for i in letters}


@pytest.mark.timeout(120)
def test_enqueue_many_copy_canvas_and_beat_jobs_verify(
    producers: dict[str, Stem], workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    new = producers["new"]
    many = new.enqueue_many([("sig.record", {"n": i}) for i in range(250)])  # COPY from 200 on
    few = new.enqueue_many([EnqueueRequest("sig.record", {"n": i}, task_id=f"few-{i}") for i in range(3)])
    # The second and third links are enqueued by the jobs_done trigger, with ``prev`` added.
    links = new.apply(
        chain(
            new.signature("sig.add", n=1),
            new.signature("sig.add", n=10).set(result_arg="prev"),
            new.signature("sig.add", n=100).set(result_arg="prev"),
        )
    )
    now = datetime.now(UTC)
    Schedules(new.url, namespace, clock=lambda: now).save(
        parse_entry("tick", {"task": "sig.record", "spec": "every:10s", "kwargs": {"n": 7}})
    )

    async def fire() -> None:
        async with await psycopg.AsyncConnection.connect(new.url, autocommit=True) as conn:
            report = await Beat(new, BeatSettings(beat_id="beat-sig")).run_once(
                conn, now=now + timedelta(seconds=11)
            )
            assert report.fired == 1

    asyncio.run(fire())
    [beat_job] = query(db, namespace, "SELECT id, headers FROM {ns}.jobs WHERE headers ? 'stem-schedule'")
    assert beat_job[1][SIGNATURE_HEADER].startswith("k2:")

    workers.start(app=APP, env=WORKER_ENV)
    ids = {h.id for h in [*many, *few, *links.members]} | {beat_job[0]}
    settled(db, namespace, ids, workers)
    assert dead(db, namespace) == {}
    assert ids <= ran(db, namespace)
    sums = query(db, namespace, "SELECT n FROM {ns}.ledger WHERE task_id = %s", [links.members[-1].id])
    assert sums == [(111,)]  # 1, then 1 + 10, then 11 + 100: the trigger-added argument is free


@pytest.mark.timeout(120)
def test_workflow_runs_resume_under_signing(
    producers: dict[str, Stem], workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    # The worker holds verification keys only (two keys, no active one): the resume jobs
    # and the child's first job, which the database and the worker write, are unsigned.
    run = producers["new"].start_workflow("sig.flow", {"n": 20})
    workers.start(app=APP, env=WORKER_ENV)
    assert run.get(timeout=WAIT) == 42
    assert dead(db, namespace) == {}


@pytest.mark.timeout(120)
def test_ed25519_worker_with_the_public_key_only(
    database_url: str, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seed = os.urandom(32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    create_tables(db, namespace)
    producer = make_signing_app(
        database_url, namespace, Signing.from_spec({"ed1": "ed25519:" + base64.b64encode(seed).decode()})
    )
    # A worker holding only the public key verifies but cannot sign: an HMAC-signed job
    # (whoever holds that secret) is refused, as is any job it could not verify.
    forger = make_signing_app(database_url, namespace, Signing.from_spec({"ed1": "h" * 32}))
    try:
        good = producer.enqueue("sig.record", {"n": 1})
        forged = forger.enqueue("sig.record", {"n": 2})
        verify_only = "ed1=ed25519-public:" + base64.b64encode(public).decode()
        workers.start(app=APP, env={"STEM_SIGNING_KEYS": verify_only})
        settled(db, namespace, {good.id, forged.id}, workers)
    finally:
        producer.close()
        forger.close()
    assert ran(db, namespace) == {good.id}
    assert dead(db, namespace) == {
        forged.id: ("signature_invalid", "signature_invalid: bad signature (key 'ed1')")
    }


@pytest.mark.parametrize(
    ("keys", "active", "line"),
    [
        (
            "k1=hmac:S3cretButShort",
            None,
            "STEM_SIGNING_KEYS: key 'k1': an HMAC secret needs at least 16 characters",
        ),
        (f"k1={OLD}", "k2", "STEM_SIGNING_ACTIVE_KEY: 'k2' is not a key id of STEM_SIGNING_KEYS (k1)"),
        (f"k1:{OLD}", None, "STEM_SIGNING_KEYS: entry 1 is not <key id>=<secret>"),
    ],
)
def test_bad_signing_config_is_one_line_without_the_secret(
    database_url: str, keys: str, active: str | None, line: str
) -> None:
    env = stem_env(STEM_BROKER_URL=database_url, STEM_SIGNING_KEYS=keys, STEM_SIGNING_ACTIVE_KEY=active)
    done = run_cli("health", env=env)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"error: {line}"]
    assert "S3cret" not in done.stderr and OLD not in done.stderr and NEW not in done.stderr


@pytest.mark.timeout(120)
def test_stem_tasks_enqueue_signs_with_the_environment_keys(
    producers: dict[str, Stem],
    workers: Workers,
    database_url: str,
    db: psycopg.Connection[Any],
    namespace: str,
) -> None:
    env = stem_env(STEM_BROKER_URL=database_url, STEM_SIGNING_KEYS=f"k2={NEW}")
    args = ("tasks", "enqueue", "sig.record", "--kwargs", '{"n": 1}', "--app", APP, "--namespace", namespace)
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    workers.start(app=APP, env=WORKER_ENV)
    settled(db, namespace, {task_id}, workers)
    assert (ran(db, namespace), dead(db, namespace)) == ({task_id}, {})
