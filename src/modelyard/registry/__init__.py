"""The model registry: versions, aliases, signatures, profiles, formats and the ``Predictor``.

``Registry`` (writes) resolves on first use: it imports SQLAlchemy, which a
process that only loads a model (``load_model``, ``Catalog``) never needs.
"""

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.registry.catalog import (
    AliasMove,
    Catalog,
    LoadedModel,
    ModelVersion,
    RegisteredModel,
)
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Predictor
from modelyard.registry.loading import load_model
from modelyard.registry.profile import build_profile, load_sample
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.registry.signature import FieldSpec, Signature, infer_signature, to_model_input

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry

__all__ = [
    "FLAVOURS",
    "AliasMove",
    "Catalog",
    "FieldSpec",
    "LoadOptions",
    "LoadedModel",
    "ModelRef",
    "ModelVersion",
    "Predictor",
    "RegisteredModel",
    "Registry",
    "Signature",
    "build_profile",
    "infer_signature",
    "load_model",
    "load_sample",
    "parse_ref",
    "to_model_input",
]


def __getattr__(name: str) -> Any:
    if name == "Registry":
        return importlib.import_module("modelyard.registry.registry").Registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
