"""The request index of the inference log (issue 20): what a feedback post's check costs,
and what listing and showing logged requests cost, against the size of the log.

    .venv/bin/python benchmarks/monitoring/bench_request_index.py [--requests 200000] [--repeat 20]

Fills a fresh SQLite home (the embedded default) with ``--requests`` logged requests in
micro-batches of 64 (30 float32 features, one output), through
``SqlInferenceLogRepository.add_batches`` as the log ingester stores them, and prints:

* the fill rate (requests per second of wall time, index rows included), and what
  reading a payload's request ids for the index costs alone (``request_entries``,
  microseconds a request);
* ``known_requests`` (the check of every ``POST /v1/feedback``) for 1, 100 and 1,000
  request ids, half of them logged: median milliseconds of ``--repeat`` calls;
* ``list_requests`` (``modelyard requests``): the newest 50, the newest 50 of a filter
  that keeps 1 request in 64 (``--request-id`` prefix), and the newest 50 unlabelled;
* ``show_request`` (``modelyard requests --show``) of one request.

The store writer's rate with and without the index is ``bench_inference_log.py``'s
(run it on this commit and on the one before).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelyard.monitoring import SqlInferenceLogRepository
from modelyard.monitoring.inference_log.browse import RequestQuery, list_requests, show_request
from modelyard.monitoring.inference_log.payload import request_entries
from modelyard.monitoring.inference_log.record import Group, encode
from modelyard.monitoring.inference_log.storage import storable
from modelyard.store.database import Database

BATCH = 64
FEATURES = [f"f{i}" for i in range(30)]


def fill(log: SqlInferenceLogRepository, requests: int) -> float:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(BATCH, len(FEATURES))).astype(np.float32)
    outputs = {"y": rng.normal(size=BATCH)}
    started = time.perf_counter()
    pending = []
    for number in range(requests // BATCH):
        group = Group("bench", "m", 1)
        for i in range(BATCH):
            n = number * BATCH + i
            # one request in 64 gets an id starting with "z": the prefix filter's match
            request_id = f"{'z' if i == 0 else 'r'}{n:010d}"
            group.append(
                request_id=request_id,
                ts=1_000_000.0 + n * 0.01,
                latency_ms=1.0,
                rows=1,
                inputs=matrix,
                input_names=FEATURES,
                input_rows=(i, i + 1),
                outputs=outputs,
                output_rows=(i, i + 1),
            )
        pending += storable(encode(group, f"{number:032x}"))[0]
        if len(pending) >= 16:  # ~1 MiB a transaction, as the ingester's log_batch_bytes
            log.add_batches(pending)
            pending = []
    log.add_batches(pending)
    return time.perf_counter() - started


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        log = SqlInferenceLogRepository(db)
        seconds = fill(log, args.requests)
        total = args.requests // BATCH * BATCH
        print(f"filled {total:,} requests in {seconds:.1f} s: {total / seconds:,.0f} requests/s")
        payload = log.request_payloads("bench", f"r{1:010d}")[0]
        ms = median_ms(lambda: [request_entries(payload) for _ in range(100)], args.repeat)
        print(f"request_entries: {ms * 1000 / 100 / BATCH:.2f} us a request")
        rng = np.random.default_rng(1)
        for count in (1, 100, 1000):
            logged = [f"r{int(n):010d}" for n in rng.integers(0, total, count)]
            ids = [i if k % 2 else f"x{i}" for k, i in enumerate(logged)] if count > 1 else logged
            ms = median_ms(lambda ids=ids: log.known_requests(ids), args.repeat)
            print(f"known_requests({count:>4} ids): {ms:8.2f} ms")
        queries = {
            "newest 50": RequestQuery("bench", limit=50),
            "newest 50, --request-id z": RequestQuery("bench", request_id_prefix="z", limit=50),
            "newest 50, --unlabelled": RequestQuery("bench", labelled=False, limit=50),
        }
        for name, query in queries.items():
            ms = median_ms(lambda query=query: list_requests(log, query), args.repeat)
            print(f"list_requests {name:<28}: {ms:8.2f} ms")
        one = f"r{total // 2 + 1:010d}"
        ms = median_ms(lambda: show_request(log, "bench", one), args.repeat)
        print(f"show_request (one request):              {ms:8.2f} ms")
        db.dispose()


if __name__ == "__main__":
    main()
