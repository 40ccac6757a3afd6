"""Writing the registry: registering immutable auto-numbered versions, moving aliases, tags.

``Registry`` writes through a ``RegistryRepository`` (``registry.sql`` on the
metadata database, ``registry.memory`` in tests) and asks tracking, through the
``RunDatasets`` port, which datasets a run recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from modelyard.errors import UnsupportedModelError, ValidationError
from modelyard.registry.catalog import Catalog
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Predictor
from modelyard.registry.imaging import ImageSpec
from modelyard.registry.profile import build_profile
from modelyard.registry.records import TRUST_KEY, AliasMove, ModelVersion, VersionDraft
from modelyard.registry.refs import check_alias, check_model_name
from modelyard.registry.repository import RegistryRepository, RunDatasets
from modelyard.registry.signature import Signature, example_columns, infer_signature
from modelyard.store.artifacts import ArtifactStore
from modelyard.tracking import DataFingerprint, fingerprint

# Rows used to profile the data and to check a conversion: enough for stable
# quantiles, small enough that registering a model on 10M rows stays quick.
_PROFILE_ROWS = 50_000
# A converted model must agree with the original this closely, or the next
# flavour (skops, native) is used instead.
CONVERSION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PreparedModel:
    """A model serialised and loaded back, not yet registered (``Registry.prepare``)."""

    flavour: str
    blob: bytes
    predictor: Predictor
    signature: Signature
    profile: dict[str, Any]
    sample: bytes
    data: DataFingerprint
    digest: str  # sha256 of ``blob``: the artifact digest it will be stored under


class Registry(Catalog):
    """The registry with write access: registering versions, moving aliases, tagging.

    ``runs`` tells which datasets a run recorded, for the lineage of a version
    registered with ``run=``; without it the lineage names only the data passed in.
    """

    def __init__(
        self,
        models: RegistryRepository,
        artifacts: ArtifactStore,
        *,
        runs: RunDatasets | None = None,
        user: str | None = None,
    ) -> None:
        super().__init__(models, artifacts)
        self._repository = models
        self._runs = runs
        self._user = user

    # -- registering ---------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        data: Any,
        *,
        feature_names: list[str] | None = None,
        run: Any = None,
        flavour: str | None = None,
        trusted: bool = False,
        trusted_reason: str = "",
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        parent_version: int | None = None,
        image: ImageSpec | None = None,
        lineage: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name``.

        ``data`` is (a sample of) the training features: the signature is inferred
        from it and the reference profile computed on it. The format is ONNX when
        the model converts and agrees with the original, else skops or LightGBM's
        own; pickle only with ``trusted=True`` (or ``flavour="pickle"`` and trusted).

        ``trusted=True`` also marks the version trusted, with the registering user and
        ``trusted_reason`` (``ModelVersion.trust``): a pickle-based version loads only if
        it was marked so, whatever the loader's own ``trusted``.

        ``image``: the model takes images, prepared as it says (``data`` holds their
        pixels, one column each). ``lineage``: entries added to the version's lineage
        (how it was made from its parent, say).
        """
        check_model_name(name)
        prepared = self.prepare(
            model, data, feature_names=feature_names, flavour=flavour, trusted=trusted
        )
        if image is not None:
            prepared = replace(prepared, signature=replace(prepared.signature, image=image))
        return self.register_prepared(
            name, prepared, run=run, metrics=metrics, tags=tags, description=description,
            parent_version=parent_version, trusted=trusted, trusted_reason=trusted_reason,
            lineage=lineage,
        )  # fmt: skip

    def prepare(
        self,
        model: Any,
        data: Any,
        *,
        feature_names: list[str] | None = None,
        flavour: str | None = None,
        trusted: bool = False,
    ) -> PreparedModel:
        """``model`` in the format it would be registered in, loaded back, with its
        signature and profile, but not registered: what a validation gate judges
        before ``register_prepared`` stores exactly these bytes."""
        columns = example_columns(data, feature_names)
        rows = len(next(iter(columns.values()))) if columns else 0
        if rows == 0:
            raise ValidationError("data must hold at least one row of training features")
        if rows > _PROFILE_ROWS:
            keep = np.sort(np.random.default_rng(0).choice(rows, _PROFILE_ROWS, replace=False))
            columns = {k: v[keep] for k, v in columns.items()}
        signature = infer_signature(columns)
        flavour_name, blob, predictor = self._serialize(model, signature, columns, flavour, trusted)
        outputs = predictor.predict(columns)
        signature = infer_signature(columns, outputs=outputs)
        profile, sample = build_profile(columns, outputs)
        return PreparedModel(
            flavour_name, blob, predictor, signature, profile, sample,
            fingerprint(data), hashlib.sha256(blob).hexdigest(),
        )  # fmt: skip

    def register_prepared(
        self,
        name: str,
        prepared: PreparedModel,
        *,
        run: Any = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        parent_version: int | None = None,
        trusted: bool = False,
        trusted_reason: str = "",
        lineage: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a ``prepare``d model as the next version of ``name``; ``trusted`` marks
        it trusted (see ``register``)."""
        check_model_name(name)
        profile = dict(prepared.profile)
        profile["sample_digest"] = self._artifacts.put_bytes(prepared.sample).digest
        profile_ref = self._artifacts.put_bytes(json.dumps(profile, sort_keys=True).encode())
        artifact = self._artifacts.put_bytes(prepared.blob)
        recorded: dict[str, Any] = {**(lineage or {}), "data": asdict(prepared.data)}
        run_id = getattr(run, "id", run)
        if run_id is not None and self._runs is not None:
            recorded["run_datasets"] = {
                dataset: {"digest": recorded.digest, "rows": recorded.rows}
                for dataset, recorded in self._runs.run_datasets(run_id).items()
            }
        created_at = time.time()
        if trusted:
            recorded[TRUST_KEY] = {"by": self._user, "at": created_at, "reason": trusted_reason}
        draft = VersionDraft(
            flavour=prepared.flavour,
            artifact_digest=artifact.digest,
            artifact_size=artifact.size,
            signature=prepared.signature,
            profile_digest=profile_ref.digest,
            metrics=metrics or {},
            lineage=recorded,
            run_id=run_id,
            parent_version=parent_version,
            description=description,
            created_at=created_at,
            created_by=self._user,
            tags={k: str(v) for k, v in (tags or {}).items()},
        )
        number = self._repository.add_version(name, draft)
        return self.get_version(name, number)

    def _serialize(
        self,
        model: Any,
        signature: Signature,
        columns: dict[str, np.ndarray],
        flavour: str | None,
        trusted: bool,
    ) -> tuple[str, bytes, Predictor]:
        if flavour is not None and flavour not in FLAVOURS:
            raise ValidationError(
                f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}"
            )
        candidates = [flavour] if flavour else [n for n in FLAVOURS if FLAVOURS[n].accepts(model)]
        problems = []
        for name in candidates:
            chosen = FLAVOURS[name]
            if chosen.pickle_based and not trusted:
                problems.append(f"{name}: refused without trusted=True (pickle runs code on load)")
                continue
            try:
                blob = chosen.serialize(model, signature, columns)
                # These bytes were made from the caller's own object just now, so the
                # check load may trust them; later loads face the usual rules.
                predictor = chosen.load(blob, signature, LoadOptions(trusted=True))
                if name == "onnx" and flavour is None:
                    _check_conversion(model, predictor, columns)
                return name, blob, predictor
            except UnsupportedModelError as error:
                problems.append(f"{name}: {error}")
        raise UnsupportedModelError(
            f"no format can store {type(model).__name__}: "
            + "; ".join(problems or ["no flavour accepts it"])
        )

    # -- aliases and tags ----------------------------------------------------------------

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> AliasMove:
        """Point ``alias`` at ``version`` atomically and record who moved it, when and why."""
        check_alias(alias)
        return self._move_alias(name, alias, version, actor, reason)

    def delete_alias(
        self, name: str, alias: str, *, actor: str | None = None, reason: str = ""
    ) -> AliasMove:
        check_alias(alias)
        return self._move_alias(name, alias, None, actor, reason)

    def _move_alias(
        self, name: str, alias: str, version: int | None, actor: str | None, reason: str
    ) -> AliasMove:
        return self._repository.move_alias(
            name, alias, version, actor or self._user, reason, time.time()
        )

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._repository.set_model_tag(name, key, str(value))

    def set_description(self, name: str, description: str) -> None:
        self._repository.set_description(name, description)


def _check_conversion(model: Any, predictor: Predictor, columns: dict[str, np.ndarray]) -> None:
    """Refuse an ONNX conversion that does not reproduce the original's predictions."""
    native = getattr(model, "predict_proba", None) or getattr(model, "predict", None)
    if native is None:
        return
    sample = {k: v[:1000] for k, v in columns.items()}
    converted = predictor.predict(sample)
    features: Any
    if predictor.signature.layout == "matrix":
        features = np.column_stack(list(sample.values()))
    else:
        import pandas as pd

        features = pd.DataFrame(sample)
    expected = np.asarray(native(features), dtype=np.float64)
    got = converted.get("probabilities", converted.get("prediction"))
    if got is None:
        return
    got = np.asarray(got, dtype=np.float64).reshape(expected.shape)
    scale = max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(got - expected).max()) / scale
    if diff > CONVERSION_TOLERANCE:
        raise UnsupportedModelError(
            f"the ONNX conversion differs from the original by {diff:.2e} "
            f"(tolerance {CONVERSION_TOLERANCE:g})"
        )
