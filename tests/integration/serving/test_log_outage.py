"""The log store unavailable for a real 60 s under steady load, on a real server.

Another process takes SQLite's write lock (``BEGIN EXCLUSIVE``) and holds it for 60 s:
the supervisor's ingester cannot store a row, as when a backup, a migration or a
runaway script holds the database. Reads still work (WAL mode), so the workers keep
answering, each writing its write-ahead log, capped by ``wal_max_bytes``; once a log is
full its worker answers 503 + Retry-After rather than answer unlogged. When the lock
goes, every acknowledged (200) request must reach the store, while the logs on disk
stayed under their cap and the supervisor's memory did not grow with the backlog.
The same outage on simulated time (10 minutes) is
``tests/unit/monitoring/test_log_outage.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from modelyard.config import load_settings
from modelyard.monitoring.inference_log.payload import Payload
from modelyard.store.database import Database
from modelyard.store.schema import inference_batches

from .conftest import Load, fraud_features

OUTAGE_S = 60.0
WAL_MAX_BYTES = 1 << 20  # the smallest cap allowed, so that the outage fills it
RSS_GROWTH_LIMIT = 50 * 1024 * 1024

# Holds SQLite's write lock until its stdin closes: another process, as in production.
_LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def wal_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*/*.log") if p.exists())


class Sampler:
    """Samples the supervisor's RSS and the write-ahead logs' size on disk every 0.2 s."""

    def __init__(self, pid: int, wal_dir: Path) -> None:
        self.pid, self.wal_dir = pid, wal_dir
        self.rss: list[int] = []
        self.wal: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.rss.append(rss_bytes(self.pid))
            try:
                self.wal.append(wal_bytes(self.wal_dir))
            except FileNotFoundError:  # a segment deleted while listed
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def stored_answers(home: Path) -> Counter[str]:
    """Request ids stored as answered (200), with how many times each was stored; a
    refused request is stored too, as its 503, with no prediction."""
    db = Database(load_settings(home=home, environ={}).resolved_database_url)
    try:
        with db.read() as conn:
            payloads = conn.execute(select(inference_batches.c.payload)).scalars().all()
    finally:
        db.dispose()
    return Counter(
        r.request_id for data in payloads for r in Payload(data).records if r.status == 200
    )


def backlog_bytes(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("modelyard_inference_log_backlog_bytes"):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.slow
def test_a_60_s_store_outage_under_load_loses_no_acknowledged_prediction(
    fresh_home: Path, launch_server: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    earlier = stored_answers(fresh_home)  # the copied home may hold other tests' traffic
    server = launch_server(
        fresh_home,
        ["fraud@champion"],
        workers=2,
        environ={
            "MODELYARD_MONITORING__WAL_MAX_BYTES": str(WAL_MAX_BYTES),
            "MODELYARD_MONITORING__CHECK_INTERVAL_S": "0",
        },
    )
    settings = load_settings(home=fresh_home, environ={})
    database = settings.resolved_database_url.removeprefix("sqlite:///")
    rows = fraud_features()[:20]  # 20 rows a request: the logs fill within the outage
    body = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [20, 30], "datatype": "FP32",
                     "data": rows.ravel().tolist()}]}
    )  # fmt: skip
    load = Load(server.url, "/v2/models/fraud/infer", body, connections=4).start()
    holder: subprocess.Popen[str] | None = None
    try:
        assert load.wait_for(lambda seen: sum(o.status == 200 for o in seen) >= 200, 60)
        sampler = Sampler(server.process.pid, settings.resolved_wal_dir)
        holder = subprocess.Popen(
            [sys.executable, "-c", _LOCK_HOLDER, database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        # The backlog shows on /metrics, and the logs fill to their cap: 503s begin.
        assert wait_until(lambda: backlog_bytes(server.url) > 0, 30)
        assert load.wait_for(lambda seen: any(o.status == 503 for o in seen), OUTAGE_S - 5)
        rss_during = rss_bytes(server.process.pid)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - locked_at)))  # the outage itself
        assert holder.poll() is None, "the lock holder died early"
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(10)
        released_at = time.monotonic()
        # Served again: requests are answered 200 after the store came back.
        assert load.wait_for(
            lambda seen: sum(o.status == 200 and o.at > released_at + 5 for o in seen) >= 100,
            90,
        )
    finally:
        outcomes = load.stop()
        if holder is not None and holder.poll() is None:
            holder.kill()
    acknowledged = {o.request_id for o in outcomes if o.status == 200}
    refused = [o for o in outcomes if o.status == 503]
    assert {o.status for o in outcomes} <= {200, 503}, {o.status for o in outcomes}
    assert wait_until(lambda: acknowledged <= set(stored_answers(fresh_home)), 120), (
        f"{len(acknowledged - set(stored_answers(fresh_home)))} of {len(acknowledged)} "
        "acknowledged requests never reached the store"
    )
    assert wait_until(lambda: backlog_bytes(server.url) == 0, 60)
    sampler.stop()
    stored = stored_answers(fresh_home) - earlier
    assert set(stored) == acknowledged
    assert max(stored.values()) == 1  # each once
    # Disk: each of the 2 workers' logs under its cap, the whole outage through.
    assert max(sampler.wal) <= 2 * WAL_MAX_BYTES
    # Memory: the supervisor held a read's worth, not the backlog.
    assert max(sampler.rss) - sampler.rss[0] < RSS_GROWTH_LIMIT, (sampler.rss[0], rss_during)
    print(
        f"\n{len(acknowledged)} acknowledged, {len(refused)} refused (503) in "
        f"{len(outcomes)}; WAL peak {max(sampler.wal)} bytes; supervisor RSS "
        f"{sampler.rss[0] / 2**20:.1f} -> peak {max(sampler.rss) / 2**20:.1f} MiB"
    )
