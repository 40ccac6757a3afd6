"""The registry contract, run on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard.config import Settings
from modelyard.errors import (
    AliasNotFoundError,
    IntegrityError,
    ModelNotFoundError,
    UnsupportedModelError,
    UntrustedFormatError,
    ValidationError,
    VersionNotFoundError,
)
from modelyard.registry.bundle import export_bundle, load_bundle
from modelyard.yard import Yard

Data = tuple[np.ndarray, np.ndarray]
FEATURES = [f"x{i}" for i in range(8)]


def test_versions_are_numbered_and_immutable(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    features, _ = classification_data
    first = yard.register_model("fraud", forest, features, feature_names=FEATURES)
    second = yard.register_model(
        "fraud", forest, features, feature_names=FEATURES, parent_version=1
    )
    assert (first.version, second.version) == (1, 2)
    assert first.flavour == "onnx"
    assert second.parent_version == 1
    assert first.artifact_digest == second.artifact_digest, "same model, same content address"
    assert yard.registry.get_model("fraud").latest_version == 2
    assert [v.version for v in yard.registry.list_versions("fraud")] == [1, 2]


def test_onnx_predictions_equal_the_original_estimators(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    features, _ = classification_data
    yard.register_model("fraud", forest, features, feature_names=FEATURES)
    loaded = yard.load_model("fraud/1")
    out = loaded.predict({name: features[:, i] for i, name in enumerate(FEATURES)})
    np.testing.assert_allclose(out["probabilities"], forest.predict_proba(features), atol=1e-5)
    np.testing.assert_array_equal(out["label"], forest.predict(features))


def test_signature_profile_and_lineage_are_stored(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    features, labels = classification_data
    with yard.start_run("train", seed=1) as run:
        run.log_dataset("train", features)
    version = yard.register_model(
        "fraud",
        forest,
        features,
        feature_names=FEATURES,
        run=run,
        metrics={"auc": 0.9},
        tags={"team": "risk"},
        description="first",
    )
    assert version.signature.input_names == FEATURES
    assert [o.name for o in version.signature.outputs] == ["label", "probabilities"]
    assert version.run_id == run.id
    assert version.lineage["run_datasets"]["train"]["rows"] == len(features)
    assert version.lineage["data"]["rows"] == len(features)
    assert version.metrics == {"auc": 0.9}
    assert version.tags == {"team": "risk"}
    profile = yard.registry.profile("fraud", 1)
    assert set(profile["features"]) == set(FEATURES)
    assert profile["predictions"]["score"]["kind"] == "numeric"
    assert profile["features"]["x0"]["mean"] == pytest.approx(
        float(features[:, 0].mean()), rel=1e-5
    )


def test_aliases_move_atomically_with_history(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    features, _ = classification_data
    for _ in range(2):
        yard.register_model("fraud", forest, features)
    yard.registry.set_alias("fraud", "champion", 1, actor="ana", reason="first release")
    move = yard.registry.set_alias("fraud", "champion", 2, actor="bo", reason="better auc")
    assert (move.from_version, move.to_version) == (1, 2)
    assert yard.registry.resolve("fraud@champion") == ("fraud", 2)
    assert yard.load_model("fraud@champion").version == 2
    history = yard.registry.alias_history("fraud", "champion")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in history] == [
        (None, 1, "ana", "first release"),
        (1, 2, "bo", "better auc"),
    ]
    assert yard.registry.get_version("fraud", 2).aliases == ("champion",)
    yard.registry.delete_alias("fraud", "champion", reason="retired")
    with pytest.raises(AliasNotFoundError, match="has no alias 'champion'"):
        yard.registry.resolve("fraud@champion")


def test_unknown_names_raise_typed_errors(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        yard.registry.resolve("ghost@champion")
    yard.register_model("fraud", forest, classification_data[0])
    with pytest.raises(VersionNotFoundError, match="has no version 9"):
        yard.registry.get_version("fraud", 9)
    with pytest.raises(VersionNotFoundError, match="has no version 9"):
        yard.registry.set_alias("fraud", "champion", 9)
    with pytest.raises(ValidationError, match="alias 'Bad Alias' is not allowed"):
        yard.registry.set_alias("fraud", "Bad Alias", 1)


def test_a_tampered_artifact_is_refused(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    version = yard.register_model("fraud", forest, classification_data[0])
    root = Path(yard.settings.resolved_artifacts_url)
    blob = root / "sha256" / version.artifact_digest[:2] / version.artifact_digest
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"'fraud/1' .* is corrupt"):
        yard.load_model("fraud/1")


def test_a_model_that_does_not_convert_falls_back_to_skops(
    yard: Yard, classification_data: Data
) -> None:
    features, labels = classification_data
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(features, labels)
    version = yard.register_model("hgb", model, features)
    assert version.flavour in ("skops", "onnx")
    if version.flavour == "skops":
        # HistGradientBoosting's tree predictor is outside skops's default safe list.
        with pytest.raises(UntrustedFormatError, match="TreePredictor"):
            yard.load_model("hgb/1")
    out = yard.load_model("hgb/1", trusted=True).predict(features)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(features), atol=1e-5)


def test_regressors_answer_with_prediction(yard: Yard, classification_data: Data) -> None:
    features, labels = classification_data
    model = LinearRegression().fit(features, labels.astype(float))
    yard.register_model("reg", model, features)
    out = yard.load_model("reg/1").predict(features[:10])
    np.testing.assert_allclose(
        out["prediction"].ravel(), model.predict(features[:10]), rtol=1e-4, atol=1e-4
    )


def test_pickle_is_refused_unless_trusted(yard: Yard, classification_data: Data) -> None:
    features, labels = classification_data
    model = LogisticRegression().fit(features, labels)
    with pytest.raises(UnsupportedModelError, match="refused without trusted=True"):
        yard.register_model("lr", model, features, flavour="pickle")
    yard.register_model("lr", model, features, flavour="pickle", trusted=True)
    with pytest.raises(UntrustedFormatError, match="can run arbitrary code"):
        yard.load_model("lr/1")
    out = yard.load_model("lr/1", trusted=True).predict(features[:5])
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(features[:5]), atol=1e-6)


def test_export_writes_a_verified_self_contained_bundle(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data, tmp_path: Path
) -> None:
    features, _ = classification_data
    yard.register_model("fraud", forest, features)
    yard.registry.set_alias("fraud", "champion", 1)
    path = export_bundle(yard.registry, "fraud@champion", tmp_path / "out")
    assert path.name == "fraud-v1.modelyard.tar.gz"
    again = export_bundle(yard.registry, "fraud/1", tmp_path / "again")
    assert path.read_bytes() == again.read_bytes(), "exports are byte-for-byte reproducible"
    assert path.read_bytes()[4:8] == bytes(4), "the gzip header holds no export time"
    loaded = load_bundle(path)
    assert (loaded.name, loaded.version) == ("fraud", 1)
    np.testing.assert_allclose(
        loaded.predict(features)["probabilities"], forest.predict_proba(features), atol=1e-5
    )


def test_lightgbm_converts_to_onnx_and_agrees_with_its_native_format(
    yard: Yard, classification_data: Data
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, labels = classification_data
    model = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, random_state=0).fit(
        features, labels
    )
    onnx_version = yard.register_model("gbm", model, features)
    native_version = yard.register_model("gbm", model, features, flavour="lightgbm")
    assert (onnx_version.flavour, native_version.flavour) == ("onnx", "lightgbm")
    onnx_out = yard.load_model("gbm/1").predict(features)
    native_out = yard.load_model("gbm/2").predict(features)
    np.testing.assert_allclose(onnx_out["probabilities"], native_out["probabilities"], atol=1e-5)
    np.testing.assert_allclose(
        native_out["probabilities"], model.predict_proba(features), atol=1e-6
    )


def test_same_seed_and_data_give_byte_identical_artifacts(
    yard: Yard, classification_data: Data
) -> None:
    features, labels = classification_data
    digests = []
    for _ in range(2):
        with yard.start_run("train", seed=42):
            model = RandomForestClassifier(n_estimators=10, max_depth=5).fit(features, labels)
        digests.append(yard.register_model("seeded", model, features).artifact_digest)
    assert digests[0] == digests[1]


def test_a_new_process_loads_by_alias_and_predicts_like_the_original(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    features, _ = classification_data
    with yard.start_run("train", seed=3) as run:
        run.log_metric("auc", 0.9)
    yard.register_model("fraud", forest, features, run=run)
    yard.registry.set_alias("fraud", "champion", 1)
    script = (
        "import json, sys, numpy as np, modelyard\n"
        "rows = np.array(json.load(sys.stdin), dtype=np.float32)\n"
        "m = modelyard.load_model('fraud@champion')\n"
        "print(json.dumps(m.predict(rows)['probabilities'].tolist()))\n"
    )
    env = dict(os.environ, MODELYARD_HOME=str(yard.settings.home))
    if yard.settings.database_url:
        env["MODELYARD_DATABASE_URL"] = yard.settings.database_url
    child = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(features[:50].tolist()),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    np.testing.assert_allclose(
        json.loads(child.stdout), forest.predict_proba(features[:50]), atol=1e-5
    )


def test_artifact_digest_is_the_sha256_of_the_stored_bytes(
    yard: Yard, forest: RandomForestClassifier, classification_data: Data
) -> None:
    version = yard.register_model("fraud", forest, classification_data[0])
    data = yard.registry.artifact_bytes(version)
    assert hashlib.sha256(data).hexdigest() == version.artifact_digest


def test_loading_a_model_on_the_embedded_default_never_imports_sqlalchemy(
    sqlite_settings: Settings, forest: RandomForestClassifier, classification_data: Data
) -> None:
    with Yard(sqlite_settings) as yard:
        yard.register_model("fraud", forest, classification_data[0])
        yard.registry.set_alias("fraud", "champion", 1)
    script = (
        "import sys, numpy as np, modelyard\n"
        "m = modelyard.load_model('fraud@champion')\n"
        "m.predict(np.zeros((1, 8), np.float32))\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'sqlalchemy'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(sqlite_settings.home)
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert child.stdout.strip() == "[]"
