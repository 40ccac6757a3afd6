"""A registry with model ``fraud``: versions 1 and 2 take eight features, version 3 takes six."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard


@pytest.fixture
def fraud(
    yard: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> Yard:
    features, labels = classification_data
    yard.register_model("fraud", forest, features)
    yard.register_model("fraud", LogisticRegression().fit(features, labels), features)
    narrow = features[:, :6]
    yard.register_model("fraud", LogisticRegression().fit(narrow, labels), narrow)
    return yard


@pytest.fixture
def store(fraud: Yard) -> DeploymentStore:
    return DeploymentStore(SqlDeploymentRepository(fraud.db), fraud.registry)
