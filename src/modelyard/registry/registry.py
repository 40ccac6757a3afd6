"""Writing the registry: registering immutable auto-numbered versions, moving aliases, tags."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, insert, select, update

from modelyard.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    UnsupportedModelError,
    ValidationError,
    VersionNotFoundError,
)
from modelyard.registry.catalog import AliasMove, Catalog, ModelVersion
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Predictor
from modelyard.registry.profile import build_profile
from modelyard.registry.refs import check_alias, check_model_name
from modelyard.registry.signature import Signature, example_columns, infer_signature
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.database import Database, upsert
from modelyard.store.reader import SqlReader, open_reader
from modelyard.store.schema import (
    alias_history,
    model_aliases,
    model_tags,
    model_version_tags,
    model_versions,
    registered_models,
    run_datasets,
)
from modelyard.tracking import fingerprint

# Rows used to profile the data and to check a conversion: enough for stable
# quantiles, small enough that registering a model on 10M rows stays quick.
_PROFILE_ROWS = 50_000
# A converted model must agree with the original this closely, or the next
# flavour (skops, native) is used instead.
CONVERSION_TOLERANCE = 1e-4


class Registry(Catalog):
    """The registry with write access: registering versions, moving aliases, tagging."""

    def __init__(
        self,
        db: Database,
        artifacts: ArtifactStore,
        *,
        user: str | None = None,
        reader: SqlReader | None = None,
    ) -> None:
        super().__init__(reader or open_reader(db.url, db.engine), artifacts)
        self._db = db
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
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        parent_version: int | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name``.

        ``data`` is (a sample of) the training features: the signature is inferred
        from it and the reference profile computed on it. The format is ONNX when
        the model converts and agrees with the original, else skops or LightGBM's
        own; pickle only with ``trusted=True`` (or ``flavour="pickle"`` and trusted).
        """
        check_model_name(name)
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
        profile["sample_digest"] = self._artifacts.put_bytes(sample).digest
        profile_ref = self._artifacts.put_bytes(json.dumps(profile, sort_keys=True).encode())
        artifact = self._artifacts.put_bytes(blob)
        lineage: dict[str, Any] = {"data": asdict(fingerprint(data))}
        run_id = getattr(run, "id", run)
        now = time.time()
        with self._db.write() as conn:
            if run_id is not None:
                lineage["run_datasets"] = {
                    r["name"]: {"digest": r["digest"], "rows": r["rows"]}
                    for r in conn.execute(
                        select(run_datasets).where(run_datasets.c.run_id == run_id)
                    ).mappings()
                }
            model_id = self._lock_or_create_model(conn, name, now)
            latest = conn.execute(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
            ).scalar()
            number = (latest or 0) + 1
            if parent_version is not None and parent_version >= number:
                raise VersionNotFoundError(
                    f"parent version {parent_version} of {name!r} does not exist"
                )
            version_id = conn.execute(
                insert(model_versions)
                .values(
                    model_id=model_id,
                    version=number,
                    flavour=flavour_name,
                    artifact_digest=artifact.digest,
                    artifact_size=artifact.size,
                    signature=json.dumps(signature.to_dict()),
                    profile_digest=profile_ref.digest,
                    metrics=json.dumps(metrics or {}),
                    lineage=json.dumps(lineage, default=str),
                    run_id=run_id,
                    parent_version=parent_version,
                    description=description,
                    created_at=now,
                    created_by=self._user,
                )
                .returning(model_versions.c.id)
            ).scalar_one()
            if tags:
                conn.execute(
                    insert(model_version_tags),
                    [
                        {"version_id": version_id, "key": k, "value": str(v)}
                        for k, v in tags.items()
                    ],
                )
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(updated_at=now)
            )
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

    def _lock_or_create_model(self, conn: Connection, name: str, now: float) -> int:
        # Insert-if-absent first: two writers registering a new name at once (PostgreSQL
        # has no table lock like SQLite's BEGIN IMMEDIATE) then both find the one row and
        # queue on its lock, instead of one failing on the unique name.
        conn.execute(
            upsert(conn, registered_models)
            .values(name=name, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        query = (
            select(registered_models.c.id).where(registered_models.c.name == name).with_for_update()
        )
        return int(conn.execute(query).scalar_one())

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
        now = time.time()
        actor = actor or self._user
        with self._db.write() as conn:
            model_id = conn.execute(
                select(registered_models.c.id)
                .where(registered_models.c.name == name)
                .with_for_update()
            ).scalar()
            if model_id is None:
                raise ModelNotFoundError(f"no registered model named {name!r}")
            if (
                version is not None
                and conn.execute(
                    select(model_versions.c.id).where(
                        model_versions.c.model_id == model_id, model_versions.c.version == version
                    )
                ).scalar()
                is None
            ):
                raise VersionNotFoundError(f"model {name!r} has no version {version}")
            where = (model_aliases.c.model_id == model_id) & (model_aliases.c.alias == alias)
            previous = conn.execute(select(model_aliases.c.version).where(where)).scalar()
            if version is None and previous is None:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            if previous is not None:
                conn.execute(model_aliases.delete().where(where))
            if version is not None:
                conn.execute(
                    insert(model_aliases).values(
                        model_id=model_id, alias=alias, version=version, updated_at=now
                    )
                )
            conn.execute(
                insert(alias_history).values(
                    model_id=model_id,
                    alias=alias,
                    from_version=previous,
                    to_version=version,
                    actor=actor,
                    reason=reason,
                    at=now,
                )
            )
        return AliasMove(alias, previous, version, actor, reason, now)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with self._db.write() as conn:
            model_id = conn.execute(
                select(registered_models.c.id).where(registered_models.c.name == name)
            ).scalar()
            if model_id is None:
                raise ModelNotFoundError(f"no registered model named {name!r}")
            conn.execute(
                model_tags.delete().where(
                    (model_tags.c.model_id == model_id) & (model_tags.c.key == key)
                )
            )
            conn.execute(insert(model_tags).values(model_id=model_id, key=key, value=str(value)))

    def set_description(self, name: str, description: str) -> None:
        with self._db.write() as conn:
            updated = conn.execute(
                update(registered_models)
                .where(registered_models.c.name == name)
                .values(description=description)
            ).rowcount
        if not updated:
            raise ModelNotFoundError(f"no registered model named {name!r}")


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
