"""modelyard: from a trained model to a versioned, validated, monitored prediction service.

``Yard`` (the full library: tracking, registry writes) resolves on first use;
``load_model`` is imported eagerly and stays light, so a fresh process that
only predicts does not pay for SQLAlchemy. Every exception of ``modelyard.errors``
is exported here too (``except modelyard.IntegrityError``).
"""

import importlib
from typing import TYPE_CHECKING, Any

from modelyard import errors
from modelyard.config import Settings, load_settings
from modelyard.errors import *  # noqa: F403  # the exception tree, as ``modelyard.XError``
from modelyard.registry import LoadedModel, Predictor, Signature, load_model

if TYPE_CHECKING:
    from modelyard.yard import Yard

__version__ = "0.1.0"

__all__ = [
    *errors.__all__,
    "LoadedModel",
    "Predictor",
    "Settings",
    "Signature",
    "Yard",
    "__version__",
    "load_model",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    if name == "Yard":
        return importlib.import_module("modelyard.yard").Yard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
