"""JSON records (KServe V1, TensorFlow Serving): ``{"instances": [{...}, ...]}`` in,
``{"predictions": [...]}`` out. The records themselves are checked against the
model's signature by ``hosting.validation``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelyard.errors import MalformedRequestError
from modelyard.serving.wire.oip import DUMP_OPTIONS, Outputs

# Classes a labelled classifier's answer lists per record unless ``top_k`` says otherwise.
DEFAULT_TOP_K = 3
SCORES = "probabilities"


@dataclass(frozen=True)
class RecordsRequest:
    """A records request: its ``instances`` (checked by the validator) and ``top_k``, how
    many classes a classifier with labels lists per record."""

    instances: object
    top_k: int = DEFAULT_TOP_K


def parse_records_request(doc: object, max_values: int = 0) -> RecordsRequest:
    """The ``instances`` (and ``top_k``) of a ``{"instances": [...]}`` body (the validator
    counts the rows: ``max_values`` is there to match ``oip.parse_infer_request``)."""
    if type(doc) is not dict or "instances" not in doc:
        raise MalformedRequestError(
            'the request body must be a JSON object like {"instances": [{"field": value, ...}]}'
        )
    top_k = doc.get("top_k", DEFAULT_TOP_K)
    if type(top_k) is not int or top_k < 1:
        raise MalformedRequestError(
            f"'top_k' must be a positive integer (classes listed per record), got {top_k!r}"
        )
    return RecordsRequest(doc["instances"], top_k)


def encode_response(
    model_name: str,
    model_version: str,
    request: object,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    labels: Sequence[str] = (),
) -> bytes:
    """``{"predictions": [...]}``: one value per record (one object per record if the
    model has several outputs), as TensorFlow Serving and KServe V1 answer. A
    trailing dimension of 1 (``[n, 1]`` regressor outputs) is dropped, so a
    regressor answers plain numbers. A classifier whose version names its classes
    (``labels``, one per value of its ``probabilities``) answers ``labelled``'s objects."""
    scores = outputs.get(SCORES)
    if labels and scores is not None and scores.ndim == 2 and scores.shape[1] == len(labels):
        top_k = request.top_k if isinstance(request, RecordsRequest) else DEFAULT_TOP_K
        predictions: Any = labelled(scores[start:stop], labels, top_k)
        return _document(model_name, model_version, request_id, predictions)
    names = list(outputs)
    columns = []
    for name in names:
        values = outputs[name][start:stop]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        columns.append(values)
    if len(names) == 1:
        only = columns[0]
        predictions = only.tolist() if only.dtype.kind in "OUS" else np.ascontiguousarray(only)
    else:
        lists = [values.tolist() for values in columns]
        predictions = [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
    return _document(model_name, model_version, request_id, predictions)


def labelled(scores: np.ndarray, labels: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """Each row of class ``scores`` as ``{"label": name, "probabilities": [...], "top":
    [{"label", "probability"}, ...]}``: the ``top_k`` likeliest classes (at most all of
    them), highest first, ties in class order."""
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :top_k]
    answers = []
    for row, best in zip(scores.tolist(), order.tolist(), strict=True):
        top = [{"label": labels[i], "probability": row[i]} for i in best]
        answers.append({"label": top[0]["label"], "probabilities": row, "top": top})
    return answers


def _document(model_name: str, model_version: str, request_id: str, predictions: Any) -> bytes:
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


def record_field(request: RecordsRequest, wanted: str) -> Any:
    """The first record's value of field ``wanted`` in a records request, if any."""
    instances = request.instances
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        return instances[0].get(wanted)
    return None
