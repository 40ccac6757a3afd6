"""KServe's own API models, to check a rendered manifest against, installed from PyPI by the
test run itself.

KServe's CRDs are not kept in this repository (they are KServe's code) and the ``kserve``
package cannot be a dependency: it pins ``pandas<3`` and ``protobuf<7``, older than this
project's. But its wheel carries the Python models KServe generates from the same Go
types as its CRDs (``kserve.models.V1beta1InferenceService`` and the rest, by
openapi-generator). So the wheel is installed without its dependencies into a folder of
pytest's cache (``pip install --no-deps --target``; a rerun finds it there), and only
its ``models`` package is imported: its top-level package would import KServe's model
server and every dependency skipped; the models need only ``six`` and the package's
``configuration`` module. A stand-in for the top-level package, holding nothing but its
path, lets ``import kserve.models`` run without it, and is removed afterwards.

``as_kserve_model`` then builds the models from a manifest, strictly: a field the model
does not declare fails (the generated client would drop it silently, as
``kubectl apply --validate=strict`` would not), a value of the wrong JSON type fails, the
generated constructors refuse a missing required field, and every Kubernetes type inside
(containers, volumes, metadata) goes through the official client's models
(``tests.unit.platforms.api_schemas.as_kubernetes_model``).
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.unit.platforms.api_schemas import as_kubernetes_model

__all__ = ["KSERVE", "as_kserve_model", "install_kserve", "kserve_models"]

KSERVE = "kserve==0.21.0"  # the release docs/kubernetes.md renders for
_OFFLINE = (
    "NewConnectionError",
    "Max retries exceeded",
    "No matching distribution found",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Could not fetch URL",
    "ConnectTimeout",
    "ProxyError",
)
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "date": (str,),
    "datetime": (str,),
}


class Offline(Exception):
    """PyPI could not be reached: the reason to skip, not to fail."""


def install_kserve(folder: Path) -> Path:
    """``folder`` holding KServe's wheel, unpacked without dependencies (once)."""
    if (folder / "kserve" / "models" / "__init__.py").is_file():
        return folder
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
    done = subprocess.run(
        [*command, "--target", str(folder), KSERVE],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(sign in output for sign in _OFFLINE):
            raise Offline(f"PyPI is unreachable, so {KSERVE} cannot be installed: {output[-300:]}")
        raise AssertionError(f"pip could not install {KSERVE}: {output[-2000:]}")
    return folder


@contextlib.contextmanager
def kserve_models(folder: Path) -> Iterator[types.ModuleType]:
    """``kserve.models`` from ``folder``, without running ``kserve/__init__.py``."""
    saved = {k: m for k, m in sys.modules.items() if k == "kserve" or k.startswith("kserve.")}
    stand_in = types.ModuleType("kserve")
    stand_in.__path__ = [str(folder / "kserve")]
    sys.modules["kserve"] = stand_in
    try:
        yield importlib.import_module("kserve.models")
    finally:
        for name in [k for k in sys.modules if k == "kserve" or k.startswith("kserve.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def as_kserve_model(data: Any, type_name: str, models: types.ModuleType, where: str = "$") -> Any:
    """``data`` as KServe's model ``type_name`` (``V1beta1InferenceService``); an
    AssertionError names the path of whatever the model does not take."""
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{where}: a list ({type_name}), got {data!r}"
        inner = type_name[5:-1]
        return [as_kserve_model(v, inner, models, f"{where}[{i}]") for i, v in enumerate(data)]
    if type_name.startswith("dict("):
        assert isinstance(data, dict), f"{where}: an object ({type_name}), got {data!r}"
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {k: as_kserve_model(v, inner, models, f"{where}.{k}") for k, v in data.items()}
    if type_name == "object":
        return data
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        fits = isinstance(data, allowed) and not (isinstance(data, bool) and bool not in allowed)
        assert fits, f"{where}: a {type_name}, got {data!r}"
        return data
    model = getattr(models, type_name, None)
    if model is None:  # one of Kubernetes' own types
        try:
            return as_kubernetes_model(data, type_name)
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}") from None
    assert isinstance(data, dict), f"{where}: a {type_name} is an object, got {data!r}"
    attributes = {key: attribute for attribute, key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(attributes))
    assert not unknown, f"{where}: {type_name} has no field {', '.join(unknown)}"
    values = {
        attributes[key]: as_kserve_model(
            value, model.openapi_types[attributes[key]], models, f"{where}.{key}"
        )
        for key, value in data.items()
    }
    try:
        return model(**values)  # the generated setters refuse missing required fields
    except ValueError as error:
        raise AssertionError(f"{where}: {type_name}: {error}") from None
