"""``POST /v1/models/{name}:recommend``: a ranked list for one user, through the pipeline.

The body (``user``, ``k``, ``exclude``, ``candidates``, ``exclude_seen``) is checked
here, each bad field named in a 422, then sent on as a one-record request of the
records route. So a recommendation is routed (a deployment's experiment arm, sticky
by the ``user`` field when that is its routing key), batched and written to the
inference log exactly as any prediction is; the recommender flavour
(``registry.flavours.recommender``) answers it. The exploration draw is seeded from
the request id, so a logged request can be replayed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from modelyard.errors import ValidationError
from modelyard.serving.http.routes import Endpoint
from modelyard.serving.pipeline import RECORDS, Call, InferencePipeline, Reply
from modelyard.serving.wire.json_body import decode_json

MAX_K = 1000
MAX_LIST = 10_000
_FIELDS = frozenset({"user", "k", "exclude", "candidates", "exclude_seen"})


def _id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValidationError(
            f"field {field!r} must be a non-empty string or integer id, got {value!r:.80}"
        )
    return str(value)


def _ids(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise ValidationError(
            f"field {field!r} must be a list of item ids, got {type(value).__name__}"
        )
    if len(value) > MAX_LIST:
        raise ValidationError(
            f"field {field!r} may list at most {MAX_LIST} items, got {len(value)}"
        )
    return [_id(item, f"{field}[{i}]") for i, item in enumerate(value)]


def parse_request(document: Any) -> dict[str, Any]:
    """The record the recommender model takes, or ``ValidationError`` naming the field."""
    if not isinstance(document, dict):
        raise ValidationError(f"the body must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r:.80}; allowed: {', '.join(sorted(_FIELDS))}"
        )
    if "user" not in document:
        raise ValidationError("field 'user' is required")
    k = document.get("k", 10)
    if isinstance(k, float) and math.isfinite(k) and k.is_integer():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not k >= 1:
        raise ValidationError(f"field 'k' must be a positive integer, got {k!r:.80}")
    exclude_seen = document.get("exclude_seen", True)
    if not isinstance(exclude_seen, bool):
        raise ValidationError(
            f"field 'exclude_seen' must be true or false, got {exclude_seen!r:.80}"
        )
    candidates = document.get("candidates")
    return {
        "user": _id(document["user"], "user"),
        "k": min(k, MAX_K),  # and clamped to the catalogue by the model
        "exclude": orjson.dumps(_ids(document.get("exclude", []), "exclude")).decode(),
        "candidates": ""
        if candidates is None
        else orjson.dumps(_ids(candidates, "candidates")).decode(),
        "exclude_seen": int(exclude_seen),
    }


def _seed(request_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=6).digest(), "big")


class Recommend:
    """The ``recommend`` endpoint over the pipeline."""

    def __init__(self, pipeline: InferencePipeline) -> None:
        self._pipeline = pipeline

    async def __call__(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        record = parse_request(decode_json(body))
        record["seed"] = _seed(call.request_id)
        reply = await self._pipeline.run(
            RECORDS, route, call, orjson.dumps({"instances": [record]})
        )
        if reply.status != 200:
            return reply
        answer = orjson.loads(reply.payload)
        prediction = answer["predictions"][0]
        ranked = orjson.loads(prediction["recommendations"])
        items = [
            {"item": item, "score": score, "position": i, "propensity": p}
            for i, (item, score, p) in enumerate(
                zip(ranked["items"], ranked["scores"], ranked["propensities"], strict=True)
            )
        ]
        document = {
            "model_name": reply.model,
            "model_version": reply.version,
            "arm": reply.arm,
            "id": call.request_id,
            "user": record["user"],
            "items": items,
            "fallback": "popularity" if prediction["fallback"] else None,
        }
        return Reply(200, orjson.dumps(document), model=reply.model, version=reply.version, rows=1)
