"""Baseline: a hand-written FastAPI service around the scikit-learn model itself.

Same handler as ``fastapi_ort`` (``async def``, orjson, shape check only) but
calling ``predict_proba`` on the fitted RandomForestClassifier, loaded with
pickle (our own file). ``OMP_NUM_THREADS=1`` and ``n_jobs=1`` keep the two
workers from oversubscribing the two cores (BENCHMARKING.md).

Run: ``uvicorn fastapi_sklearn:app --workers 2`` with ``BENCH_MODEL=model.pkl``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Request, Response

with open(os.environ["BENCH_MODEL"], "rb") as file:
    model = pickle.load(file)  # noqa: S301 - written by the benchmark itself
model.n_jobs = 1
width = model.n_features_in_

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
    probabilities = model.predict_proba(data).astype(np.float32)
    label = probabilities.argmax(axis=1)
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
