"""The model registry: versions, aliases, signatures, profiles, formats and the ``Predictor``.

Models live behind ``RegistryRepository`` (reads: ``CatalogRepository``):
``registry.sql.SqlRegistryRepository`` on the metadata database,
``InMemoryRegistryRepository`` in memory for tests. ``Registry`` (writes)
resolves on first use: it pulls in tracking (for lineage and data fingerprints),
which a process that only loads a model (``load_model``, ``Catalog``) never needs.
"""

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.registry.catalog import Catalog, LoadedModel
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Predictor, TypedInputs
from modelyard.registry.loading import load_model
from modelyard.registry.memory import InMemoryRegistryRepository
from modelyard.registry.profile import build_profile, load_sample
from modelyard.registry.records import AliasMove, ModelVersion, RegisteredModel, VersionDraft
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.registry.repository import CatalogRepository, RegistryRepository, RunDatasets
from modelyard.registry.signature import FieldSpec, Signature, infer_signature, to_model_input

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry

__all__ = [
    "FLAVOURS",
    "AliasMove",
    "Catalog",
    "CatalogRepository",
    "FieldSpec",
    "LoadOptions",
    "LoadedModel",
    "InMemoryRegistryRepository",
    "ModelRef",
    "ModelVersion",
    "Predictor",
    "RegisteredModel",
    "Registry",
    "RegistryRepository",
    "RunDatasets",
    "Signature",
    "TypedInputs",
    "VersionDraft",
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
