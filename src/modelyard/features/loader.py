"""Definitions from the user's own Python files, as ``feast apply`` reads a repo.

``load_definitions("features.py")`` runs the file as a module (it is the user's code,
trusted as their training script is) and collects every ``Entity``, ``FeatureView`` and
``OnDemandFeature`` bound at its top level. The file's directory is on ``sys.path``
while it runs, so it may import its neighbours; the module is not left in
``sys.modules``, so loading a file twice runs it twice.

An error in the file is a ``ValidationError`` naming the file and line, so the command
line prints one line; a ``ModelyardError`` raised by a definition (a bad TTL, an unknown
function in an expression) passes through with its own message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from modelyard.errors import ModelyardError, ValidationError
from modelyard.features.definition_set import Definitions
from modelyard.features.definitions import Entity, FeatureView
from modelyard.features.on_demand import OnDemandFeature

__all__ = ["load_definitions"]


def load_definitions(*paths: str | Path) -> Definitions:
    """Every entity, view and on-demand feature defined at the top level of ``paths``."""
    if not paths:
        raise ValidationError("name at least one Python file of feature definitions")
    found: list[object] = []
    for path in paths:
        found += _objects(Path(path))
    definitions = Definitions.collect(found)
    if not len(definitions):
        shown = ", ".join(str(p) for p in paths)
        raise ValidationError(
            f"{shown} defines no Entity, FeatureView or OnDemandFeature at its top level"
        )
    return definitions


def _objects(path: Path) -> list[object]:
    if path.suffix != ".py" or not path.is_file():
        raise ValidationError(f"{path} is not a Python file (a features.py of definitions)")
    path = path.resolve()
    module_name = "modelyard_features_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module  # dataclasses defined in the file look themselves up
    try:
        spec.loader.exec_module(module)
    except ModelyardError:
        raise
    except SyntaxError as error:
        raise ValidationError(f"{path}:{error.lineno}: {error.msg}") from None
    except Exception as error:  # the user's code: say where, in one line
        raise ValidationError(
            f"{path}:{_line_in(path, error)}: {type(error).__name__}: {error}"
        ) from None
    finally:
        sys.modules.pop(module_name, None)
        if folder in sys.path:
            sys.path.remove(folder)
    return [
        value
        for name, value in vars(module).items()
        if not name.startswith("__") and isinstance(value, Entity | FeatureView | OnDemandFeature)
    ]


def _line_in(path: Path, error: BaseException) -> int | str:
    """The line of ``path`` the error went through last."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return frames[-1].lineno or "?" if frames else "?"
