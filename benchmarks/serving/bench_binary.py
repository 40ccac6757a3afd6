"""A 1,000-row request as JSON against the binary tensor data extension (issue 19).

Run from the repository root:

    .venv/bin/python benchmarks/serving/bench_binary.py --rounds 5 --requests 40

Starts modelyard (two workers, inference logging on, as ``bench_serving.py`` does) on
127.0.0.1 with the benchmark's 30-feature forest, then, one request at a time on one
keep-alive connection, sends the same 1,000 x 30 float32 batch as

* ``json``: ``{"inputs": [{"data": [...]}]}`` (orjson with numpy, the fastest JSON a
  client can write), the answer JSON;
* ``binary``: the JSON header then the tensor's bytes, outputs asked for in binary
  (``binary_data_output``), as ``tritonclient`` does by default.

Each request is timed in three parts on the client: encode (numpy to body), the round
trip (server side, the network and HTTP), decode (body to numpy). It prints each
part's median per request, the medians of the rounds, and the ratio json / binary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402

ROWS = 1_000
HEADER = "Inference-Header-Content-Length"
Encode = Callable[[np.ndarray], tuple[bytes, dict[str, str]]]
Decode = Callable[[httpx.Response], dict[str, np.ndarray]]


def encode_json(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "input", "shape": list(batch.shape), "datatype": "FP32", "data": batch}
    body = orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)
    return body, {"content-type": "application/json"}


def decode_json(response: httpx.Response) -> dict[str, np.ndarray]:
    outputs = orjson.loads(response.content)["outputs"]
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in outputs}


DTYPES = {"INT64": "<i8", "FP32": "<f4", "FP64": "<f8", "INT32": "<i4"}


def encode_binary(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    data = np.ascontiguousarray(batch, dtype="<f4").tobytes()
    tensor = {
        "name": "input",
        "shape": list(batch.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(data)},
    }
    head = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    return head + data, {HEADER: str(len(head)), "content-type": "application/octet-stream"}


def decode_binary(response: httpx.Response) -> dict[str, np.ndarray]:
    content = response.content
    length = int(response.headers[HEADER])
    offset = length
    result = {}
    for output in orjson.loads(content[:length])["outputs"]:
        size = output["parameters"]["binary_data_size"]
        dtype = np.dtype(DTYPES[output["datatype"]])
        values = np.frombuffer(content, dtype, size // dtype.itemsize, offset)
        result[output["name"]] = values.reshape(output["shape"])
        offset += size
    return result


def one_round(
    client: httpx.Client, url: str, batch: np.ndarray, encode: Encode, decode: Decode, n: int
) -> tuple[float, float, float, int, dict[str, np.ndarray]]:
    """Median encode, round trip and decode per request (seconds), the body's size and
    the last answer."""
    encodes, trips, decodes = [], [], []
    answer: dict[str, np.ndarray] = {}
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        body, headers = encode(batch)
        t1 = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        t2 = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        answer = decode(response)
        t3 = time.perf_counter()
        encodes.append(t1 - t0)
        trips.append(t2 - t1)
        decodes.append(t3 - t2)
        size = len(body)
    return (
        statistics.median(encodes),
        statistics.median(trips),
        statistics.median(decodes),
        size,
        answer,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="per format and round")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-binary-") as tmp:
        out = Path(tmp)
        (out / "logs").mkdir()
        prep = bench.prepare(out)
        batch = np.random.default_rng(0).normal(size=(ROWS, 30)).astype(np.float32)
        port = bench.free_port()
        spec = bench.modelyard_spec(prep, out, port, label="modelyard", description="modelyard")
        with bench.running(spec, port, out) as (base, _), httpx.Client(timeout=60) as client:
            url = base + spec.infer_path
            formats: dict[str, tuple[Encode, Decode]] = {
                "json": (encode_json, decode_json),
                "binary": (encode_binary, decode_binary),
            }
            for encode, decode in formats.values():  # warm up, and check they agree
                one_round(client, url, batch, encode, decode, 3)
            figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in formats}
            sizes: dict[str, int] = {}
            answers: dict[str, Any] = {}
            for _ in range(args.rounds):
                for name, (encode, decode) in formats.items():
                    e, t, d, size, answer = one_round(
                        client, url, batch, encode, decode, args.requests
                    )
                    figures[name].append((e, t, d))
                    sizes[name], answers[name] = size, answer
        for key in answers["json"]:
            np.testing.assert_allclose(answers["binary"][key], answers["json"][key], rtol=1e-6)

    totals = {}
    print(f"{ROWS} rows x 30 float32, {args.rounds} rounds x {args.requests} requests each")
    print(
        f"{'format':8} {'body':>10} {'encode':>10} {'round trip':>11} {'decode':>10} {'total':>10}"
    )
    for name, rounds in figures.items():
        encode_s = statistics.median(r[0] for r in rounds)
        trip_s = statistics.median(r[1] for r in rounds)
        decode_s = statistics.median(r[2] for r in rounds)
        totals[name] = statistics.median(sum(r) for r in rounds)
        print(
            f"{name:8} {sizes[name]:>8,} B {encode_s * 1e3:>7.3f} ms {trip_s * 1e3:>8.3f} ms "
            f"{decode_s * 1e3:>7.3f} ms {totals[name] * 1e3:>7.3f} ms"
        )
    print(f"json / binary (total per request): {totals['json'] / totals['binary']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
