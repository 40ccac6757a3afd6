"""Model formats. Each flavour stores a kind of model and loads it back as a ``Predictor``."""

from modelyard.registry.flavours.base import (
    EstimatorPredictor,
    Flavour,
    LoadOptions,
    Outputs,
    Predictor,
    PredictorBase,
    TypedInputs,
)
from modelyard.registry.flavours.lightgbm import LightGBMFlavour
from modelyard.registry.flavours.onnx import OnnxFlavour, OnnxPredictor
from modelyard.registry.flavours.pickle import PickleFlavour
from modelyard.registry.flavours.recommender import RecommenderFlavour, RecommenderModel
from modelyard.registry.flavours.skops import SkopsFlavour

FLAVOURS: dict[str, Flavour] = {
    flavour.name: flavour
    for flavour in (
        OnnxFlavour(),
        SkopsFlavour(),
        LightGBMFlavour(),
        RecommenderFlavour(),
        PickleFlavour(),
    )
}
"""Every known flavour by name, in the order registration tries them."""

__all__ = [
    "FLAVOURS",
    "EstimatorPredictor",
    "Flavour",
    "LightGBMFlavour",
    "LoadOptions",
    "OnnxFlavour",
    "OnnxPredictor",
    "Outputs",
    "PickleFlavour",
    "Predictor",
    "PredictorBase",
    "RecommenderFlavour",
    "RecommenderModel",
    "TypedInputs",
    "SkopsFlavour",
]
