"""Several ``modelyard serve`` nodes on one PostgreSQL database (issue 22, item 1): how fast
a dead leader is replaced, how fast a change reaches every node, and whether every
acknowledged prediction reaches the shared inference log exactly once when nodes are
SIGKILLed under load.

Run from the repository root (a PostgreSQL server is needed; the script makes a schema
of its own in it and drops it at the end):

    .venv/bin/python benchmarks/serving/bench_nodes.py [--rounds 5] [--kills 6] \\
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Setup: two versions of a 30-feature random forest (100 trees, one recipe, two seeds)
registered once, artifacts in one shared directory; three nodes, each ``python -m
modelyard.serving --model fraud@champion`` with one worker, a home of its own (its
write-ahead log, its JSON log) and the same database and artifact directory, with the
defaults of ``runner`` (lease time to live 10 s, renewal every 3 s) and
``serving.poll_interval_s`` (0.5 s) unless given. A client spreads requests round-robin
over the live nodes (``--load-threads`` threads, closed loop) during the whole run, as
a load balancer would, to the deployment ``traffic``. Three more deployments:
``checkout`` runs a canary rollout that gets no requests (``min_requests`` = 10^9), so
the rollout controller decides "hold" every ``interval_s`` (1 s) on an empty window: a
cheap decision due every second; ``pinned`` serves version 1 or 2 as its champion;
``follow`` follows the alias ``champion``. Every node has both versions loaded
(``checkout``'s arms), so the propagation figures do not include loading a model.

What it measures:

* failover (``--rounds`` times): after a random delay within one renewal period, the
  leader (the node whose supervisor holds the lease ``runner:serve``) is SIGKILLed with
  its worker; from the kill to the new lease (its ``acquired_at``, the taker's clock)
  and to the new leader's first rollout decision (the first ``rollout.*`` event after
  the kill). The node is then restarted on its home (the time to ready is reported).
* propagation (``--rounds`` times each way, alternating versions 1 and 2): from the
  write to the moment every node answers with the new version, polling every node
  back to back: an alias move seen by the reference ``fraud@champion``; a deployment
  change (``pinned``'s champion, written as a rollout step is); an alias move seen by
  ``follow`` (the leader's controller syncs it, then the nodes see the deployment).
* exactly-once (``--kills`` times): a node picked at random is SIGKILLed with its
  worker, then restarted on its home, under load. Before the restart, the requests it
  had answered 200 that the store does not hold yet are counted (they are only in its
  write-ahead log); once every node is back and the load stopped, every answered
  request id must be stored exactly once (``inference_requests``, one row per request
  and batch).

It prints every round and the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import create_engine, func, select, text

from modelyard.config import load_settings
from modelyard.pipelines.sql import SqlPipelineRepository
from modelyard.routing import RolloutController, RolloutPolicy
from modelyard.runner.leadership import SERVE_LEASE
from modelyard.store.database import Database
from modelyard.store.schema import inference_requests
from modelyard.yard import Yard

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FIELDS = [f"f{i}" for i in range(30)]
HOLD_FOREVER = RolloutPolicy(step_weights=(10, 100), interval_s=1.0, min_requests=10**9)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A database URL on a schema of its own, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def register(home: Path, database_url: str, artifacts: Path) -> bytes:
    """The models and deployments (see the module docstring); one request body."""
    features, labels = make_classification(n_samples=20_000, n_features=30, random_state=42)
    features = features.astype(np.float32)
    settings = load_settings(
        home=home, database_url=database_url, artifacts_url=str(artifacts), environ={}
    )
    with Yard(settings) as yard:
        for seed in (0, 1):
            forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=seed)
            yard.registry.register(
                "fraud", forest.fit(features, labels), features, feature_names=FIELDS
            )
        yard.registry.set_alias("fraud", "champion", 1)
        yard.deployments.create("checkout", "fraud", 1)
        yard.deployments.create("traffic", "fraud", 1)
        yard.deployments.create("pinned", "fraud", 1)
        yard.deployments.create("follow", "fraud", "champion", follow_alias="champion")
        RolloutController(yard.deployments).start("checkout", 2, HOLD_FOREVER, actor="bench")
    row = features[0].tolist()
    return orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": row}]}
    )


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


@dataclasses.dataclass
class Node:
    """One ``modelyard serve`` process tree on its home."""

    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> float:
        """Start it and wait until it is ready; the seconds that took."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**self.env, "MODELYARD_HOME": str(self.home)}
        env["MODELYARD_SERVING__PORT"] = str(port)
        env["MODELYARD_SERVING__LOG_PATH"] = str(self.home / "logs" / f"serving-{port}.jsonl")
        stderr = (self.home / f"serve-{port}.stderr").open("wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelyard.serving", "--model", "fraud@champion"],
            env=env,
            stdout=stderr,
            stderr=stderr,
        )
        deadline = started + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"a node exited: see {stderr.name}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"a node was not ready in 120 s: see {stderr.name}")

    def kill(self) -> None:
        """SIGKILL the supervisor and its worker at once, as a machine dies."""
        assert self.process is not None
        for pid in descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclasses.dataclass
class Answer:
    request_id: str
    url: str
    status: int | str


class Balancer:
    """Client threads sending each request, with an id of its own, to the next live node."""

    def __init__(self, urls: list[str], body: bytes, threads: int) -> None:
        self.urls = list(urls)
        self.answers: list[Answer] = []
        self._body = body
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def start(self) -> Balancer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, number: int) -> None:
        count = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                count += 1
                urls = self.urls
                url = urls[count % len(urls)]
                request_id = f"lb-{number}-{count}"
                headers = {"content-type": "application/json", "x-request-id": request_id}
                try:
                    response = client.post(
                        f"{url}/v2/models/traffic/infer", content=self._body, headers=headers
                    )
                    status: int | str = response.status_code
                except httpx.TransportError as error:
                    status = type(error).__name__
                    self._stop.wait(0.02)
                self.answers.append(Answer(request_id, url, status))


def wait_for(check: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"not within {timeout} s")


class Cluster:
    """The nodes, the load over them, and reads of the shared database."""

    def __init__(self, nodes: list[Node], db: Database, body: bytes, threads: int) -> None:
        self.nodes = nodes
        self.db = db
        self.leases = SqlPipelineRepository(db)
        self.body = body
        self.balancer = Balancer([n.url for n in nodes], body, threads)

    def leader(self) -> tuple[Node, int]:
        """The node holding the runner's lease, and the lease's generation."""

        def held() -> tuple[Node, int] | None:
            lease = self.leases.lease(SERVE_LEASE)
            if lease is None or lease.expires_at <= time.time():
                return None
            pid = int(lease.holder.split(":")[1])
            node = next((n for n in self.nodes if n.process and n.process.pid == pid), None)
            return None if node is None else (node, lease.generation)

        return wait_for(held, 60)  # type: ignore[no-any-return]

    def kill(self, node: Node) -> float:
        """SIGKILL ``node``; the load stops sending to it. The time of the kill."""
        killed_at = time.time()
        node.kill()
        self.balancer.urls = [n.url for n in self.nodes if n is not node]
        return killed_at

    def restart(self, node: Node) -> float:
        took = node.start()
        self.balancer.urls = [n.url for n in self.nodes]
        return took

    def bytes_per_request(self) -> dict[str, float]:
        """On-disk bytes (table, indexes, TOAST) of the inference log's two tables, per
        logged request: what the shared database grows by for each prediction."""
        with self.db.read() as conn:
            requests = conn.execute(text("SELECT sum(requests) FROM inference_batches")).scalar()
            sizes = {
                table: conn.execute(
                    text("SELECT pg_total_relation_size(:table)"), {"table": table}
                ).scalar()
                for table in ("inference_batches", "inference_requests")
            }
        return {table: float(size or 0) / float(requests or 1) for table, size in sizes.items()}

    def stored(self, prefix: str = "lb-") -> dict[str, int]:
        """Stored rows per request id (one per request and batch holding it)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(inference_requests.c.request_id, func.count())
                .where(inference_requests.c.request_id.like(f"{prefix}%"))
                .group_by(inference_requests.c.request_id)
            ).all()
        return {request_id: count for request_id, count in rows}


def first_decision_after(yard: Yard, at: float) -> float:
    def found() -> float | None:
        events = yard.deployments.events("checkout", "rollout.", limit=20)
        after = [e.at for e in events if e.kind != "rollout.start" and e.at > at]
        return min(after) if after else None

    return wait_for(found, 120, every=0.05)  # type: ignore[no-any-return]


def failover_rounds(
    cluster: Cluster, yard: Yard, rounds: int, renew_s: float
) -> list[dict[str, float]]:
    rng = random.Random(0)
    results = []
    for number in range(rounds):
        leader, generation = cluster.leader()
        first_decision_after(yard, time.time() - 0.5)  # the rollout is being decided
        time.sleep(rng.uniform(0, renew_s))  # anywhere in the leader's renewal period
        killed_at = cluster.kill(leader)

        def new_lease(before: int = generation) -> float | None:
            lease = cluster.leases.lease(SERVE_LEASE)
            return lease.acquired_at if lease and lease.generation > before else None

        leased = wait_for(new_lease, 120, every=0.05)
        decided = first_decision_after(yard, killed_at)
        ready = cluster.restart(leader)
        row = {
            "lease_s": leased - killed_at,
            "decision_s": decided - killed_at,
            "restart_ready_s": ready,
        }
        print(f"failover {number + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
        results.append(row)
    return results


def everywhere(cluster: Cluster, route: str, version: str, timeout: float = 60) -> float:
    """Seconds until every node answers ``route`` with ``version`` (polled back to back)."""
    started = time.monotonic()
    pending = {n.url for n in cluster.nodes}
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=10) as client:
        while pending:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{route} not at version {version} on {sorted(pending)}")
            for url in sorted(pending):
                try:
                    answer = client.post(f"{url}{route}", content=cluster.body, headers=headers)
                except httpx.TransportError as error:
                    node = next(n for n in cluster.nodes if n.url == url)
                    alive = node.process is not None and node.process.poll() is None
                    raise RuntimeError(f"{url} ({node.home}, alive: {alive}): {error}") from error
                if answer.headers.get("x-model-version") == version:
                    pending.discard(url)
    return time.monotonic() - started


def propagation_rounds(cluster: Cluster, yard: Yard, rounds: int) -> list[dict[str, float]]:
    results = []
    for number in range(rounds):
        target = 2 if number % 2 == 0 else 1
        yard.registry.set_alias("fraud", "champion", target, reason="bench")
        alias = everywhere(cluster, "/v2/models/fraud/infer", str(target))
        # Counted from the move too: the deployment follows later (the leader's tick).
        follow = alias + everywhere(cluster, "/v2/models/follow/infer", str(target))
        yard.deployments.update("pinned", partial(dataclasses.replace, champion=target))
        deployment = everywhere(cluster, "/v2/models/pinned/infer", str(target))
        row = {"alias_s": alias, "deployment_s": deployment, "follow_alias_s": follow}
        print(f"propagation {number + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
        results.append(row)
    return results


def kill_rounds(cluster: Cluster, kills: int) -> list[dict[str, float]]:
    rng = random.Random(1)
    results = []
    for number in range(kills):
        time.sleep(rng.uniform(1.0, 3.0))  # load in between
        node = rng.choice(cluster.nodes)
        cluster.kill(node)
        time.sleep(1.0)  # the other nodes' last answers reach the store
        answered = {
            a.request_id
            for a in list(cluster.balancer.answers)
            if a.url == node.url and a.status == 200
        }
        pending = len(answered - set(cluster.stored()))
        ready = cluster.restart(node)
        row = {"wal_only_at_kill": float(pending), "restart_ready_s": ready}
        print(f"kill {number + 1}: " + ", ".join(f"{k} {v:g}" for k, v in row.items()))
        results.append(row)
    return results


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]} if rows else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--load-threads", type=int, default=2)
    parser.add_argument("--lease-ttl-s", type=float, default=10.0)
    parser.add_argument("--lease-renew-s", type=float, default=3.0)
    parser.add_argument("--poll-interval-s", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
    print(f"the nodes' homes (kept if the run fails): {out}", flush=True)
    with fresh_schema(args.database_url) as url:
        artifacts = out / "artifacts"
        body = register(out / "registry", url, artifacts)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        env.update(
            OMP_NUM_THREADS="1",
            MODELYARD_DATABASE_URL=url,
            MODELYARD_ARTIFACTS_URL=str(artifacts),
            MODELYARD_SERVING__WORKERS="1",
            MODELYARD_SERVING__POLL_INTERVAL_S=str(args.poll_interval_s),
            MODELYARD_RUNNER__LEASE_TTL_S=str(args.lease_ttl_s),
            MODELYARD_RUNNER__LEASE_RENEW_S=str(args.lease_renew_s),
            MODELYARD_MONITORING__CHECK_INTERVAL_S="0",
            MODELYARD_FEATURES__MATERIALIZE_INTERVAL_S="0",
        )
        nodes = [Node(out / f"node-{n}", env) for n in range(3)]
        for node in nodes:
            node.home.mkdir(parents=True)
        db = Database(url)
        settings = load_settings(
            home=out / "registry", database_url=url, artifacts_url=str(artifacts), environ={}
        )
        try:
            with ThreadPoolExecutor(3) as pool:
                started = list(pool.map(lambda node: node.start(), nodes))
            print(f"three nodes ready in {max(started):.1f} s")
            cluster = Cluster(nodes, db, body, args.load_threads)
            cluster.balancer.start()
            with Yard(settings) as yard:
                failover = failover_rounds(cluster, yard, args.rounds, args.lease_renew_s)
                propagation = propagation_rounds(cluster, yard, args.rounds)
            kills = kill_rounds(cluster, args.kills)
            cluster.balancer.stop()
            answers = cluster.balancer.answers
            acknowledged = {a.request_id for a in answers if a.status == 200}
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: acknowledged <= set(cluster.stored()), 60, every=0.5)
            stored = cluster.stored()
            exactly_once = {
                "answered_200": len(acknowledged),
                "failed_or_refused": sum(1 for a in answers if a.status != 200),
                "lost": len(acknowledged - set(stored)),
                "stored_twice": sum(1 for n in stored.values() if n > 1),
                "stored_not_answered": len(set(stored) - acknowledged),
                "bytes_per_logged_request": cluster.bytes_per_request(),
            }
        finally:
            for node in nodes:
                node.stop()
            db.dispose()
    shutil.rmtree(out, ignore_errors=True)
    summary = {
        "settings": {
            "lease_ttl_s": args.lease_ttl_s,
            "lease_renew_s": args.lease_renew_s,
            "poll_interval_s": args.poll_interval_s,
        },
        "failover_median": medians(failover),
        "failover_max": {k: max(r[k] for r in failover) for k in failover[0]},
        "propagation_median": medians(propagation),
        "propagation_max": {k: max(r[k] for r in propagation) for k in propagation[0]},
        "kills_median": medians(kills),
        "exactly_once": exactly_once,
    }
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "failover": failover,
                    "propagation": propagation,
                    "kills": kills,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    main()
