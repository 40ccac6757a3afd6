"""Manifests as text: multi-document YAML for ``kubectl apply -f``.

PyYAML (the ``k8s`` extra) writes them, block style and keys in the order they were
built (``apiVersion``, ``kind``, ``metadata``, ``spec``), as people read manifests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard.errors import ConfigurationError

__all__ = ["manifest_file_name", "to_yaml"]


def to_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """The documents as one YAML stream, ``---`` between them."""
    try:
        import yaml
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            "writing manifests as YAML needs PyYAML: pip install 'modelyard[k8s]' (or pass --json)"
        ) from error

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True  # a manifest repeats a block rather than pointing at it (&id001)

    text: str = yaml.dump_all(
        list(documents), Dumper=Dumper, sort_keys=False, default_flow_style=False
    )
    return text


def manifest_file_name(index: int, document: dict[str, Any]) -> str:
    """``01-configmap-fraud-api-config.yaml``: apply order, kind and name."""
    kind = str(document["kind"]).lower()
    return f"{index:02d}-{kind}-{document['metadata']['name']}.yaml"
