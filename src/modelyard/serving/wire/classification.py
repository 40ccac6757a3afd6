"""The Open Inference Protocol's classification extension (as Triton defines it).

An output requested with ``"parameters": {"classification": N}`` comes back not
as the model's tensor but as a ``BYTES`` tensor of shape ``[rows, N]``: each
row's N highest values, highest first, each as ``"<value>:<index>"`` (the index
of the class in the model's output), or ``"<value>:<index>:<label>"`` when the
version names its classes (an image model's ``labels``) and the output holds one
value per class. Ties keep the lower index first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.errors import MalformedRequestError, ValidationError
from modelyard.registry.signature import Signature

EXTENSION = "classification"


def requested_count(name: str, parameters: dict[str, Any]) -> int | None:
    """The ``classification`` count of output ``name``'s (checked) parameters, if any."""
    count = parameters.get(EXTENSION)
    if count is None:
        return None
    if type(count) is not int or count < 1:
        raise MalformedRequestError(
            f"output {name!r}: parameters.classification must be a positive integer "
            f"(how many classes to return), got {count!r}"
        )
    return count


def check_counts(counts: dict[str, int], signature: Signature) -> None:
    """Refuse a count larger than the values a row of that output holds (where the
    signature knows it), before the model runs."""
    for spec in signature.outputs:
        count = counts.get(spec.name)
        if count is None or any(d <= 0 for d in spec.shape):
            continue
        width = math.prod(spec.shape)
        if count > width:
            raise ValidationError(
                f"output {spec.name!r} holds {width} value(s) a row; parameters.classification "
                f"asks for {count}"
            )


def classify(values: np.ndarray, count: int, name: str, labels: Sequence[str] = ()) -> np.ndarray:
    """Each row's ``count`` highest values of ``values`` (rows first) as the extension's
    strings: an object array of shape ``[rows, count]``; ``labels``: the class names,
    added when there is one per value of a row."""
    rows = values.reshape(len(values), -1)
    if rows.dtype.kind not in "fiub":
        raise ValidationError(
            f"output {name!r} holds no numbers; parameters.classification needs class scores"
        )
    if count > rows.shape[1]:
        raise ValidationError(
            f"output {name!r} holds {rows.shape[1]} value(s) a row; parameters.classification "
            f"asks for {count}"
        )
    # negated as float64 so that a stable sort puts the highest first and ties in index order
    top = np.argsort(-rows.astype(np.float64), axis=1, kind="stable")[:, :count]
    named = len(labels) == rows.shape[1]
    answers = np.empty(top.shape, dtype=object)
    for i, indices in enumerate(top):
        row = rows[i]
        # str: the dtype's shortest form
        answers[i] = (
            [f"{row[j]!s}:{j}:{labels[j]}" for j in indices]
            if named
            else [f"{row[j]!s}:{j}" for j in indices]
        )
    return answers
