"""``Optimizer``: train the image model, prune and quantize a registered version, gate
each candidate against its parent, register the ones that pass, compare versions.

Each candidate is measured on this CPU and evaluated on the held-out images of the
parent's dataset (named in its lineage, so the split is the one training used), or of
the user's own images (``data``: ``optimize.datasets``), which also feed fine-tuning
and calibration. A
candidate that passes ``gate.judge`` becomes the next version with its parent and
method in its lineage; one that fails is an ``optimize.rejected`` event about the model,
holding both models' figures and every check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from modelyard.errors import ValidationError
from modelyard.optimize.cnn import (
    CnnConfig,
    DigitNet,
    digits_dataset,
    export_onnx,
    fit,
    from_npz,
    weights_npz,
)
from modelyard.optimize.datasets import class_indices, load_images
from modelyard.optimize.gate import Figures, OptimizePolicy, Verdict, judge
from modelyard.optimize.measure import (
    Timing,
    accuracy_by_class,
    measure_onnx,
    onnx_probabilities,
    onnx_session,
)
from modelyard.optimize.quantize import RECIPES, QuantizeRecipe, with_fallback
from modelyard.registry import ModelVersion
from modelyard.registry.registry import Registry
from modelyard.routing.deployment import Event
from modelyard.routing.repository import EventLog
from modelyard.store.artifacts import ArtifactStore

__all__ = ["Candidate", "HeldOut", "Optimizer", "Outcome"]

LINEAGE_KEY = "vision"
DIGITS = "digits"
CALIBRATION_IMAGES = 256


@dataclass(frozen=True)
class HeldOut:
    """The images a model is judged on, the training images (for fine-tuning and
    calibration), the class names, and where they came from (``digits`` or a path)."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str = "digits"


@dataclass(frozen=True)
class Candidate:
    """One optimised model, its figures and the gate's verdict on it."""

    method: str
    model: bytes
    figures: Figures
    verdict: Verdict
    detail: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one ``prune`` or ``quantize`` did: the parent's figures, every candidate,
    and the version registered (None: every candidate was refused)."""

    parent: ModelVersion
    parent_figures: Figures
    candidates: tuple[Candidate, ...]
    registered: ModelVersion | None


def split(
    pixels: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], seed: int, source: str
) -> HeldOut:
    """75% of the images to train (and calibrate), 25% held out, shuffled by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(pixels))
    cut = int(len(order) * 0.75)
    train, test = order[:cut], order[cut:]
    return HeldOut(pixels[train], labels[train], pixels[test], labels[test], classes, source)


def digits_split(config: CnnConfig, seed: int) -> HeldOut:
    """scikit-learn's digits at ``config.size``, 75% to train and 25% held out."""
    pixels, labels = digits_dataset(config.size)
    return split(pixels, labels, tuple(str(i) for i in range(config.classes)), seed, DIGITS)


class Optimizer:
    """Optimisation over one registry. ``events``: where refusals (and registrations)
    are recorded, about the model's name; ``clock``: seconds, for the events."""

    def __init__(
        self,
        registry: Registry,
        artifacts: ArtifactStore,
        events: EventLog,
        *,
        policy: OptimizePolicy | None = None,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
        actor: str | None = None,
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.events = events
        self.policy = policy or OptimizePolicy()
        self.timing = timing or Timing()
        self.clock = clock
        self.actor = actor
        self._data: dict[tuple[int, int, str, tuple[str, ...] | None], HeldOut] = {}

    # -- the image model -------------------------------------------------------------

    def train_digits(
        self, name: str, config: CnnConfig | None = None, data: Path | None = None
    ) -> ModelVersion:
        """Train the CNN on the digits (or on the images at ``data``, whose classes become
        the model's labels) and register it as ONNX (the next version)."""
        config = config or CnnConfig()
        images = self.held_out(config, config.seed, data)
        config = replace(config, classes=len(images.classes))
        torch.manual_seed(config.seed)
        net = fit(
            DigitNet(config), images.train_pixels, images.train_labels, config.epochs, config.seed
        )
        return self._register(name, net, config, images, parent=None, method="trained", extra={})

    def held_out(
        self,
        config: CnnConfig,
        seed: int,
        data: Path | None = None,
        classes: tuple[str, ...] | None = None,
    ) -> HeldOut:
        """The digits split for ``config``'s image size, or that of the images at
        ``data`` labelled with ``classes`` (None: their own); computed once each."""
        source = DIGITS if data is None else str(data.resolve())
        key = (config.size, seed, source, None if data is None else classes)
        if key not in self._data:
            if data is None:
                self._data[key] = digits_split(config, seed)
            else:
                pixels, given = load_images(data, config.spec)
                labels, named = class_indices(given, classes)
                self._data[key] = split(pixels, labels, named, seed, source)
        return self._data[key]

    def _register(
        self,
        name: str,
        net: DigitNet | bytes,
        config: CnnConfig,
        data: HeldOut,
        *,
        parent: ModelVersion | None,
        method: str,
        extra: dict[str, Any],
        figures: Figures | None = None,
    ) -> ModelVersion:
        if isinstance(net, DigitNet):
            model, weights = export_onnx(net), self.artifacts.put_bytes(weights_npz(net)).digest
        else:
            model, weights = net, None
        lineage: dict[str, Any] = {
            LINEAGE_KEY: {
                # the digits, or the path of the images it was trained on
                "dataset": data.source,
                "config": config.to_dict(),
                "weights": weights,
                "method": method,
                "parent": None if parent is None else f"{parent.model}/{parent.version}",
                **extra,
            }
        }
        figures = figures or measure_onnx(
            model, data.pixels, data.labels, data.classes, self.timing
        )
        return self.registry.register(
            name,
            onnx.load_from_string(model),
            data.train_pixels[:512],
            feature_names=[f"p{i}" for i in range(data.pixels.shape[1])],
            parent_version=None if parent is None else parent.version,
            image=replace(config.spec, labels=data.classes),
            lineage=lineage,
            metrics=_metrics(figures),
            tags={"optimize.method": method},
            description=f"{method} from {parent.model}/{parent.version}" if parent else "",
        )

    def _parent(
        self, ref: str, data: Path | None
    ) -> tuple[ModelVersion, CnnConfig, dict[str, Any], HeldOut]:
        """The version ``ref``, its network's config, its lineage entry, and the images it
        is judged on: ``data`` if given, else the digits it was trained on."""
        name, number = self.registry.resolve(ref)
        version = self.registry.get_version(name, number)
        made = version.lineage.get(LINEAGE_KEY)
        if not isinstance(made, dict) or "config" not in made:
            raise ValidationError(
                f"{name}/{number} was not trained by modelyard's image pipeline (its lineage "
                f"has no {LINEAGE_KEY!r} entry), so its held-out images are unknown"
            )
        config = CnnConfig(**made["config"])
        if data is None and made.get("dataset") != DIGITS:
            raise ValidationError(
                f"{name}/{number} was trained on {made.get('dataset')}; pass those images "
                "(or others of its classes) with --data"
            )
        spec = version.signature.image
        classes = None if spec is None or not spec.labels else spec.labels
        return version, config, made, self.held_out(config, config.seed, data, classes)

    def figures(self, ref: str, data: Path | None = None) -> tuple[ModelVersion, Figures]:
        """Measure a registered image model now, on this CPU (on ``data``'s held-out part)."""
        version, _, made, images = self._parent(ref, data)
        return version, measure_onnx(
            self.registry.artifact_bytes(version), images.pixels, images.labels, images.classes,
            self.timing, sparsity=float(made.get("sparsity", 0.0)),
        )  # fmt: skip

    # -- quantization ----------------------------------------------------------------

    def quantize(
        self,
        ref: str,
        recipes: Sequence[QuantizeRecipe] = RECIPES,
        *,
        register: bool = True,
        data: Path | None = None,
    ) -> Outcome:
        """Every recipe on ``ref`` (each with its measured float fallback); the best that
        passes the gate is registered (``_best``: faster than the parent if any is, then
        small, then quick). ``data``: the user's images, calibrating and judging."""
        parent, config, made, images = self._parent(ref, data)
        if str(made.get("method", "")).startswith("int8"):
            raise ValidationError(
                f"{parent.model}/{parent.version} is already int8 ({made['method']}); quantize "
                f"the float version it came from, {made.get('parent')}"
            )
        model = self.registry.artifact_bytes(parent)
        sparsity = float(made.get("sparsity", 0.0))
        parent_figures = measure_onnx(
            model, images.pixels, images.labels, images.classes, self.timing, sparsity=sparsity
        )
        target = parent_figures.accuracy - self.policy.max_drop_points / 100

        def accuracy_of(candidate: bytes) -> float:
            predicted = onnx_probabilities(onnx_session(candidate), images.pixels).argmax(axis=1)
            return accuracy_by_class(images.labels, predicted, images.classes)[0]

        candidates = []
        for recipe in recipes:
            final, quantized, _ = with_fallback(
                model, recipe, images.train_pixels[:CALIBRATION_IMAGES], accuracy_of, target
            )
            candidates.append(
                self._candidate(
                    final.method, quantized, parent_figures, images,
                    {"keep_float": list(final.keep_float), "sparsity": sparsity},
                    parameters=parent_figures.parameters,
                )
            )  # fmt: skip
        return self._decide(parent, config, images, parent_figures, candidates, register)

    # -- pruning ---------------------------------------------------------------------

    def prune(
        self,
        ref: str,
        fraction: float = 0.5,
        epochs: int = 3,
        *,
        register: bool = True,
        data: Path | None = None,
    ) -> Outcome:
        """Remove ``fraction`` of each convolution's channels (lowest L1 norm of their
        filters first), cut the layers that read them to match, fine-tune ``epochs``
        (on ``data``'s training part, if given)."""
        if not 0 < fraction < 1:
            raise ValidationError(f"prune fraction must be in (0, 1), got {fraction!r}")
        parent, config, made, images = self._parent(ref, data)
        if not made.get("weights"):
            raise ValidationError(
                f"{parent.model}/{parent.version} has no stored torch weights (a quantized "
                "version?); prune the float version it came from"
            )
        net = from_npz(config, self.artifacts.get_bytes(made["weights"]))
        before = net.parameter_count()
        parent_figures = measure_onnx(
            self.registry.artifact_bytes(parent), images.pixels, images.labels, images.classes,
            self.timing, parameters=before,
        )  # fmt: skip
        keep1 = _strongest(net.conv1.weight, fraction)
        keep2 = _strongest(net.conv2.weight, fraction)
        pruned = fit(net.narrowed(keep1, keep2), images.train_pixels, images.train_labels,
                     epochs, config.seed)  # fmt: skip
        sparsity = 1 - pruned.parameter_count() / before
        candidate = self._candidate(
            f"pruned-{fraction:g}", export_onnx(pruned), parent_figures, images,
            {"sparsity": sparsity, "channels": [len(keep1), len(keep2)]},
            parameters=pruned.parameter_count(), net=pruned,
        )  # fmt: skip
        return self._decide(parent, config, images, parent_figures, [candidate], register)

    def consider(
        self,
        ref: str,
        model: bytes,
        method: str,
        *,
        register: bool = True,
        data: Path | None = None,
    ) -> Outcome:
        """Gate an ONNX candidate built elsewhere (a hand-tuned or external optimisation)
        against ``ref`` like the ones this class builds."""
        parent, config, _, images = self._parent(ref, data)
        parent_figures = measure_onnx(
            self.registry.artifact_bytes(parent), images.pixels, images.labels, images.classes,
            self.timing,
        )  # fmt: skip
        candidate = self._candidate(
            method, model, parent_figures, images, {}, parameters=parent_figures.parameters
        )
        return self._decide(parent, config, images, parent_figures, [candidate], register)

    # -- shared ----------------------------------------------------------------------

    def _candidate(
        self,
        method: str,
        model: bytes,
        parent_figures: Figures,
        data: HeldOut,
        detail: dict[str, Any],
        *,
        parameters: int,
        net: DigitNet | None = None,
    ) -> Candidate:
        figures = measure_onnx(
            model, data.pixels, data.labels, data.classes, self.timing,
            parameters=parameters, sparsity=float(detail.get("sparsity", 0.0)),
        )  # fmt: skip
        if net is not None:
            detail = {**detail, "net": net}
        return Candidate(
            method, model, figures, judge(parent_figures, figures, self.policy), detail
        )

    def _decide(
        self,
        parent: ModelVersion,
        config: CnnConfig,
        images: HeldOut,
        parent_figures: Figures,
        candidates: list[Candidate],
        register: bool,
    ) -> Outcome:
        passed = [c for c in candidates if c.verdict.passed]
        for candidate in candidates:
            if not candidate.verdict.passed:
                self._event("optimize.rejected", parent, candidate, parent_figures)
        registered = None
        if passed and register:
            best = _best(passed, parent_figures)
            detail = {k: v for k, v in best.detail.items() if k != "net"}
            net = best.detail.get("net")
            registered = self._register(
                parent.model, net if net is not None else best.model, config, images,
                parent=parent, method=best.method, extra=detail, figures=best.figures,
            )  # fmt: skip
            self._event("optimize.registered", parent, best, parent_figures, registered)
        return Outcome(parent, parent_figures, tuple(candidates), registered)

    def _event(
        self,
        kind: str,
        parent: ModelVersion,
        candidate: Candidate,
        parent_figures: Figures,
        registered: ModelVersion | None = None,
    ) -> None:
        reason = (
            f"{candidate.method} of {parent.model}/{parent.version}: {candidate.verdict.reason}"
        )
        if registered is not None:
            reason = (
                f"{candidate.method} of {parent.model}/{parent.version} registered as "
                f"version {registered.version}"
            )
        self.events.record(
            Event(
                at=self.clock(),
                kind=kind,
                subject=parent.model,
                reason=reason,
                payload={
                    "parent": parent.version,
                    "method": candidate.method,
                    "version": None if registered is None else registered.version,
                    "parent_figures": parent_figures.to_dict(),
                    "figures": candidate.figures.to_dict(),
                    "verdict": candidate.verdict.to_dict(),
                },
                actor=self.actor,
            )
        )


def _best(passed: list[Candidate], parent: Figures) -> Candidate:
    """The candidate to register: among those faster than the parent (all, if none is),
    the quickest of those within 10% of the smallest file."""
    pool = [c for c in passed if c.figures.p50_ms_1 < parent.p50_ms_1] or passed
    smallest = min(c.figures.size_bytes for c in pool)
    near = [c for c in pool if c.figures.size_bytes <= smallest * 1.1]
    return min(near, key=lambda c: c.figures.p50_ms_1)


def _strongest(weight: torch.Tensor, fraction: float) -> np.ndarray:
    """Indices (ascending) of the output channels to keep: the largest L1 norms."""
    norms = weight.detach().abs().sum(dim=(1, 2, 3)).numpy()
    keep = max(1, round(len(norms) * (1 - fraction)))
    return np.sort(np.argsort(-norms, kind="stable")[:keep])


def _metrics(figures: Figures) -> dict[str, float]:
    _, worst = figures.worst_class
    return {
        "accuracy": figures.accuracy,
        "worst_class_accuracy": worst,
        "size_bytes": float(figures.size_bytes),
        "parameters": float(figures.parameters),
        "p50_ms_batch1": figures.p50_ms_1,
        "sparsity": figures.sparsity,
    }
