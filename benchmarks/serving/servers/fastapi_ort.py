"""Baseline: a hand-written FastAPI service around an onnxruntime session.

What a careful engineer writes in an afternoon, tuned the ways BENCHMARKING.md
found matter: one intra-op thread per worker (two workers on two cores), an
``async def`` handler calling the session on the event loop (tree models are
microseconds; a threadpool hop costs more), orjson in and out, and no pydantic
request model. It accepts the same Open Inference Protocol body as modelyard
(one ``input`` tensor, ``[rows, 30]`` FP32) and checks only its shape: no
per-field validation, no request ids, logs or metrics.

Run: ``uvicorn fastapi_ort:app --workers 2`` with ``BENCH_MODEL=model.onnx``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, HTTPException, Request, Response

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(
    os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
)
input_name = session.get_inputs()[0].name
width = session.get_inputs()[0].shape[1]
output_names = [o.name for o in session.get_outputs()]

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v2/models/fraud/infer")
async def infer(request: Request) -> Response:
    try:
        tensor = orjson.loads(await request.body())["inputs"][0]
        data = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise HTTPException(400, f"bad request: {error}") from None
    if data.ndim != 2 or data.shape[1] != width:
        raise HTTPException(400, f"input must be [rows, {width}], got {list(data.shape)}")
    label, probabilities = session.run(output_names, {input_name: data})
    body = {
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
    payload = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(payload, media_type="application/json")
