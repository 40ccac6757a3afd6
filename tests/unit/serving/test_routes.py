"""URL routing for the protocol's paths."""

from __future__ import annotations

import pytest

from modelyard.errors import MethodNotAllowedError, RouteNotFoundError
from modelyard.serving.http.routes import Endpoint, Router, match


@pytest.mark.parametrize(
    ("path", "endpoint", "model", "version"),
    [
        ("/v2", "server_metadata", None, None),
        ("/v2/health/live", "live", None, None),
        ("/v2/health/ready", "ready", None, None),
        ("/metrics", "metrics", None, None),
        ("/v2/models/fraud", "model_metadata", "fraud", None),
        ("/v2/models/fraud/ready", "model_ready", "fraud", None),
        ("/v2/models/fraud/infer", "infer", "fraud", None),
        ("/v2/models/fraud/versions/3", "model_metadata", "fraud", "3"),
        ("/v2/models/fraud/versions/3/ready", "model_ready", "fraud", "3"),
        ("/v2/models/fraud/versions/3/infer", "infer", "fraud", "3"),
        ("/v1/models/fraud:predict", "predict", "fraud", None),
        ("/v1/models/fraud/versions/2:predict", "predict", "fraud", "2"),
        ("/v1/models/fraud", "model_status", "fraud", None),
    ],
)
def test_routes(path: str, endpoint: str, model: str | None, version: str | None) -> None:
    route = match(path)
    assert route is not None
    assert (route.name, route.model, route.version) == (endpoint, model, version)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v2/",
        "/v2/models",
        "/v2/models/",
        "/v2/models/fraud/explain",
        "/v2/models/fraud/versions//infer",
        "/v2/models/fraud/infer/extra",
        "/v1/models/:predict",
        "/v3/models/fraud/infer",
    ],
)
def test_unknown_paths(path: str) -> None:
    assert match(path) is None


def test_router_errors() -> None:
    router = Router()
    assert isinstance(router.resolve("POST", "/v2/models/m/infer"), Endpoint)
    with pytest.raises(RouteNotFoundError, match="no endpoint at '/nope'"):
        router.resolve("GET", "/nope")
    with pytest.raises(MethodNotAllowedError, match="GET is not allowed") as caught:
        router.resolve("GET", "/v2/models/m/infer")
    assert caught.value.allowed == ("POST",)
