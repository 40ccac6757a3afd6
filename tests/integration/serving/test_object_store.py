"""A serving node on an empty disk: its versions come from the shared object store (a
local S3-compatible server here), verified by hash, and stay in its cache for the next
start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import load_settings
from modelyard.registry.loading import load_model
from modelyard.store import FsspecArtifactStore
from modelyard.yard import Yard

pytest.importorskip("s3fs")


def test_a_node_on_an_empty_disk_serves_from_the_object_store(
    s3_environ: Any,
    tmp_path: Path,
    launch_server: Any,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    features, _ = classification_data
    bucket = s3_environ.new_bucket()
    shared = {
        "MODELYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "MODELYARD_ARTIFACTS_URL": f"s3://{bucket}/yard",
    }
    registering = load_settings(
        home=tmp_path / "laptop",
        database_url=shared["MODELYARD_DATABASE_URL"],
        artifacts_url=shared["MODELYARD_ARTIFACTS_URL"],
        environ={},
    )
    with Yard(registering) as yard:
        version = yard.register_model("fraud", forest, features)

    node = tmp_path / "node"
    node.mkdir()  # empty: no database, no artifacts
    server = launch_server(node, ["fraud/1"], environ={**shared, **s3_environ.environ})
    body = {"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP32"}]}
    body["inputs"][0]["data"] = features[:2].ravel().tolist()
    answer = httpx.post(f"{server.url}/v2/models/fraud/infer", content=orjson.dumps(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    labels = next(o for o in answer.json()["outputs"] if o["name"] == "label")["data"]
    assert labels == forest.predict(features[:2]).tolist()
    server.stop()

    # The node downloaded the version once, verified, into its cache (not a store of its own).
    cached = node / "cache" / "artifacts" / "sha256"
    assert (cached / version.artifact_digest[:2] / version.artifact_digest).is_file()
    assert not (node / "artifacts").exists()

    # Its next start reads the cache alone: the object store has lost every blob by now.
    remote = FsspecArtifactStore(shared["MODELYARD_ARTIFACTS_URL"])
    remote.fs.rm(bucket, recursive=True)
    restarted = load_settings(
        home=node,
        database_url=shared["MODELYARD_DATABASE_URL"],
        artifacts_url=shared["MODELYARD_ARTIFACTS_URL"],
        environ={},
    )
    loaded = load_model("fraud/1", settings=restarted)
    assert loaded.predict(features[:2])["label"].tolist() == labels
