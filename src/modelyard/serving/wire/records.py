"""JSON records (KServe V1, TensorFlow Serving): ``{"instances": [{...}, ...]}`` in,
``{"predictions": [...]}`` out. The records themselves are checked against the
model's signature by ``hosting.validation``."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from modelyard.errors import MalformedRequestError
from modelyard.serving.wire.oip import DUMP_OPTIONS, Outputs


def parse_records_request(doc: object, max_values: int = 0) -> object:
    """The ``instances`` of a ``{"instances": [...]}`` body (checked by the validator, which
    counts the rows: ``max_values`` is there to match ``oip.parse_infer_request``)."""
    if type(doc) is not dict or "instances" not in doc:
        raise MalformedRequestError(
            'the request body must be a JSON object like {"instances": [{"field": value, ...}]}'
        )
    return doc["instances"]


def encode_response(
    model_name: str,
    model_version: str,
    request: object,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
) -> bytes:
    """``{"predictions": [...]}``: one value per record (one object per record if the
    model has several outputs), as TensorFlow Serving and KServe V1 answer. A
    trailing dimension of 1 (``[n, 1]`` regressor outputs) is dropped, so a
    regressor answers plain numbers."""
    names = list(outputs)
    columns = []
    for name in names:
        values = outputs[name][start:stop]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        columns.append(values)
    predictions: Any
    if len(names) == 1:
        only = columns[0]
        predictions = only.tolist() if only.dtype.kind in "OUS" else np.ascontiguousarray(only)
    else:
        lists = [values.tolist() for values in columns]
        predictions = [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "predictions": predictions,
        },
        option=DUMP_OPTIONS,
    )


def records_response(
    model_name: str, model_version: str, request_id: str, outputs: Outputs, start: int, stop: int
) -> bytes:
    """``encode_response`` for request ``request_id``."""
    return encode_response(model_name, model_version, None, request_id, outputs, start, stop)


def record_field(instances: object, wanted: str) -> Any:
    """The first record's value of field ``wanted`` in a records request, if any."""
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        return instances[0].get(wanted)
    return None
