"""Finding a plan's pipeline: ``module:function`` imported the way uvicorn finds an app.

The current directory is searched first, so ``modelyard worker`` started in a project
finds the project's modules. Whatever goes wrong (no module, no attribute, not
callable, an error while importing) becomes one ``ValidationError`` naming the
reference.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from modelyard.errors import ValidationError

__all__ = ["load_pipeline"]


def load_pipeline(reference: str) -> Callable[[Any], Any]:
    """The callable ``reference`` (``package.module:function``) names."""
    module_name, _, attribute = reference.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
        raise ValidationError(
            f"pipeline {reference!r}: cannot import {module_name!r}: {problem}"
        ) from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ValidationError(
            f"pipeline {reference!r}: module {module_name!r} has no {attribute!r}"
        )
    if not callable(found):
        raise ValidationError(f"pipeline {reference!r} is a {type(found).__name__}, not a function")
    return found  # type: ignore[no-any-return]
