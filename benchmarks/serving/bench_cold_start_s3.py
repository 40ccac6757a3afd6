"""Time to first ready for a serving node on an empty disk: its artifacts on an S3
object store against on a local directory, and the restart that finds them in its cache.

Run from the repository root (needs the dev extra: s3fs, moto[server]):

    .venv/bin/python benchmarks/serving/bench_cold_start_s3.py [--rounds 5]

What it measures: the forest of ``bench_serving`` (100 trees, ONNX) registered twice,
into one shared SQLite database each: once with its artifacts in a local directory,
once with them in ``s3://BUCKET/yard`` on moto's S3-compatible server, started here
on loopback (``python -m moto.server``, a separate process). Each round starts
``python -m modelyard.serving --workers 1 --model fraud@champion`` three times,
in turn, and times from the process start to the first 200 from
``/v2/health/ready`` (the version loaded, verified and warmed):

- ``local dir``: a fresh, empty home; the artifacts URL a local directory (as a
  shared mount would be);
- ``s3 cold``: a fresh, empty home; the artifacts on S3: the node downloads the
  model, its reference profile and row sample, verifies each by sha256 and keeps
  them under ``<home>/cache/artifacts``;
- ``s3 warm``: the ``s3 cold`` node's home started again: the cache answers.

It prints the median (and the spread) of each, and how long a fresh process takes to
open the store (importing s3fs and botocore), fetch the version's blobs and verify them
(no cache): what a cold start adds to a start from a local directory, measured apart
from the noise of whole server starts on a shared machine; and the transfer alone, with
the client already open. Loopback S3 has no network latency or
bandwidth limit: against a real object store add (size / bandwidth) and a
round trip per blob.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s")


def start_s3(out: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3-compatible server on a free loopback port, in its own process."""
    port = bench.free_port()
    with (out / "moto.out").open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{endpoint}/", timeout=2).status_code == 200, 60, "moto")
    return process, endpoint


def register(home: Path, database: str, artifacts: str) -> list[str]:
    """The forest as ``fraud@champion``; the digests of the blobs a server reads."""
    from modelyard.config import load_settings
    from modelyard.yard import Yard

    forest, train, _ = bench._forest()
    settings = load_settings(home=home, database_url=database, artifacts_url=artifacts, environ={})
    with Yard(settings) as yard:
        version = yard.registry.register("fraud", forest, train, feature_names=bench.FIELDS)
        yard.registry.set_alias("fraud", "champion", version.version)
        profile = yard.registry.profile("fraud", version.version)
    digests = [version.artifact_digest]
    if version.profile_digest:
        digests.append(version.profile_digest)
    sample = profile.get("sample_digest")
    if isinstance(sample, str):
        digests.append(sample)
    return digests


def time_to_ready(home: Path, env: dict[str, str], out: Path) -> float:
    port = bench.free_port()
    env = {
        **env,
        "MODELYARD_HOME": str(home),
        "MODELYARD_SERVING__PORT": str(port),
        "MODELYARD_SERVING__WORKERS": "1",
        "MODELYARD_SERVING__LOG_PATH": str(out / f"serve-{port}.jsonl"),
    }
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "modelyard.serving", "--model", "fraud@champion"]
    started = time.perf_counter()
    with (out / f"serve-{port}.out").open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=sink, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}/v2/health/ready"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited; see {out}/serve-{port}.out")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


_FETCH = """
import sys, time
started = time.perf_counter()
from modelyard.store import open_artifact_store
store = open_artifact_store(sys.argv[1])
size = sum(len(store.get_bytes(digest)) for digest in sys.argv[2:])
print(time.perf_counter() - started, size)
"""


def fetch_seconds(url: str, digests: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds a fresh process takes to open the store (importing s3fs and botocore),
    fetch the blobs a server reads and verify them, and their bytes."""
    found = subprocess.run(
        [sys.executable, "-c", _FETCH, url, *digests],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, size = found.stdout.split()
    return float(seconds), int(size)


def transfer_seconds(url: str, digests: list[str], rounds: int) -> float:
    """Median seconds to fetch and verify the blobs with the client already imported and
    open: the transfer alone."""
    from modelyard.store import FsspecArtifactStore

    store = FsspecArtifactStore(url)
    store.exists(digests[0])  # opens the client
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for digest in digests:
            store.get_bytes(digest)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"uptime: {bench.uptime()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        moto, endpoint = start_s3(out)
        try:
            os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
            httpx.put(f"{endpoint}/models", timeout=10).raise_for_status()
            s3_url = "s3://models/yard"
            s3_db = f"sqlite:///{out / 's3.db'}"
            local_db = f"sqlite:///{out / 'local.db'}"
            digests = register(out / "registering-s3", s3_db, s3_url)
            local_digests = register(
                out / "registering-local", local_db, str(out / "shared-artifacts")
            )

            base = bench.base_env()
            s3_env = {
                **base,
                **FAKE_CREDENTIALS,
                "AWS_ENDPOINT_URL": endpoint,
                "MODELYARD_DATABASE_URL": s3_db,
                "MODELYARD_ARTIFACTS_URL": s3_url,
            }
            local_env = {
                **base,
                "MODELYARD_DATABASE_URL": local_db,
                "MODELYARD_ARTIFACTS_URL": str(out / "shared-artifacts"),
            }
            figures: dict[str, list[float]] = {"local dir": [], "s3 cold": [], "s3 warm": []}
            fetches = [fetch_seconds(s3_url, digests, s3_env) for _ in range(args.rounds)]
            transfer_s = transfer_seconds(s3_url, digests, args.rounds)
            local_dir = str(out / "shared-artifacts")
            local_fetches = [
                fetch_seconds(local_dir, local_digests, local_env) for _ in range(args.rounds)
            ]
            for round_ in range(args.rounds):
                node = out / f"node-{round_}"
                figures["local dir"].append(time_to_ready(out / f"local-{round_}", local_env, out))
                figures["s3 cold"].append(time_to_ready(node, s3_env, out))
                cached = list((node / "cache" / "artifacts" / "sha256").rglob("*"))
                assert sum(p.is_file() for p in cached) == len(digests), cached
                figures["s3 warm"].append(time_to_ready(node, s3_env, out))
        finally:
            os.killpg(moto.pid, signal.SIGTERM)
            moto.wait(30)
    print(f"uptime: {bench.uptime()}")
    fetch_s = statistics.median(seconds for seconds, _ in fetches)
    print(
        f"blobs a node reads: {len(digests)}, {fetches[0][1] / 1e6:.2f} MB; a fresh process "
        f"opens the store (imports s3fs), fetches and verifies them from loopback S3 in "
        f"{fetch_s:.2f} s (median of {args.rounds}; min {min(s for s, _ in fetches):.2f}); "
        f"from the local directory in {statistics.median(s for s, _ in local_fetches):.2f} s"
    )
    print(f"the transfer alone (client open, in this process): {transfer_s * 1000:.0f} ms")
    print("artifacts   ready_s(median)  min    max    runs")
    for name, times in figures.items():
        print(
            f"{name:<10}  {statistics.median(times):>15.2f}  {min(times):>5.2f}  "
            f"{max(times):>5.2f}  {len(times):>4}"
        )


if __name__ == "__main__":
    main()
