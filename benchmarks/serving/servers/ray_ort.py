"""Baseline: a hand-written minimal Ray Serve app around an onnxruntime session.

The FastAPI baseline's handler (``fastapi_ort.py``) as a Ray Serve deployment, with
Ray Serve's plain ``__call__(request)`` (no FastAPI), one intra-op thread, the session
called on the replica's event loop, orjson in and out, and ``max_ongoing_requests``
raised from its default of 5, which collapsed at 32 connections (BENCHMARKING.md).
No validation beyond the shape, no request ids, logs or metrics.

Run: ``python ray_ort.py PORT REPLICAS`` with ``BENCH_MODEL=model.onnx``; it starts a
local Ray cluster (no dashboard) and serves until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 1})
class Forest:
    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.width = self.session.get_inputs()[0].shape[1]
        self.output_names = [o.name for o in self.session.get_outputs()]

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(b'{"ready":true}', media_type="application/json")
        try:
            tensor = orjson.loads(await request.body())["inputs"][0]
            data = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
            return Response(f"bad request: {error}".encode(), status_code=400)
        if data.ndim != 2 or data.shape[1] != self.width:
            return Response(b"bad shape", status_code=400)
        label, probabilities = self.session.run(self.output_names, {self.input_name: data})
        body: dict[str, Any] = {
            "model_name": "fraud",
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [len(label)], "data": label},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(probabilities.shape),
                    "data": probabilities.ravel(),
                },
            ],
        }
        return Response(
            orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )


def main() -> None:
    port, replicas = int(sys.argv[1]), int(sys.argv[2])
    ray.init(include_dashboard=False, log_to_driver=False)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, frame: stop.append(sig))
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = Forest.options(num_replicas=replicas).bind(os.environ["BENCH_MODEL"])
    serve.run(app, name="forest", route_prefix="/", blocking=False)
    while not stop:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
