"""Request bodies as JSON: strict (orjson: no NaN/Infinity literals), and a 400 naming
what was wrong when a body is not JSON at all."""

from __future__ import annotations

import re
from typing import Any

import orjson

from modelyard.errors import MalformedRequestError

_NOT_JSON_NUMBERS = ("-Infinity", "Infinity", "NaN")
# The innermost name before a position: an OIP tensor's "name", else a record's key.
_TENSOR_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def decode_json(body: bytes) -> Any:
    """Parse a request body (orjson: strict JSON, no NaN/Infinity literals)."""
    if not body:
        raise MalformedRequestError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        literal = _non_json_number(error.doc, error.pos)
        if literal is not None:
            raise MalformedRequestError(
                f"the request body is not valid JSON: {literal} at line {error.lineno} column "
                f"{error.colno}{_where(error.doc, error.pos)}; JSON has no NaN or Infinity: "
                "send null for a missing value (where the field allows it), or send the "
                "tensor as binary data (the binary tensor extension)"
            ) from None
        raise MalformedRequestError(f"the request body is not valid JSON: {error}") from None


def _non_json_number(doc: str, pos: int) -> str | None:
    """The NaN/Infinity literal at ``pos`` (orjson points after the sign of -Infinity)."""
    for start in (pos - 1, pos):
        for literal in _NOT_JSON_NUMBERS:
            if start >= 0 and doc.startswith(literal, start):
                return literal
    return None


def _where(doc: str, pos: int) -> str:
    before = doc[:pos]
    names = _TENSOR_NAME.findall(before)
    if names:
        return f" (in input {names[-1]!r})"
    keys = _KEY.findall(before)
    return f" (in field {keys[-1]!r})" if keys else ""
