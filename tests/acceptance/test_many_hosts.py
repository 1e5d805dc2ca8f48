"""Workers and beats on three "hosts" (Linux network namespaces with names of their own,
joined by veths to a bridge on which a private cluster listens; tests/netns.py), driven
from the root namespace as from an operator's machine:

* claims: jobs enqueued here run on every host, each exactly once;
* control: ``stem worker ping|stats|inspect`` reaches the workers of every host;
* broadcasts: one message runs on the subscriber of every host;
* beat failover: the leading beat's host is cut off; the beat of another host takes over,
  and no schedule fires twice for one slot, nor when the first host comes back;
* a host cut off mid-run: its leases run out, its jobs run on the other hosts (never
  before the lease ran out), and when it comes back its finish is refused (the lease
  token is no longer its own): one result per job, from the host that ran it last.

Skipped, saying why, where network namespaces cannot be made (not root, no iproute2, EPERM).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest
from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from stem_pg.core.errors import ConfigError
from stem_pg.dev import embedded
from tests.acceptance.hostsapp import APP, create_runs, make_app, spans
from tests.acceptance.workerapp import WorkerProcess, query, wait_registered
from tests.cluster import PrivateCluster, migrated
from tests.helpers import REPO_ROOT, run_stem, stem_env, unique_namespace, wait_for
from tests.netns import HostNetwork, network_unavailable

# Real processes in network namespaces on a private server (about a minute): `pytest -m slow`.
pytestmark = pytest.mark.slow

HOSTS = ("host-a", "host-b", "host-c")
LEASE = 2.0
Db = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def network() -> Iterator[HostNetwork]:
    reason = network_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        hosts = HostNetwork(HOSTS)
    except RuntimeError as exc:  # a bridge or veth the machine refuses (it removed what it made)
        pytest.skip(f"cannot build the hosts' network: {exc}")
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture(scope="module")
def cluster(network: HostNetwork) -> Iterator[PrivateCluster]:
    """A private server listening on 127.0.0.1 and on the bridge, which the hosts reach."""
    try:
        embedded.find_bin_dir()
    except ConfigError as exc:
        pytest.skip(f"no PostgreSQL server binaries for a private cluster: {exc}")
    data_dir = Path(tempfile.mkdtemp(prefix="stem_pg-hosts-"))
    try:
        server = PrivateCluster(data_dir, listen=f"127.0.0.1,{network.address}")
        try:
            server.trust(network.network)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


class Fleet:
    """Processes started on the hosts of ``network`` for one namespace; killed in ``cleanup()``."""

    def __init__(self, cluster: PrivateCluster, network: HostNetwork, namespace: str, logs: Path) -> None:
        self.network, self.namespace, self.log_dir = network, namespace, logs
        self.url = cluster.url_at(network.address)  # as the hosts see the database
        self.started: list[WorkerProcess] = []

    def _start(self, host: str, what: str, args: list[str]) -> WorkerProcess:
        log_path = self.log_dir / f"{host}-{what}-{len(self.started)}.log"
        argv = self.network.hosts[host].command([sys.executable, "-m", "stem_pg", *args])
        env = stem_env(STEM_BROKER_URL=self.url, PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        proc = WorkerProcess(popen, log_path)
        self.started.append(proc)
        return proc

    def worker(self, host: str, *extra: str, concurrency: int = 2) -> WorkerProcess:
        return self._start(host, "worker", [
            "worker", "run", "--app", APP, "--namespace", self.namespace, "--concurrency", str(concurrency),
            "--lease", str(LEASE), "--poll-interval", "0.2", *extra,
        ])  # fmt: skip

    def beat(self, host: str) -> WorkerProcess:
        return self._start(host, "beat", [
            "beat", "--app", APP, "--namespace", self.namespace, "--lease", str(LEASE), "--max-sleep", "1",
        ])  # fmt: skip

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} (pid {p.pid}) ---\n{p.log()}" for p in self.started)

    def cleanup(self) -> None:
        for proc in self.started:
            proc.kill_group()


@pytest.fixture
def fleet(cluster: PrivateCluster, network: HostNetwork, tmp_path: Path) -> Iterator[Fleet]:
    namespace = migrated(cluster, unique_namespace("hosts"))
    with cluster.connect() as db:
        create_runs(db, namespace)
    spawner = Fleet(cluster, network, namespace, tmp_path)
    try:
        yield spawner
    finally:
        spawner.cleanup()
        for host in network.hosts.values():
            host.restore()


def host_of(worker_id: str) -> str:
    """The host in a worker or beat id ``host.pid.hex``."""
    return worker_id.split(".")[0]


def control(cluster: PrivateCluster, namespace: str, command: str) -> tuple[int, dict[str, Any]]:
    """``stem worker <command> --json`` from the root namespace: (exit code, the JSON)."""
    done = run_stem(cluster.url, "worker", command, "--namespace", namespace, "--json", "--timeout", "4s")
    return done.returncode, json.loads(done.stdout or "{}")


@pytest.mark.timeout(120)
def test_claims_control_and_broadcasts_reach_every_host(cluster: PrivateCluster, fleet: Fleet) -> None:
    ns = fleet.namespace
    procs = {host: fleet.worker(host, "--broadcast", "fleet") for host in HOSTS}
    app = make_app(cluster.url, ns)
    with cluster.connect() as db, contextlib.closing(app):
        wait_registered(db, ns, {p.pid for p in procs.values()}, timeout=60)
        subscribed = "SELECT count(*) FROM {ns}.broadcast_subscriptions"
        wait_for(lambda: query(db, ns, subscribed)[0][0] == 3, 20, f"three subscriptions\n{fleet.logs()}")

        # Claims: every host takes some, and every job runs exactly once.
        jobs = 60
        requests = (EnqueueRequest("hosts.once", {"n": i, "sleep": 0.1}) for i in range(jobs))
        ids = [r.id for r in app.enqueue_many(requests)]
        done = "SELECT count(*) FROM {ns}.results WHERE state = 'succeeded'"
        wait_for(lambda: query(db, ns, done)[0][0] == jobs, 60, f"the jobs\n{fleet.logs()}", interval=0.2)
        runs = query(db, ns, "SELECT task_id, host FROM {ns}.runs")
        assert sorted(r[0] for r in runs) == sorted(ids), "a job ran twice, or not at all"
        results = query(db, ns, "SELECT worker_id, result FROM {ns}.results")
        assert all(host_of(worker) == host for worker, host in results), results
        assert collections.Counter(host for _, host in runs).keys() == set(HOSTS), runs

        # Control: the root namespace reaches the worker of every host.
        workers = {r[0] for r in query(db, ns, "SELECT id FROM {ns}.workers WHERE stopped_at IS NULL")}
        assert {host_of(w) for w in workers} == set(HOSTS)
        code, pong = control(cluster, ns, "ping")
        assert code == 0 and set(pong["replies"]) == workers and pong["missing"] == [], pong
        code, stats = control(cluster, ns, "stats")
        assert code == 0, stats
        seen = {(reply["host"], reply["pid"]) for reply in stats["replies"].values()}
        assert seen == {(host, proc.pid) for host, proc in procs.items()}, stats
        code, inspect = control(cluster, ns, "inspect")
        assert code == 0 and set(inspect["replies"]) == workers, inspect
        assert all("hosts.once" in reply["registered"] for reply in inspect["replies"].values()), inspect

        # Broadcasts: one message runs on the subscriber of every host.
        message = app.enqueue("fleet.hello", {})
        assert getattr(message, "subscribers", None) == 3
        answers = message.get(timeout=20)
        assert sorted(answers.values()) == sorted(HOSTS), answers
        assert {host_of(w) for w in answers} == set(HOSTS), answers
    assert all(p.alive() for p in procs.values()), fleet.logs()


SCHEDULES = """\
tick:
  task: beat.tick
  spec: every:1s
"""
#: A leader cut off is replaced after its lease (2 s) + an acquire attempt (0.5 s) + a tick.
FAILOVER = 5.0


def leader_host(db: Db, ns: str) -> str | None:
    rows = query(db, ns, "SELECT owner FROM {ns}.locks WHERE key = 'beat:leader' AND expires_at > now()")
    return host_of(rows[0][0]) if rows else None


@pytest.mark.timeout(120)
def test_beat_fails_over_to_another_host_and_no_slot_fires_twice(
    cluster: PrivateCluster, network: HostNetwork, fleet: Fleet
) -> None:
    ns = fleet.namespace
    Schedules(cluster.url, ns).apply(load_schedule_yaml(SCHEDULES))
    beats = {"host-a": fleet.beat("host-a")}
    with cluster.connect() as db:
        wait_for(lambda: leader_host(db, ns) == "host-a", 60, f"host-a to lead\n{fleet.logs()}")
        beats["host-b"] = fleet.beat("host-b")
        b_address = network.hosts["host-b"].address
        on_b = "SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s"
        up = lambda: db.execute(on_b, (b_address,)).fetchone() != (0,)  # noqa: E731
        wait_for(up, 60, f"host-b's beat\n{fleet.logs()}")
        time.sleep(1.5)  # host-b's beat stands by
        assert leader_host(db, ns) == "host-a", fleet.logs()
        network.hosts["host-a"].cut()
        cut = time.time()
        lead_b = lambda: leader_host(db, ns) == "host-b"  # noqa: E731
        wait_for(lead_b, FAILOVER + 5, f"host-b to take over\n{fleet.logs()}")
        took_over = time.time() - cut
        time.sleep(3.0)
        network.hosts["host-a"].restore()
        back = time.time()
        time.sleep(4.0)  # host-a's beat finds it no longer leads
        assert leader_host(db, ns) == "host-b", fleet.logs()
        for proc in beats.values():
            proc.signal(signal.SIGTERM)
        for proc in beats.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)

        twice = query(
            db, ns,
            "SELECT headers->>'stem-schedule', headers->>'stem-fire-time', count(*) FROM {ns}.jobs"
            " GROUP BY 1, 2 HAVING count(*) > 1",
        )  # fmt: skip
        assert twice == [], f"two jobs for one (schedule, fire time): {twice}\n{fleet.logs()}"
        orphans = query(
            db, ns,
            "SELECT f.schedule, f.fire_time FROM {ns}.schedule_fires f"
            " FULL JOIN {ns}.jobs j ON j.id = f.task_id WHERE j.id IS NULL OR f.task_id IS NULL",
        )  # fmt: skip
        assert orphans == [], "every fire enqueued exactly its job, and every job has its fire"
        fires = query(
            db, ns,
            "SELECT fire_time, beat_id, extract(epoch FROM fired_at) FROM {ns}.schedule_fires ORDER BY 1",
        )  # fmt: skip
    by_host = collections.Counter(host_of(beat) for _, beat, _ in fires)
    assert by_host.keys() == {"host-a", "host-b"}, f"{by_host}\n{fleet.logs()}"
    assert not [f for f in fires if host_of(f[1]) == "host-a" and float(f[2]) > back], fires
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(fires)]
    longest = max(gaps)
    print(
        f"beat: failover in {took_over:.1f}s, {len(fires)} fires {dict(by_host)}, longest gap {longest:.1f}s"
    )
    assert max(gaps) <= FAILOVER + 1, f"a {max(gaps):.1f}s gap in the fires\n{fleet.logs()}"


JOBS = 3
#: Long enough that host-c comes back (and sends its finish) while the rescuers still run.
JOB_SECONDS = 12.0


@pytest.mark.timeout(150)
def test_a_host_cut_off_mid_run_loses_its_jobs_to_the_others_and_never_completes_them(
    cluster: PrivateCluster, network: HostNetwork, fleet: Fleet, tmp_path: Path
) -> None:
    ns = fleet.namespace
    path = tmp_path / "spans.jsonl"
    cut_host = network.hosts["host-c"]
    c = fleet.worker("host-c", concurrency=JOBS)
    app = make_app(cluster.url, ns)
    with cluster.connect() as db, contextlib.closing(app):
        wait_registered(db, ns, {c.pid}, timeout=60)
        ids = [app.enqueue("hosts.span", {"path": str(path), "seconds": JOB_SECONDS}).id for _ in range(JOBS)]
        wait_for(lambda: len(spans(path)) == JOBS, 20, f"host-c to start the jobs\n{fleet.logs()}")
        others = [fleet.worker(host, concurrency=JOBS) for host in ("host-a", "host-b")]
        wait_registered(db, ns, {p.pid for p in others}, timeout=60)
        assert {s.host for s in spans(path)} == {"host-c"}

        cut_host.cut()
        cut = time.time()
        time.sleep(0.5)  # an extension already on its way lands
        held = "SELECT id, extract(epoch FROM lease_expires_at), worker_id FROM {ns}.jobs WHERE id = ANY(%s)"
        expiry = {row[0]: float(row[1]) for row in query(db, ns, held, [ids])}
        assert len(expiry) == JOBS, fleet.logs()

        # Control from the root namespace: the cut-off host is missing, the others answer.
        code, pong = control(cluster, ns, "ping")
        assert code == 0 and {host_of(w) for w in pong["replies"]} == {"host-a", "host-b"}, pong
        assert [host_of(w) for w in pong["missing"]] == ["host-c"], pong

        def rescued() -> bool:
            return {s.job_id for s in spans(path) if s.host != "host-c"} == set(ids)

        wait_for(rescued, 30, f"the other hosts to run the jobs\n{fleet.logs()}", interval=0.1)
        cut_host.restore()
        back = time.time()
        outage = back - cut

        finished = "SELECT count(*) FROM {ns}.results WHERE id = ANY(%s)"
        wait_for(lambda: query(db, ns, finished, [ids])[0][0] == JOBS, 60, f"the results\n{fleet.logs()}")

        wait_for(lambda: all(s.end is not None for s in spans(path)), 30, "every run to end")
        time.sleep(1.0)  # host-c's finish, had it gone through, would be in by now
        results = query(
            db, ns, "SELECT id, state, attempts, worker_id, result FROM {ns}.results WHERE id = ANY(%s)",
            [ids],
        )  # fmt: skip
        left = query(db, ns, "SELECT count(*) FROM {ns}.jobs")[0][0]
        dead = query(db, ns, "SELECT count(*) FROM {ns}.dead_letters")[0][0]

        def all_answer() -> bool:  # host-c too, again
            code, pong = control(cluster, ns, "ping")
            return code == 0 and {host_of(w) for w in pong["replies"]} == set(HOSTS)

        wait_for(all_answer, 30, f"every host to answer a ping\n{fleet.logs()}", interval=0.5)
    recorded = spans(path)
    logs = fleet.logs()
    print(f"host-c cut off for {outage:.1f}s; runs: {[(s.host, round(s.start - cut, 1)) for s in recorded]}")
    assert len(results) == JOBS and {r[1] for r in results} == {"succeeded"}, f"{results}\n{logs}"
    # Finished by the host that took the job over, never by host-c coming back.
    assert all(host_of(r[3]) in {"host-a", "host-b"} and r[4] == host_of(r[3]) for r in results), results
    assert {r[2] for r in results} == {2}, results
    assert (left, dead) == (0, 0)
    for job_id in ids:
        runs = [s for s in recorded if s.job_id == job_id]
        assert [s.host for s in runs[:1]] == ["host-c"] and len(runs) == 2, f"{runs}\n{logs}"
        # The second run started only once host-c's lease had run out.
        assert runs[1].start > expiry[job_id], f"{runs}, lease until {expiry[job_id]}\n{logs}"
    assert c.alive() and all(p.alive() for p in others), logs

    def heard() -> bool:
        """host-c said it lost each lease: its heartbeat, for a handler still running when the
        link came back, or its flush, for an outcome the database refused for its token."""
        log = c.log(tail=None)
        return all(log.count(f"lost the lease of task {job_id}") == 1 for job_id in ids)

    wait_for(heard, 30, f"host-c to say it lost each lease, once\n{fleet.logs()}", interval=0.2)
