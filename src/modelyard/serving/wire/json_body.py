"""Request bodies as JSON: strict (orjson: no NaN/Infinity literals), and a 400 naming
what was wrong when a body is not JSON at all."""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import MalformedRequestError


def decode_json(body: bytes) -> Any:
    """Parse a request body (orjson: strict JSON, no NaN/Infinity literals)."""
    if not body:
        raise MalformedRequestError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedRequestError(f"the request body is not valid JSON: {error}") from None
