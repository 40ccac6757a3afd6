"""Baseline: a hand-written FastAPI endpoint around ``implicit``'s own ``recommend``.

The same factors and seen items as the modelyard version (read from ``BENCH_FACTORS``,
an ``.npz`` written by ``bench_serving.py``), loaded into an
``implicit.cpu.als.AlternatingLeastSquares``; each request calls
``model.recommend(user, seen[user], N=k, filter_already_liked_items=True)``. No
validation beyond a lookup, no request ids, logs, routing or metrics.

Run: ``uvicorn fastapi_implicit:app`` with ``BENCH_FACTORS=factors.npz``.
"""

from __future__ import annotations

import os

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from implicit.cpu.als import AlternatingLeastSquares
from scipy import sparse

stored = np.load(os.environ["BENCH_FACTORS"], allow_pickle=False)
model = AlternatingLeastSquares(factors=stored["item_factors"].shape[1], num_threads=1)
model.user_factors = stored["user_factors"]
model.item_factors = stored["item_factors"]
n_users, n_items = len(stored["user_factors"]), len(stored["item_factors"])
seen = sparse.csr_matrix(
    (
        np.ones(len(stored["seen_indices"]), np.float32),
        stored["seen_indices"],
        stored["seen_indptr"],
    ),
    shape=(n_users, n_items),
)
users = {f"u{i}": i for i in range(n_users)}

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ready": True}


@app.post("/recommend")
async def recommend(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
        index = users[body["user"]]
        k = int(body.get("k", 10))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise HTTPException(422, f"bad request: {error}") from None
    ids, scores = model.recommend(index, seen[index], N=k, filter_already_liked_items=True)
    items = [{"item": f"i{i}", "score": float(s)} for i, s in zip(ids, scores, strict=True)]
    return Response(orjson.dumps({"items": items}), media_type="application/json")
