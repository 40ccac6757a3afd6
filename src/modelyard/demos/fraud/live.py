"""The fraud demo's live phase: simulated transactions streamed to a server, labels later.

``drive`` replays the transactions of a simulated window against one server, in event
time order, ``speedup`` simulated seconds per wall second (at most ``max_rate``
requests per wall second, when given). For each transaction it:

1. asks the ``fraud`` deployment for a decision (``POST /v1/models/fraud:predict``
   with the card id and the transaction's own inputs, as the offline phase trained);
2. pushes the transaction to the ``transactions`` stream (``POST /v1/features/push``),
   so the card's later requests see it. Pushes are batched per thread (``push_batch``
   events or ``push_interval_s``), and a card's pending event is always pushed before
   that card's next request: every card is served by one thread only, in order;
3. schedules the transaction's label for when it becomes known
   (``TransactionSimulator.labels_available_at``, simulated time), and posts due labels
   to ``POST /v1/feedback`` by request id as simulated time passes. Labels due after
   the window are left unsent (``LiveStats.labels_pending``) unless ``flush_labels``.

It stops at the end of the window or once ``stop`` is set (a Ctrl-C in the calling
thread sets it): requests already started are answered, pending events are pushed,
due labels posted, and the figures returned. Only ``base_url`` is ever contacted.

What is sent is decided by the simulator, the window and the options; timing (and so
which labels fall due before a stop) is the wall clock's.

A server reads a card's features at its own clock's time unless the deployment reads
them as of a request field (``FeatureInputs.event_time``): a window replayed from the
past, faster than real time, must send each transaction's time (``event_time``) to see
the windows around it that training saw.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import numpy as np

from modelyard.demos.fraud.features import REQUEST_INPUTS, request_columns, stream_events
from modelyard.demos.fraud.offline import DEPLOYMENT
from modelyard.demos.fraud.schedule import DueLabel, LabelSchedule, percentile_ms, send_offsets
from modelyard.demos.fraud.simulator import (
    FRAUD_LABEL_DELAY_S,
    LEGIT_LABEL_DELAY_S,
    TransactionSimulator,
)
from modelyard.errors import ValidationError

__all__ = ["AFTER", "BEFORE", "Decisions", "LiveStats", "drive"]

STREAM = "transactions"
LABEL_CHUNK = 1_000  # labels per feedback request
NO_ANSWER = 0  # the status counted for a request that got no HTTP answer
BEFORE, AFTER = "before", "after"  # a transaction's side of ``split_at``
_TICK_S = 0.05


@dataclass(frozen=True)
class Decisions:
    """What one model version decided, against the simulator's ground truth."""

    answered: int = 0
    flagged: int = 0  # decided fraud
    fraud_seen: int = 0  # fraudulent transactions it answered
    fraud_caught: int = 0  # of them, those it decided were fraud

    def add(self, decision: int, fraud: int) -> Decisions:
        return Decisions(
            self.answered + 1,
            self.flagged + decision,
            self.fraud_seen + fraud,
            self.fraud_caught + (fraud and decision),
        )


@dataclass(frozen=True)
class LiveStats:
    """What a live run did, so far (a ``progress`` snapshot) or in all (``drive``)."""

    transactions: int  # in the window
    requests_sent: int
    answered: int  # 2xx
    failed: int
    failures: Mapping[int, int]  # status -> count; NO_ANSWER: no HTTP answer at all
    latency_p50_ms: float  # client side, answered or not; NaN before the first
    latency_p99_ms: float
    elapsed_s: float
    requests_per_s: float  # requests sent per wall second
    simulated_time: float  # how far the run has come, UNIX seconds
    pushes_sent: int  # push requests
    events_pushed: int  # events the server accepted
    push_failures: int
    labels_sent: int
    labels_pending: int  # scheduled, not (yet) posted
    label_failures: int  # labels in feedback requests that failed
    versions: Mapping[str, int]  # model version -> answers
    # (model version, BEFORE or AFTER ``split_at``) -> what it decided
    decisions: Mapping[tuple[str, str], Decisions]
    fraud_seen: int  # answered fraudulent transactions
    fraud_caught: int  # of them, those the model decided were fraud
    flagged: int  # answered transactions decided fraud
    stopped: bool  # ended by the stop signal, before the window's end

    @property
    def fraud_caught_share(self) -> float:
        """The share of answered fraud the model flagged; NaN when none was answered."""
        return self.fraud_caught / self.fraud_seen if self.fraud_seen else math.nan


class _Tally:
    """The running counts, shared by the threads under one lock."""

    def __init__(self, transactions: int, start: float) -> None:
        self.lock = threading.Lock()
        self.transactions = transactions
        self.sent = self.answered = 0
        self.failures: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.pushes = self.pushed = self.push_failures = 0
        self.labels_sent = self.label_failures = 0
        self.versions: Counter[str] = Counter()
        self.decisions: dict[tuple[str, str], Decisions] = {}
        self.fraud_seen = self.fraud_caught = self.flagged = 0
        self.simulated_time = start
        self.labels = LabelSchedule()

    def snapshot(self, elapsed: float, stopped: bool) -> LiveStats:
        with self.lock:
            return LiveStats(
                transactions=self.transactions,
                requests_sent=self.sent,
                answered=self.answered,
                failed=sum(self.failures.values()),
                failures=MappingProxyType(dict(self.failures)),
                latency_p50_ms=percentile_ms(self.latencies, 50),
                latency_p99_ms=percentile_ms(self.latencies, 99),
                elapsed_s=elapsed,
                requests_per_s=self.sent / elapsed if elapsed > 0 else 0.0,
                simulated_time=self.simulated_time,
                pushes_sent=self.pushes,
                events_pushed=self.pushed,
                push_failures=self.push_failures,
                labels_sent=self.labels_sent,
                labels_pending=len(self.labels),
                label_failures=self.label_failures,
                versions=MappingProxyType(dict(self.versions)),
                decisions=MappingProxyType(dict(self.decisions)),
                fraud_seen=self.fraud_seen,
                fraud_caught=self.fraud_caught,
                flagged=self.flagged,
                stopped=stopped,
            )


@dataclass(frozen=True)
class _Window:
    """The window's transactions as the wire needs them, one entry per transaction."""

    instances: list[dict[str, Any]]
    events: dict[str, list[Any]]
    cards: list[str]
    is_fraud: list[int]
    label_due: list[float]
    after_split: list[bool]  # at or after ``drive``'s ``split_at``


def _window(
    simulator: TransactionSimulator,
    start: float,
    end: float,
    legit_delay_s: float,
    fraud_delay_s: tuple[float, float],
    event_time: str | None,
    split_at: float | None,
) -> tuple[_Window, np.ndarray]:
    columns = simulator.generate(start, end)
    inputs = request_columns(columns)
    cards = [str(card) for card in columns["card_id"]]
    numbers = {name: [float(v) for v in inputs[name]] for name in REQUEST_INPUTS}
    if event_time is not None:
        numbers[event_time] = [float(v) for v in columns["event_time"]]
    instances = [
        {"card_id": card, **{name: column[i] for name, column in numbers.items()}}
        for i, card in enumerate(cards)
    ]
    due = simulator.labels_available_at(
        columns, legit_delay_s=legit_delay_s, fraud_delay_s=fraud_delay_s
    )
    times = np.asarray(columns["event_time"], dtype=np.float64)
    after = times >= split_at if split_at is not None else np.zeros(len(times), dtype=bool)
    window = _Window(
        instances,
        stream_events(columns),
        cards,
        [int(v) for v in columns["is_fraud"]],
        [float(v) for v in due],
        after.tolist(),
    )
    return window, times


class _Worker(threading.Thread):
    """Scores the transactions of its own cards in order, and pushes them in batches."""

    def __init__(self, driver: _Driver, index: int) -> None:
        super().__init__(name=f"fraud-live-{index}", daemon=True)
        self.driver = driver
        self.inbox: queue.Queue[int | None] = queue.Queue(maxsize=256)
        self._pending: list[int] = []
        self._pending_cards: set[str] = set()
        self._pending_since = 0.0

    def run(self) -> None:
        driver = self.driver
        with driver.client() as client:
            while True:
                try:
                    item = self.inbox.get(timeout=_TICK_S)
                except queue.Empty:
                    if self._pending and self._age() >= driver.push_interval_s:
                        self._flush(client)
                    continue
                if item is None or driver.stop.is_set():
                    break
                if driver.window.cards[item] in self._pending_cards:
                    self._flush(client)
                driver.score(client, item)
                if not self._pending:
                    self._pending_since = time.perf_counter()
                self._pending.append(item)
                self._pending_cards.add(driver.window.cards[item])
                if len(self._pending) >= driver.push_batch or self._age() >= driver.push_interval_s:
                    self._flush(client)
            self._flush(client)

    def _age(self) -> float:
        return time.perf_counter() - self._pending_since

    def _flush(self, client: httpx.Client) -> None:
        if self._pending:
            self.driver.push(client, self._pending)
        self._pending = []
        self._pending_cards = set()


class _Driver:
    """One run: the shared state of the dispatcher, the workers and the feedback loop."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        window: _Window,
        tally: _Tally,
        *,
        deployment: str,
        push_batch: int,
        push_interval_s: float,
        timeout_s: float,
        stop: threading.Event,
    ) -> None:
        self.base_url = base_url
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.window = window
        self.tally = tally
        self.path = f"/v1/models/{deployment}:predict"
        self.push_batch = push_batch
        self.push_interval_s = push_interval_s
        self.timeout_s = timeout_s
        self.stop = stop

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout_s)

    def score(self, client: httpx.Client, i: int) -> None:
        began = time.perf_counter()
        try:
            answer = client.post(self.path, json={"instances": [self.window.instances[i]]})
            status = answer.status_code
        except httpx.HTTPError:
            answer, status = None, NO_ANSWER
        latency = time.perf_counter() - began
        tally = self.tally
        if answer is None or not 200 <= status < 300:
            with tally.lock:
                tally.sent += 1
                tally.latencies.append(latency)
                tally.failures[status] += 1
            return
        body = answer.json()
        prediction = body["predictions"][0]
        decision = int(prediction["label"] if isinstance(prediction, dict) else prediction)
        request_id = str(answer.headers.get("x-request-id", body.get("id")))
        fraud = self.window.is_fraud[i]
        with tally.lock:
            tally.sent += 1
            tally.answered += 1
            tally.latencies.append(latency)
            version = str(body.get("model_version"))
            tally.versions[version] += 1
            key = (version, AFTER if self.window.after_split[i] else BEFORE)
            tally.decisions[key] = tally.decisions.get(key, Decisions()).add(decision, fraud)
            tally.flagged += decision
            tally.fraud_seen += fraud
            tally.fraud_caught += fraud and decision
            tally.labels.add(DueLabel(self.window.label_due[i], request_id, fraud))

    def push(self, client: httpx.Client, items: list[int]) -> None:
        events = self.window.events
        batch = [{name: values[i] for name, values in events.items()} for i in items]
        try:
            answer = client.post("/v1/features/push", json={"stream": STREAM, "events": batch})
            ok = answer.status_code == 200
            accepted = int(answer.json().get("accepted", 0)) if ok else 0
        except httpx.HTTPError:
            ok, accepted = False, 0
        with self.tally.lock:
            self.tally.pushes += 1
            self.tally.pushed += accepted
            self.tally.push_failures += not ok

    def post_labels(self, client: httpx.Client, labels: list[DueLabel]) -> None:
        for low in range(0, len(labels), LABEL_CHUNK):
            part = labels[low : low + LABEL_CHUNK]
            body = {
                "labels": [
                    {"request_id": label.request_id, "row": 0, "label": label.label}
                    for label in part
                ]
            }
            try:
                ok = client.post("/v1/feedback", json=body).status_code == 200
            except httpx.HTTPError:
                ok = False
            with self.tally.lock:
                if ok:
                    self.tally.labels_sent += len(part)
                else:
                    self.tally.label_failures += len(part)


def drive(
    base_url: str,
    simulator: TransactionSimulator,
    start: float,
    end: float,
    *,
    speedup: float,
    token: str | None = None,
    threads: int = 4,
    max_rate: float | None = None,
    deployment: str = DEPLOYMENT,
    event_time: str | None = None,
    split_at: float | None = None,
    push_batch: int = 64,
    push_interval_s: float = 0.2,
    legit_delay_s: float = LEGIT_LABEL_DELAY_S,
    fraud_delay_s: tuple[float, float] = FRAUD_LABEL_DELAY_S,
    flush_labels: bool = False,
    label_interval_s: float = 0.25,
    stop: threading.Event | None = None,
    progress: Callable[[LiveStats], None] | None = None,
    progress_interval_s: float = 0.5,
    timeout_s: float = 30.0,
) -> LiveStats:
    """Stream the transactions of ``[start, end)`` to the server at ``base_url`` (see the
    module's docstring) and return what happened.

    ``threads`` clients send at once; ``token`` is sent as a bearer token; with
    ``event_time``, each request carries its transaction's time in that field (for a
    deployment that reads features as of it). Each version's decisions are counted apart
    for transactions before and after ``split_at`` (a drift's moment). Labels become
    known after ``legit_delay_s`` / ``fraud_delay_s`` (the simulator's delays by
    default); with ``flush_labels`` those still pending at the end are posted too.
    ``progress`` is called with a snapshot about every ``progress_interval_s`` (from
    another thread) and once more at the end.
    """
    if not 1 <= threads <= 256:
        raise ValidationError(f"threads must be in [1, 256], got {threads!r}")
    if push_batch < 1:
        raise ValidationError(f"push_batch must be >= 1, got {push_batch!r}")
    if end < start:
        raise ValidationError(f"end must not be before start, got start={start} end={end}")
    window, times = _window(
        simulator, start, end, legit_delay_s, fraud_delay_s, event_time, split_at
    )
    offsets = send_offsets(times, start, speedup, max_rate)
    stop = stop if stop is not None else threading.Event()
    tally = _Tally(len(window.cards), start)
    driver = _Driver(
        base_url,
        token,
        window,
        tally,
        deployment=deployment,
        push_batch=push_batch,
        push_interval_s=push_interval_s,
        timeout_s=timeout_s,
        stop=stop,
    )
    workers = [_Worker(driver, k) for k in range(threads)]
    done = threading.Event()
    began = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - began

    feedback = threading.Thread(
        target=_feedback_loop,
        args=(driver, done, elapsed, label_interval_s, progress, progress_interval_s),
        name="fraud-live-feedback",
        daemon=True,
    )
    for worker in workers:
        worker.start()
    feedback.start()
    try:
        _dispatch(driver, workers, times, offsets, start, speedup, elapsed)
    except KeyboardInterrupt:
        stop.set()
    finally:
        for worker in workers:
            _put(worker, None, None)
        for worker in workers:
            worker.join()
        with tally.lock:
            if not stop.is_set():
                tally.simulated_time = end
        done.set()
        feedback.join()
    with driver.client() as client:
        with tally.lock:
            last = tally.labels.take_all() if flush_labels else []
        driver.post_labels(client, last)
    stats = tally.snapshot(elapsed(), stop.is_set())
    if progress is not None:
        progress(stats)
    return stats


def _dispatch(
    driver: _Driver,
    workers: list[_Worker],
    times: np.ndarray,
    offsets: np.ndarray,
    start: float,
    speedup: float,
    elapsed: Callable[[], float],
) -> None:
    """Hand each transaction to its card's worker at its time."""
    tally, stop = driver.tally, driver.stop
    owners = [zlib.crc32(card.encode()) % len(workers) for card in driver.window.cards]
    for i, offset in enumerate(offsets.tolist()):
        while (wait := offset - elapsed()) > 0:
            with tally.lock:
                tally.simulated_time = min(start + elapsed() * speedup, float(times[i]))
            if stop.wait(min(wait, _TICK_S)):
                return
        if stop.is_set() or not _put(workers[owners[i]], i, stop):
            return
        with tally.lock:
            tally.simulated_time = float(times[i])


def _put(worker: _Worker, item: int | None, stop: threading.Event | None) -> bool:
    """Queue ``item`` for ``worker``, waiting for room; False once ``stop`` is set."""
    while True:
        try:
            worker.inbox.put(item, timeout=_TICK_S)
            return True
        except queue.Full:
            if not worker.is_alive() or (stop is not None and stop.is_set()):
                return False


def _feedback_loop(
    driver: _Driver,
    done: threading.Event,
    elapsed: Callable[[], float],
    label_interval_s: float,
    progress: Callable[[LiveStats], None] | None,
    progress_interval_s: float,
) -> None:
    """Post the labels that simulated time has made due, and report progress."""
    tally = driver.tally
    next_labels = next_progress = 0.0
    with driver.client() as client:
        while True:
            finished = done.wait(_TICK_S)
            now = elapsed()
            if finished or now >= next_labels:
                with tally.lock:
                    due = tally.labels.take_due(tally.simulated_time)
                driver.post_labels(client, due)
                next_labels = now + label_interval_s
            if finished:
                return
            if progress is not None and now >= next_progress:
                progress(tally.snapshot(now, driver.stop.is_set()))
                next_progress = now + progress_interval_s
