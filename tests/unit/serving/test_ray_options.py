"""The Ray backend's deployment options, from the settings (no cluster started)."""

from __future__ import annotations

import pytest

from modelyard.config import ServingSettings, Settings
from modelyard.errors import ConfigurationError
from modelyard.routing import Target
from modelyard.serving.process.launch import choose_backend

ray_backend = pytest.importorskip(
    "modelyard.serving.process.ray_backend",
    reason="the ray backend needs Ray Serve: pip install 'modelyard[ray]'",
    exc_type=ConfigurationError,
)


def test_fixed_replicas_are_the_workers() -> None:
    options = ray_backend.deployment_options(Settings(serving=ServingSettings(workers=3)))
    assert options["num_replicas"] == 3
    assert "autoscaling_config" not in options
    # Ray Serve's default of 5 collapsed at 32 connections (BENCHMARKING.md)
    assert options["max_ongoing_requests"] == 256


def test_autoscaling_runs_from_workers_to_the_most_replicas() -> None:
    serving = ServingSettings(workers=2, ray_max_replicas=6, ray_max_ongoing_requests=64)
    options = ray_backend.deployment_options(Settings(serving=serving))
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 2,
        "max_replicas": 6,
        "target_ongoing_requests": 32,
    }


def test_fewer_most_replicas_than_workers_is_refused_naming_the_setting() -> None:
    serving = ServingSettings(workers=4, ray_max_replicas=2)
    with pytest.raises(ConfigurationError, match=r"'serving.ray_max_replicas' must be at least"):
        ray_backend.deployment_options(Settings(serving=serving))


def test_deployments_that_target_ray_size_the_ray_deployment() -> None:
    targets = [Target("ray", 2, 6), Target("ray", 3, None)]
    options = ray_backend.deployment_options(Settings(), targets)
    assert "num_replicas" not in options
    assert options["autoscaling_config"]["min_replicas"] == 3
    assert options["autoscaling_config"]["max_replicas"] == 6
    fixed = ray_backend.deployment_options(Settings(), [Target("ray", 4)])
    assert fixed["num_replicas"] == 4


def test_a_server_of_deployments_that_all_target_ray_runs_on_ray() -> None:
    serving = ServingSettings()
    assert choose_backend(serving, [Target("ray"), Target("ray", 2)]) == "ray"
    assert choose_backend(serving, [Target("ray"), Target()]) == "builtin"
    assert choose_backend(serving, []) == "builtin"
    assert choose_backend(ServingSettings(backend="ray"), [Target()]) == "ray"
