"""The Kubernetes API sink, against a stand-in for an API server.

No Kubernetes API server can run on this machine (no cluster, no container runtime, and
none can be started), so the test serves the three endpoints the sink uses from a tiny
HTTP server on a free loopback port, which records every request as the API server
would receive it: method, path, query, content type and body. What is checked is the
sink's side of the contract, the one the real API server documents for server-side apply
(``PATCH`` with ``application/apply-patch+yaml``, ``fieldManager``, ``force``), and
that a refusal becomes a ``PlatformError`` naming the object and the server's answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s

from modelyard.errors import PlatformError
from modelyard.platforms import ClusterOptions, render_kserve
from modelyard.platforms.kubernetes_api import KubernetesApiSink
from modelyard.routing import Deployment, DeploymentConfig

ROUTES = (
    "/api/v1/namespaces/ml/configmaps/",
    "/apis/serving.kserve.io/v1alpha1/namespaces/ml/servingruntimes/",
    "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/",
)


class FakeApiServer(ThreadingHTTPServer):
    """Answers a server-side apply on ROUTES with the object; ``refuse`` makes it answer
    403 as an API server does to a service account without the right role."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[dict[str, Any]] = []
        self.refuse = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def do_PATCH(self) -> None:
        parts = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(
            {
                "path": parts.path,
                "query": parse_qs(parts.query),
                "content_type": self.headers["Content-Type"],
                "body": body,
            }
        )
        if self.server.refuse:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": 'inferenceservices "fraud-api" is forbidden',
                "reason": "Forbidden",
                "code": 403,
            }
            self._answer(403, status)
        elif any(parts.path.startswith(route) for route in ROUTES):
            self._answer(200, body)
        else:
            self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def sink_for(server: FakeApiServer) -> KubernetesApiSink:
    configuration = k8s.Configuration(host=server.url)
    configuration.retries = 0  # a refusal is reported, not retried inside the client
    return KubernetesApiSink(k8s.ApiClient(configuration), timeout_s=5)


def documents(canary_weight: float) -> list[dict[str, Any]]:
    config = DeploymentConfig("fraud", 1, canary=2, canary_weight=canary_weight)
    deployment = Deployment("fraud-api", config, None, 7, 0.0, 0.0)
    options = ClusterOptions(image="registry.example.com/modelyard:1", namespace="ml")
    return render_kserve(deployment, options)


def test_each_object_is_sent_as_a_server_side_apply(api_server: FakeApiServer) -> None:
    sink = sink_for(api_server)
    sent = documents(25)
    sink.push("fraud-api", sent)
    assert [r["path"] for r in api_server.received] == [
        "/api/v1/namespaces/ml/configmaps/fraud-api-config",
        "/apis/serving.kserve.io/v1alpha1/namespaces/ml/servingruntimes/fraud-api-modelyard",
        "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/fraud-api",
    ]
    for request, document in zip(api_server.received, sent, strict=True):
        assert request["content_type"] == "application/apply-patch+yaml"
        assert request["query"] == {"fieldManager": ["modelyard"], "force": ["true"]}
        assert request["body"] == document
    service = api_server.received[-1]["body"]
    assert service["spec"]["canary"][0]["trafficPercent"] == 25
    assert sink.where == f"kubernetes {api_server.url}"


def test_a_refusal_is_a_platform_error_naming_the_object(api_server: FakeApiServer) -> None:
    api_server.refuse = True
    with pytest.raises(
        PlatformError, match=r"refused ConfigMap ml/fraud-api-config: 403 .*forbidden"
    ):
        sink_for(api_server).push("fraud-api", documents(5))


def test_an_api_server_that_is_gone_is_a_platform_error(api_server: FakeApiServer) -> None:
    sink = sink_for(api_server)
    api_server.shutdown()
    api_server.server_close()
    with pytest.raises(PlatformError, match=r"did not answer for ConfigMap ml/fraud-api-config"):
        sink.push("fraud-api", documents(5))
