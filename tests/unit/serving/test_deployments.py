"""Serving deployments without a server: arm choice, key extraction, the table's swaps,
the follower's polls, shadow agreement and mirroring, and the controller's metrics."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import NotFoundError, RegistryError, VersionNotFoundError
from modelyard.registry import ModelRef
from modelyard.routing import Deployment, DeploymentConfig, RoutingKey, Shadow
from modelyard.serving.hosting.manager import ModelTable
from modelyard.serving.hosting.outcomes import RequestRecord
from modelyard.serving.hosting.served_deployment import DeploymentFollower, ServedDeployment
from modelyard.serving.hosting.shadow import ShadowEvent, ShadowMirror, agreement, room
from modelyard.serving.hosting.validation import Prepared
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import ServingMetrics, merge, render
from modelyard.serving.wire.oip import Tensor, tensor_field
from modelyard.serving.wire.records import RecordsRequest, record_field

NAMES = ["user", "amount", "age"]


def runtime(version: int, name: str = "fraud") -> Any:
    return SimpleNamespace(
        name=name,
        version=version,
        version_text=str(version),
        active=0,
        batcher=SimpleNamespace(idle=True, saturated=False),
        batch_size=64,
        full_batch_s=0.001,
        validator=SimpleNamespace(max_rows=100, width=len(NAMES), names=NAMES),
    )


def deployment(revision: int = 1, **config: Any) -> Deployment:
    config.setdefault("champion", 1)
    return Deployment("checkout", DeploymentConfig("fraud", **config), None, revision, 0.0, 0.0)


def served(revision: int = 1, seed: int = 0, **config: Any) -> ServedDeployment:
    found = deployment(revision, **config)
    runtimes = {v: runtime(v) for v in found.config.versions}
    return ServedDeployment(found, runtimes, random.Random(seed))


def test_split_by_weight_without_a_key() -> None:
    entry = served(canary=2, canary_weight=30)
    versions = [entry.choose([], None)[0].version for _ in range(4000)]
    assert versions.count(2) / len(versions) == pytest.approx(0.30, abs=0.03)


def test_sticky_by_header_case_insensitively() -> None:
    entry = served(canary=2, canary_weight=50, routing_key=RoutingKey("header", "X-User"))
    picks: dict[str, set[int]] = {}
    for n in range(600):
        user = f"user-{n % 60}"
        runtime_, route = entry.choose([(b"x-user", user.encode())], None)
        picks.setdefault(user, set()).add(runtime_.version)
        assert route.arm == ("canary" if runtime_.version == 2 else "champion")
    assert all(len(v) == 1 for v in picks.values())
    on_canary = sum(2 in v for v in picks.values())
    assert 15 <= on_canary <= 45
    expected = entry.deployment.route("user-7", 0.0).version
    assert picks["user-7"] == {expected}


def test_sticky_by_field_from_tensors_and_records() -> None:
    entry = served(canary=2, canary_weight=50, routing_key=RoutingKey("field", "user"))
    assert entry.needs_fields
    matrix = [Tensor("input", "FP32", (2, 3), [7.0, 10.0, 30.0, 8.0, 11.0, 31.0])]
    assert tensor_field(matrix, NAMES, "user") == 7.0
    assert tensor_field(matrix, NAMES, "age") == 30.0
    assert tensor_field(matrix, NAMES, "missing") is None
    columns = [Tensor("user", "BYTES", (2,), ["u1", "u2"]), Tensor("age", "INT64", (2,), [1, 2])]
    assert tensor_field(columns, NAMES, "user") == "u1"
    assert record_field(RecordsRequest([{"user": "u9", "age": 3}]), "user") == "u9"
    assert record_field(RecordsRequest({"not": "a list"}), "user") is None
    versions = {entry.choose([], lambda name: "u9")[0].version for _ in range(50)}
    assert len(versions) == 1


def test_a_server_pinned_to_a_version_answers_with_it_while_it_is_an_arm() -> None:
    # KServe splits a canary's traffic itself and runs one set of pods per version
    # (platforms.kserve): each answers with its version, and logs the arm it plays.
    both = {1: runtime(1), 2: runtime(2)}
    canary_pod = ServedDeployment(deployment(canary=2, canary_weight=5), both, pinned_version=2)
    routes = [canary_pod.choose([], None)[1] for _ in range(200)]
    assert {(r.arm, r.version) for r in routes} == {("canary", 2)}
    champion_pod = ServedDeployment(deployment(canary=2, canary_weight=95), both, pinned_version=1)
    assert {champion_pod.choose([], None)[0].version for _ in range(200)} == {1}
    # Promoted before KServe's spec follows: the canary's pods answer as the champion.
    promoted = ServedDeployment(deployment(2, champion=2), {2: runtime(2)}, pinned_version=2)
    assert {promoted.choose([], None)[1].arm for _ in range(50)} == {"champion"}
    # Rolled back: the canary's pods answer with the champion, as the store now says.
    rolled_back = ServedDeployment(deployment(2), {1: runtime(1)}, pinned_version=2)
    assert {rolled_back.choose([], None)[1].version for _ in range(50)} == {1}


def test_shadows_follow_their_share() -> None:
    entry = served(shadows=(Shadow(3, 0.25),))
    mirrored = sum(bool(entry.choose([], None)[1].shadows) for _ in range(4000))
    assert mirrored / 4000 == pytest.approx(0.25, abs=0.03)


def test_runtime_for_a_pinned_version() -> None:
    entry = served(canary=2, canary_weight=10)
    assert entry.runtime_for(None).version == 1
    assert entry.runtime_for("2").version == 2
    with pytest.raises(VersionNotFoundError, match=r"not part of deployment 'checkout'.* 1, 2"):
        entry.runtime_for("5")


def test_table_serves_deployments_before_models_of_the_same_name() -> None:
    table = ModelTable([ModelRef("fraud", alias="champion")])
    table.install(table.served[0], runtime(1))
    entry = served(canary=2, canary_weight=10)
    entry.name = "fraud"
    table.install_deployment(entry)
    assert table.lookup("fraud", None) is entry.champion
    assert table.deployment("fraud", None) is entry
    assert table.deployment("fraud", "2") is None
    assert table.lookup("fraud", "2") is entry.runtimes[2]
    assert table.names == ["fraud"]


def test_table_retires_versions_no_longer_named() -> None:
    table = ModelTable([ModelRef("fraud", alias="champion")])
    shared = runtime(1)
    table.install(table.served[0], shared)
    first = ServedDeployment(deployment(1, canary=2, canary_weight=10), {1: shared, 2: runtime(2)})
    assert table.install_deployment(first) == []
    assert {r.version for r in table.runtimes()} == {1, 2}
    rolled_back = ServedDeployment(deployment(2), {1: shared})
    assert table.install_deployment(rolled_back) == [first.runtimes[2]]
    assert table.retiring == [first.runtimes[2]]
    assert table.remove_deployment("checkout") == []  # version 1 still serves fraud@champion
    assert table.deployments == {}
    assert table.runtimes() == [shared]


class FakeStore:
    def __init__(self, deployments: dict[str, Deployment]) -> None:
        self.deployments = deployments
        self.fail_reads = False

    def revisions(self) -> dict[str, int]:
        if self.fail_reads:
            raise RegistryError("database is locked")
        return {name: d.revision for name, d in self.deployments.items()}

    def get(self, name: str) -> Deployment:
        if name not in self.deployments:
            raise NotFoundError(name)
        return self.deployments[name]


class Loads:
    def __init__(self) -> None:
        self.loaded: list[int] = []
        self.broken: set[int] = set()

    async def __call__(self, model: str, version: int, label: str) -> Any:
        if version in self.broken:
            raise RegistryError(f"cannot load {model}/{version}")
        self.loaded.append(version)
        return runtime(version)


def follow(tmp_path: Any, store: FakeStore, loads: Loads) -> tuple[ModelTable, Any]:
    table = ModelTable([])
    log = JsonLog(tmp_path / "log.jsonl", worker="0")
    follower = DeploymentFollower(store, table, loads, log, clock=lambda: 0.0)  # type: ignore[arg-type]
    return table, follower


def test_a_follower_told_its_deployments_loads_no_other(tmp_path: Any) -> None:
    # One deployment's pods on Kubernetes share the database with every other deployment.
    other = Deployment("search", DeploymentConfig("ranker", 7), None, 1, 0.0, 0.0)
    store = FakeStore({"checkout": deployment(1), "search": other})
    loads = Loads()
    table = ModelTable([])
    log = JsonLog(tmp_path / "log.jsonl", worker="0")
    follower = DeploymentFollower(
        store,  # type: ignore[arg-type]
        table,
        loads,
        log,
        only=("checkout",),
        clock=lambda: 0.0,
    )
    asyncio.run(follower.poll())
    assert sorted(table.deployments) == ["checkout"]
    assert loads.loaded == [1]


def test_a_server_told_its_deployments_is_ready_once_it_serves_them() -> None:
    table = ModelTable([])
    table.awaited = frozenset({"checkout"})
    assert not table.ready
    table.install_deployment(served())
    assert table.ready


def test_follower_loads_before_installing_and_keeps_serving_on_failure(tmp_path: Any) -> None:
    store = FakeStore({"checkout": deployment(1)})
    loads = Loads()
    table, follower = follow(tmp_path, store, loads)
    asyncio.run(follower.poll())
    first = table.deployments["checkout"]
    assert first.revision == 1
    assert loads.loaded == [1]

    asyncio.run(follower.poll())  # nothing moved: nothing read or loaded
    assert table.deployments["checkout"] is first

    store.deployments["checkout"] = deployment(2, canary=2, canary_weight=20)
    loads.broken = {2}
    asyncio.run(follower.poll())
    assert table.deployments["checkout"] is first  # the old revision keeps serving

    store.deployments["checkout"] = deployment(3, canary=3, canary_weight=20)
    asyncio.run(follower.poll())
    entry = table.deployments["checkout"]
    assert entry.revision == 3
    assert set(entry.runtimes) == {1, 3}
    assert entry.runtimes[1] is first.runtimes[1]  # the champion's runtime is reused
    assert loads.loaded == [1, 3]

    store.fail_reads = True
    asyncio.run(follower.poll())
    assert table.deployments["checkout"] is entry
    store.fail_reads = False
    store.deployments.clear()
    asyncio.run(follower.poll())
    assert table.deployments == {}
    follower._log.flush()
    events = [
        orjson.loads(line)["event"]
        for line in (tmp_path / "log.jsonl").read_bytes().split(b"\n")
        if line
    ]
    assert events == [
        "deployment_updated",
        "deployment_load_failed",
        "deployment_updated",
        "deployments_unreadable",
        "deployment_removed",
    ]


def test_room_is_what_a_shadow_answers_within_the_timeout() -> None:
    assert room(5.0, 2.0, 64) == 64  # one batch running, one waiting: done within 4 s
    assert room(5.0, 0.001, 64) == 4999 * 64
    assert room(5.0, 9.0, 8) == 8  # slower than the timeout: still one batch


def test_agreement_by_label_then_by_score() -> None:
    primary = {"label": np.array([0, 1, 1, 0]), "probabilities": np.zeros((4, 2))}
    shadow = {"label": np.array([1, 1, 0]), "probabilities": np.zeros((3, 2))}
    assert agreement(primary, slice(1, 3), shadow, slice(0, 2)) == (2, 2)
    assert agreement(primary, slice(1, 3), shadow, slice(1, 3)) == (2, 1)
    scores = {"prediction": np.array([1.0, 2.0, 3.0])}
    close = {"prediction": np.array([1.0 + 1e-9, 2.1, 3.0])}
    assert agreement(scores, slice(0, 3), close, slice(0, 3)) == (3, 2)
    assert agreement(scores, slice(0, 3), {"other": np.zeros(3)}, slice(0, 3)) is None


class FakeBatcher:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.saturated = False
        self.queued_rows = 0
        self.futures: list[asyncio.Future[Any]] = []

    def running_for(self, now: float) -> float:
        return 0.0

    def submit(
        self, prepared: Prepared, deadline: float, record: RequestRecord
    ) -> asyncio.Future[Any]:
        self.queued_rows += prepared.rows
        future: asyncio.Future[Any] = self.loop.create_future()
        self.futures.append(future)
        return future


def test_mirror_is_bounded_and_counts_every_outcome(tmp_path: Any) -> None:
    async def scenario() -> tuple[ServingMetrics, list[ShadowEvent]]:
        loop = asyncio.get_running_loop()
        entry = served(shadows=(Shadow(2, 1.0),))
        batcher = FakeBatcher(loop)
        entry.runtimes[2].shadow_lane = lambda: batcher  # type: ignore[method-assign]
        # Batches of 2 rows that take 2 s: within a 5 s timeout, one batch may wait.
        entry.runtimes[2].batch_size = 2
        entry.runtimes[2].full_batch_s = 2.0
        metrics = ServingMetrics()
        events: list[ShadowEvent] = []

        def broken_hook(event: ShadowEvent) -> None:
            raise RuntimeError("log is full")

        mirror = ShadowMirror(
            metrics,
            JsonLog(tmp_path / "log.jsonl", worker="0"),
            [events.append, broken_hook],
            timeout_s=5.0,
        )
        request = (
            RequestRecord("r1", 0.0, "checkout", "champion"),
            0.0,
            Prepared(1, np.zeros((1, 3))),
        )
        primary = {"label": np.array([1]), "probabilities": np.array([[0.2, 0.8]])}
        for _ in range(3):  # the third finds two rows queued: dropped
            mirror.mirror(entry, (2,), 1, request, primary, 0, 1)
        assert batcher.futures == []  # queued on the loop's next turn, not in the handler
        await asyncio.sleep(0)
        assert mirror.inflight == 2
        batcher.futures[0].set_result(({"label": np.array([1])}, 0, 1))
        batcher.futures[1].set_exception(ValueError("the shadow raised"))
        await asyncio.sleep(0)
        assert mirror.inflight == 0
        return metrics, events

    metrics, events = asyncio.run(scenario())
    assert metrics.shadow_requests == {
        ("checkout", "2", "dropped"): 1,
        ("checkout", "2", "answered"): 1,
        ("checkout", "2", "failed"): 1,
        ("checkout", "2", "hook_failed"): 2,
    }
    assert metrics.shadow_rows == {("checkout", "2", "compared"): 1, ("checkout", "2", "agreed"): 1}
    assert [(e.status, e.agreed_rows, e.primary_version) for e in events] == [
        (200, 1, 1),
        (500, None, 1),
    ]
    text = render(merge([metrics.snapshot({}, 0.0)], 0.0)).decode()
    assert 'modelyard_shadow_rows_total{deployment="checkout",result="agreed",version="2"} 1.0' in (
        text
    )
    assert 'modelyard_shadow_duration_seconds_count{deployment="checkout",role="shadow"' in text
