"""Recommenders: the interaction log, training (implicit MF, popularity), offline and live
metrics, the simulator, off-policy estimates and A/B judgement (docs/recommender.md)."""

from modelyard.recommend.bandit import thompson_weights
from modelyard.recommend.experiment import (
    AbReport,
    Srm,
    cuped,
    judge_ctr,
    judge_lists,
    judge_per_user,
    sample_ratio,
)
from modelyard.recommend.feedback import ArmFigures, Click, Joined, Served, arm_figures, join_clicks
from modelyard.recommend.interactions import InteractionLog, Matrix
from modelyard.recommend.logged import clicked_items, clicks_as_interactions, logged_lists
from modelyard.recommend.metrics import OfflineQuality, coverage, evaluate, ndcg_at_k, recall_at_k
from modelyard.recommend.offpolicy import OffPolicyEstimate, estimate
from modelyard.recommend.simulator import World
from modelyard.recommend.training import example_requests, train_mf, train_popularity
from modelyard.registry.flavours.recommender import Recommendation, RecommenderModel

__all__ = [
    "AbReport",
    "ArmFigures",
    "Click",
    "InteractionLog",
    "Joined",
    "Matrix",
    "OffPolicyEstimate",
    "OfflineQuality",
    "Recommendation",
    "RecommenderModel",
    "Served",
    "Srm",
    "World",
    "arm_figures",
    "clicked_items",
    "clicks_as_interactions",
    "coverage",
    "cuped",
    "estimate",
    "evaluate",
    "example_requests",
    "join_clicks",
    "judge_ctr",
    "judge_lists",
    "judge_per_user",
    "logged_lists",
    "ndcg_at_k",
    "recall_at_k",
    "sample_ratio",
    "thompson_weights",
    "train_mf",
    "train_popularity",
]
