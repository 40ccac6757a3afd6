"""The rendered ServingRuntime and InferenceService, in every rollout state and both KServe
modes, built into KServe's own API models (installed from PyPI by this test, see
``kserve_models``): every field is one KServe has, of its type, with its required fields."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.platforms.kserve_models import (
    KSERVE,
    Offline,
    as_kserve_model,
    install_kserve,
    kserve_models,
)
from tests.unit.platforms.conftest import deployment
from tests.unit.platforms.test_kserve import MODES, OPTIONS, STATES

from modelyard.platforms import render_kserve

MODELS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
}


@pytest.fixture(scope="module")
def models(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.ModuleType]:
    cache = getattr(request.config, "cache", None)
    name = KSERVE.replace("==", "-")
    folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    try:
        install_kserve(Path(folder))
    except Offline as offline:
        pytest.skip(str(offline))
    with kserve_models(Path(folder)) as found:
        yield found


def check(document: dict[str, Any], models: types.ModuleType) -> Any:
    return as_kserve_model(document, MODELS[(document["apiVersion"], document["kind"])], models)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", list(STATES))
def test_rendered_objects_are_valid_kserve_objects(
    models: types.ModuleType, mode: str, state: str
) -> None:
    _, runtime, service = render_kserve(STATES[state], OPTIONS, mode)  # type: ignore[arg-type]
    made = check(service, models)
    assert made.spec.predictor.model.protocol_version == "v2"
    if mode == "standard" and STATES[state].config.canary is not None:
        assert made.spec.canary[0].traffic_percent == service["spec"]["canary"][0]["trafficPercent"]
    assert check(runtime, models).spec.protocol_versions == ["v2"]


def test_a_field_kserve_does_not_have_is_refused_by_its_path(models: types.ModuleType) -> None:
    _, _, service = render_kserve(deployment(2, canary=2, canary_weight=5), OPTIONS, "standard")
    service["spec"]["canary"][0]["trafficPercentage"] = 5
    with pytest.raises(
        AssertionError, match=r"\$\.spec\.canary\[0\]: .* no field trafficPercentage"
    ):
        check(service, models)


def test_a_value_of_the_wrong_type_is_refused(models: types.ModuleType) -> None:
    _, _, service = render_kserve(deployment(2, canary=2, canary_weight=5), OPTIONS, "standard")
    service["spec"]["canary"][0]["trafficPercent"] = "5"
    with pytest.raises(AssertionError, match=r"\$\.spec\.canary\[0\]\.trafficPercent: a int"):
        check(service, models)
    _, _, service = render_kserve(deployment(), OPTIONS, "standard")
    service["spec"]["predictor"]["model"]["env"][0]["valu"] = "1"
    with pytest.raises(AssertionError, match=r"\$\.spec\.predictor\.model\.env\[0\]: V1EnvVar"):
        check(service, models)
