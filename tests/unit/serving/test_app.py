"""The ASGI app in-process (no sockets): protocol plumbing, limits, auth, hooks, swaps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.config import Settings, load_settings
from modelyard.errors import OverloadedError
from modelyard.serving.http.app import ServingApp
from modelyard.serving.telemetry.metrics import MONITORING_TEXT

FIELDS = ["amount", "age", "tenure", "score"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, stores_for: Any) -> Path:
    path = tmp_path_factory.mktemp("serving-home")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    with stores_for(path) as yard:
        for _ in range(2):
            model = LogisticRegression().fit(features, labels)
            version = yard.registry.register("fraud", model, features, feature_names=FIELDS)
        yard.registry.set_alias("fraud", "champion", version.version - 1)
    return path


def settings_for(home: Path, **serving: Any) -> Settings:
    return load_settings(
        home=home, environ={}, serving={"log_path": home / "test.jsonl", **serving}
    )


class Client:
    """Calls the app as uvicorn would, on one event loop kept for the test."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self.runner = asyncio.Runner()

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        chunks: list[bytes] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        payload = orjson.dumps(body) if isinstance(body, dict) else (body or b"")
        sent: list[dict[str, Any]] = []
        parts = chunks if chunks is not None else [payload]
        pending = [
            {"type": "http.request", "body": c, "more_body": i < len(parts) - 1}
            for i, c in enumerate(parts)
        ]
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if isinstance(body, dict) and "content-type" not in (headers or {}):
            raw_headers.append((b"content-type", b"application/json"))

        async def receive() -> dict[str, Any]:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": raw_headers}
        self.run(self.app(scope, receive, send))
        start, body_message = sent
        response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
        content = body_message["body"]
        parsed = (
            orjson.loads(content)
            if response_headers["content-type"] == "application/json"
            else content
        )
        return start["status"], response_headers, parsed


@pytest.fixture
def client(home: Path, make_app: Any, recorded: Any, stores_for: Any) -> Iterator[Client]:
    with stores_for(home) as yard:
        app = make_app(settings_for(home), yard, ["fraud@champion"], inference_log=recorded)
        client = Client(app)
        client.run(app.startup())
        yield client
        client.run(app.shutdown())
        client.runner.close()


def infer_body(rows: int = 1) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [rows, 4],
                "data": [[0.5, -1.0, 0.25, 2.0]] * rows,
            }
        ]
    }


def test_ready_after_startup(client: Client) -> None:
    assert client.request("GET", "/v2/health/ready")[::2] == (200, {"ready": True})
    assert client.request("GET", "/v2/health/live")[::2] == (200, {"live": True})


def test_infer_answers_with_request_id_and_version(client: Client) -> None:
    status, headers, body = client.request(
        "POST", "/v2/models/fraud/infer", infer_body(2), headers={"x-request-id": "trace-1"}
    )
    assert status == 200
    assert headers["x-request-id"] == "trace-1"
    assert headers["x-model-version"] == "1"
    assert body["id"] == "trace-1"
    assert body["model_version"] == "1"
    assert [o["shape"] for o in body["outputs"]] == [[2], [2, 2]]


def test_records_route(client: Client) -> None:
    record = dict(zip(FIELDS, [0.5, -1.0, 0.25, 2.0], strict=True))
    status, _, body = client.request("POST", "/v1/models/fraud:predict", {"instances": [record]})
    assert status == 200
    assert set(body["predictions"][0]) == {"label", "probabilities"}


def test_only_json_is_accepted(client: Client) -> None:
    status, _, body = client.request(
        "POST",
        "/v2/models/fraud/infer",
        b"\x80\x04pickle",
        headers={"content-type": "application/octet-stream"},
    )
    assert status == 415
    assert body["code"] == "unsupported_media_type"


def test_body_limit_is_enforced_while_reading(home: Path, make_app: Any, stores_for: Any) -> None:
    with stores_for(home) as yard:
        app = make_app(settings_for(home, max_body_bytes=2048), yard, ["fraud@champion"])
        client = Client(app)
        client.run(app.startup())
        status, _, body = client.request(
            "POST",
            "/v2/models/fraud/infer",
            chunks=[b"[" * 1500] * 3,
            headers={"content-type": "application/json"},
        )
        assert status == 413
        assert "limit of 2048" in body["error"]
        status, _, _ = client.request(
            "POST",
            "/v2/models/fraud/infer",
            b"{}",
            headers={"content-length": "99999", "content-type": "application/json"},
        )
        assert status == 413
        client.run(app.shutdown())
        client.runner.close()


def test_bad_input_is_4xx_naming_the_field(client: Client) -> None:
    body = infer_body()
    body["inputs"][0]["data"] = [[0.5, "x", 0.25, 2.0]]
    status, _, answer = client.request("POST", "/v2/models/fraud/infer", body)
    assert status == 422
    assert answer["error"] == "field 'age' must be a number, got 'x' (row 0)"
    json = {"content-type": "application/json"}
    assert client.request("POST", "/v2/models/fraud/infer", b"{", json)[0] == 400


def test_unknown_model_route_and_method(client: Client) -> None:
    assert client.request("POST", "/v2/models/nope/infer", infer_body())[0] == 404
    assert client.request("GET", "/v2/models/fraud/versions/9")[0] == 404
    assert client.request("GET", "/nowhere")[0] == 404
    status, headers, _ = client.request("GET", "/v2/models/fraud/infer")
    assert status == 405
    assert headers["allow"] == "POST"


def test_timeout_parameter_gives_504(client: Client) -> None:
    body = {**infer_body(), "parameters": {"timeout": 1}}
    status, _, answer = client.request("POST", "/v2/models/fraud/infer", body)
    assert status == 504
    assert answer["code"] == "deadline_exceeded"


def test_draining_turns_readiness_off_but_keeps_answering(client: Client) -> None:
    client.app.start_draining()
    assert client.request("GET", "/v2/health/ready")[::2] == (503, {"ready": False})
    assert client.request("POST", "/v2/models/fraud/infer", infer_body())[0] == 200


def test_a_post_without_a_json_content_type_is_refused(client: Client) -> None:
    body = orjson.dumps(infer_body())
    page = {"origin": "https://page.example"}  # a browser's request
    for headers in (page, {"content-type": "text/plain"}, {"content-type": "multipart/form-data"}):
        for path in ("/v2/models/fraud/infer", "/v1/feedback", "/v2/repository/index"):
            status, _, answer = client.request("POST", path, body, headers=headers)
            assert (status, answer["code"]) == (415, "unsupported_media_type"), (path, headers)
    assert "Content-Type" in answer["error"]
    json_with_charset = {"content-type": "application/json; charset=utf-8"}
    assert client.request("POST", "/v2/models/fraud/infer", body, json_with_charset)[0] == 200
    # the binary tensor extension's header lets any type through to the protocol parser
    binary = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(body)),  # all JSON, no tensor bytes
    }
    assert client.request("POST", "/v2/models/fraud/infer", body, binary)[0] == 200
    # a client that is no browser (no Origin: tritonclient's JSON mode) may leave it out
    assert client.request("POST", "/v2/models/fraud/infer", body)[0] == 200
    # an empty body needs no type
    assert client.request("POST", "/v2/repository/index", b"")[0] == 200


def test_a_request_for_another_host_is_refused(client: Client) -> None:
    status, _, body = client.request(
        "POST",
        "/v2/models/fraud/infer",
        infer_body(),
        headers={"host": "rebound.example:8000", "x-request-id": "host-1"},
    )
    assert status == 400
    assert body["code"] == "host_not_allowed"
    assert body["request_id"] == "host-1"
    assert client.request("GET", "/v2/models/fraud", headers={"host": "evil.example"})[0] == 400
    # probes answer whatever the Host (a kubelet sends the pod's IP)
    assert client.request("GET", "/v2/health/ready", headers={"host": "10.1.2.3:8000"})[0] == 200
    for host in ("localhost:8000", "127.0.0.1", "[::1]:1"):
        ok = client.request("POST", "/v2/models/fraud/infer", infer_body(), {"host": host})
        assert ok[0] == 200, host


def test_cors_is_off_unless_origins_are_configured(
    client: Client, home: Path, make_app: Any, stores_for: Any
) -> None:
    origin = {"origin": "https://app.example"}
    status, headers, _ = client.request("POST", "/v2/models/fraud/infer", infer_body(), origin)
    assert status == 200
    assert not [h for h in headers if h.startswith("access-control-")]
    assert client.request("OPTIONS", "/v2/models/fraud/infer", headers=origin)[0] == 405
    with stores_for(home) as yard:
        settings = settings_for(home, cors_origins=("https://app.example",))
        app = make_app(settings, yard, ["fraud@champion"])
        on = Client(app)
        on.run(app.startup())
        preflight = {**origin, "access-control-request-method": "POST"}
        status, headers, _ = on.request("OPTIONS", "/v2/models/fraud/infer", headers=preflight)
        assert status == 200
        assert headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in headers["access-control-allow-methods"]
        assert "content-type" in headers["access-control-allow-headers"]
        status, headers, _ = on.request("POST", "/v2/models/fraud/infer", infer_body(), origin)
        assert (status, headers["access-control-allow-origin"]) == (200, "https://app.example")
        evil = {"origin": "https://evil.example"}
        status, headers, _ = on.request("POST", "/v2/models/fraud/infer", infer_body(), evil)
        assert "access-control-allow-origin" not in headers
        assert on.request("OPTIONS", "/v2/models/fraud/infer", headers=evil)[0] == 405
        on.run(app.shutdown())
        on.runner.close()


def test_token_guards_inference_not_health(home: Path, make_app: Any, stores_for: Any) -> None:
    with stores_for(home) as yard:
        app = make_app(settings_for(home, token="s3cret"), yard, ["fraud@champion"])
        client = Client(app)
        client.run(app.startup())
        status, headers, _ = client.request("POST", "/v2/models/fraud/infer", infer_body())
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        ok = client.request(
            "POST",
            "/v2/models/fraud/infer",
            infer_body(),
            headers={"authorization": "Bearer s3cret"},
        )
        assert ok[0] == 200
        assert client.request("GET", "/v2/health/ready")[0] == 200
        assert client.request("GET", "/metrics")[0] == 200
        client.run(app.shutdown())
        client.runner.close()


def test_the_inference_log_sees_each_inference(client: Client, recorded: Any) -> None:
    assert client.request("POST", "/v2/models/fraud/infer", infer_body(3))[0] == 200
    (batch,) = recorded.answered
    ((record, start, stop),) = batch.requests
    assert (batch.model, batch.version, stop - start) == ("fraud", 1, 3)
    assert len(batch.outputs["label"][start:stop]) == 3


def test_the_inference_log_sees_failed_inferences(client: Client, recorded: Any) -> None:
    assert client.request("POST", "/v2/models/fraud/infer", infer_body(2))[0] == 200
    assert recorded.failed == []
    runtime = client.app.table.lookup("fraud", None)

    def broken(model_input: Any) -> dict[str, np.ndarray]:
        raise RuntimeError("onnx says no")

    runtime.batcher._predict = broken
    assert client.request("POST", "/v2/models/fraud/infer", infer_body(2))[0] == 500
    (event,) = recorded.failed
    assert (event.status, event.code, event.rows) == (500, "model_failed", 2)


def test_a_model_failure_is_a_500_that_keeps_the_models_words_to_the_log(
    client: Client,
) -> None:
    runtime = client.app.table.lookup("fraud", None)

    def broken(model_input: Any) -> dict[str, np.ndarray]:
        raise RuntimeError("onnx says no at /secret/path/model.onnx")

    runtime.batcher._predict = broken
    status, headers, body = client.request(
        "POST", "/v2/models/fraud/infer", infer_body(), headers={"x-request-id": "fail-1"}
    )
    assert status == 500
    assert body == {
        "error": body["error"],
        "code": "model_failed",
        "request_id": "fail-1",
    }
    assert headers["x-request-id"] == "fail-1"
    for leak in ("onnx says no", "/secret/path", "RuntimeError", "Traceback"):
        assert leak not in body["error"]
    client.app.log.flush()
    lines = [orjson.loads(line) for line in client.app.log.path.read_text().splitlines()]
    (logged,) = [e for e in lines if e.get("request_id") == "fail-1" and e.get("status")]
    assert logged["code"] == "model_failed"
    assert "RuntimeError: onnx says no at /secret/path/model.onnx" in logged["error"]


def test_a_bug_is_a_500_that_quotes_the_request_id(client: Client) -> None:
    async def bug(*args: Any) -> Any:
        raise KeyError("oops")

    client.app._handlers["live"] = bug
    status, headers, body = client.request("GET", "/v2/health/live")
    assert status == 500
    assert headers["x-request-id"] in body["error"]


def test_metrics_count_requests(client: Client) -> None:
    client.request("POST", "/v2/models/fraud/infer", infer_body())
    status, headers, text = client.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b'modelyard_requests_total{model="fraud",status="200",version="1"} 1.0' in text
    assert b'modelyard_model_version{model="fraud",ref="fraud@champion"} 1.0' in text


def test_metrics_include_the_servers_monitoring_pass(
    home: Path, tmp_path: Path, make_app: Any, stores_for: Any
) -> None:
    live = b'modelyard_live_requests{deployment="fraud",version="1"} 400.0\n'
    with stores_for(home) as yard:
        app = make_app(settings_for(home), yard, ["fraud@champion"], metrics_dir=tmp_path)
        client = Client(app)
        client.run(app.startup())
        assert live not in client.request("GET", "/metrics")[2]  # no pass has run yet
        (tmp_path / MONITORING_TEXT).write_bytes(live)
        assert client.request("GET", "/metrics")[2].endswith(live)
        client.run(app.shutdown())
        client.runner.close()


def test_alias_move_swaps_the_served_version(client: Client, home: Path, stores_for: Any) -> None:
    with stores_for(home) as yard:
        yard.registry.set_alias("fraud", "champion", 2)
        try:
            client.run(client.app.manager.poll_once())
            status, headers, _ = client.request("POST", "/v2/models/fraud/infer", infer_body())
            assert (status, headers["x-model-version"]) == (200, "2")
            assert client.app.table.retiring == []  # version 1 was idle: unloaded at once
        finally:
            yard.registry.set_alias("fraud", "champion", 1)


def test_openapi_document(client: Client) -> None:
    status, _, doc = client.request("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert doc["paths"]["/v2/models/{model_name}/infer"]["post"]["parameters"][0]["schema"][
        "enum"
    ] == ["fraud"]


def test_the_inference_log_sees_batches_before_the_answer_and_can_refuse(
    client: Client, recorded: Any
) -> None:
    status, headers, _ = client.request(
        "POST", "/v2/models/fraud/infer", infer_body(2), headers={"x-request-id": "batch-1"}
    )
    assert status == 200
    (event,) = recorded.answered
    assert (event.model, event.version, event.input_names) == ("fraud", 1, tuple(FIELDS))
    ((request, start, stop),) = event.requests
    assert (request.request_id, start, stop) == ("batch-1", 0, 2)

    recorded.refuse = OverloadedError("the inference log is full")
    status, headers, body = client.request("POST", "/v2/models/fraud/infer", infer_body())
    assert status == 503
    assert headers["retry-after"] == "1"
    assert body["code"] == "overloaded"


def test_a_deleted_alias_keeps_the_version_serving_and_is_logged_once(
    client: Client, home: Path, stores_for: Any
) -> None:
    with stores_for(home) as yard:
        yard.registry.delete_alias("fraud", "champion")
        try:
            for _ in range(3):
                client.run(client.app.manager.poll_once())
        finally:
            yard.registry.set_alias("fraud", "champion", 1)
    status, headers, _ = client.request("POST", "/v2/models/fraud/infer", infer_body())
    assert (status, headers["x-model-version"]) == (200, "1")
    client.app.log.flush()
    lines = (home / "test.jsonl").read_bytes().splitlines()
    unresolved = [orjson.loads(line) for line in lines if b"reference_unresolved" in line]
    assert len(unresolved) == 1
    assert unresolved[0]["code"] == "alias_not_found"


def binary_request(rows: int, extra: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """An OIP request in the binary tensor data form, as tritonclient sends it."""
    values = np.tile(np.array([0.5, -1.0, 0.25, 2.0], dtype="<f4"), (rows, 1))
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [rows, 4],
                "parameters": {"binary_data_size": values.nbytes},
            }
        ],
        **(extra or {}),
    }
    head = orjson.dumps(header)
    return head + values.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def test_binary_tensor_data_in_json_out(client: Client) -> None:
    body, headers = binary_request(2)
    status, answer_headers, answer = client.request(
        "POST", "/v2/models/fraud/infer", body, headers=headers
    )
    assert status == 200, answer
    assert "inference-header-content-length" not in answer_headers
    _, _, expected = client.request("POST", "/v2/models/fraud/infer", infer_body(2))
    assert answer["outputs"] == expected["outputs"]


def test_binary_outputs_are_framed_as_triton_does(client: Client) -> None:
    body, headers = binary_request(2, {"parameters": {"binary_data_output": True}})
    status, answer_headers, payload = client.request(
        "POST",
        "/v2/models/fraud/infer",
        body,
        headers={**headers, "content-type": "application/octet-stream"},
    )
    assert status == 200
    assert answer_headers["content-type"] == "application/octet-stream"
    length = int(answer_headers["inference-header-content-length"])
    head = orjson.loads(payload[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sum(sizes) == len(payload) - length
    _, _, expected = client.request("POST", "/v2/models/fraud/infer", infer_body(2))
    label = np.frombuffer(payload[length : length + sizes[0]], dtype="<i8")
    assert label.tolist() == expected["outputs"][0]["data"]


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ("0", "'Inference-Header-Content-Length' must be the length of the JSON part"),
        ("abc", "'Inference-Header-Content-Length' must be the length of the JSON part"),
        ("100000", "'Inference-Header-Content-Length' must be the length of the JSON part"),
    ],
)
def test_a_malformed_binary_request_is_a_400_naming_the_problem(
    client: Client, header: str, match: str
) -> None:
    body, _ = binary_request(1)
    status, _, answer = client.request(
        "POST", "/v2/models/fraud/infer", body, headers={"Inference-Header-Content-Length": header}
    )
    assert status == 400
    assert match in answer["error"]


def test_binary_sizes_that_do_not_add_up_are_a_400(client: Client) -> None:
    body, headers = binary_request(2)
    status, _, answer = client.request("POST", "/v2/models/fraud/infer", body[:-4], headers=headers)
    assert status == 400
    assert "add up to 32 bytes ('input' 32) but 28 bytes follow" in answer["error"]


def test_the_records_route_refuses_binary_bodies(client: Client) -> None:
    body, headers = binary_request(1)
    status, _, answer = client.request("POST", "/v1/models/fraud:predict", body, headers=headers)
    assert status == 400
    assert "binary tensor data extension" in answer["error"]


def test_the_body_limit_covers_a_binary_body(home: Path, make_app: Any, stores_for: Any) -> None:
    with stores_for(home) as yard:
        app = make_app(settings_for(home, max_body_bytes=2048), yard, ["fraud@champion"])
        client = Client(app)
        client.run(app.startup())
        body, headers = binary_request(200)  # 3,200 bytes of tensor data
        status, _, answer = client.request("POST", "/v2/models/fraud/infer", body, headers=headers)
        assert status == 413
        assert "limit is 2048" in answer["error"] or "limit of 2048" in answer["error"]
        client.run(app.shutdown())
        client.runner.close()


def test_server_metadata_lists_the_binary_extension(client: Client) -> None:
    status, _, body = client.request("GET", "/v2")
    assert status == 200
    assert body["extensions"] == ["binary_tensor_data", "classification"]


def test_the_classification_extension_returns_top_classes(client: Client) -> None:
    body = infer_body(2)
    body["outputs"] = [{"name": "probabilities", "parameters": {"classification": 2}}]
    _, _, plain = client.request("POST", "/v2/models/fraud/infer", infer_body(2))
    status, _, answer = client.request("POST", "/v2/models/fraud/infer", body)
    assert status == 200, answer
    [output] = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == (
        "probabilities",
        "BYTES",
        [2, 2],
    )
    probabilities = next(o for o in plain["outputs"] if o["name"] == "probabilities")["data"]
    for row in range(2):
        scores = probabilities[row * 2 : row * 2 + 2]
        top = [text.split(":") for text in output["data"][row * 2 : row * 2 + 2]]
        assert [int(index) for _, index in top] == sorted(range(2), key=lambda i: (-scores[i], i))
        assert [float(value) for value, _ in top] == pytest.approx(sorted(scores, reverse=True))


@pytest.mark.parametrize(
    ("count", "status", "match"),
    [
        (0, 400, "parameters.classification must be a positive integer"),
        ("2", 400, "parameters.classification must be a positive integer"),
        (
            3,
            422,
            "output 'probabilities' holds 2 value(s) a row; parameters.classification asks for 3",
        ),
    ],
)
def test_a_bad_classification_count_is_refused_naming_it(
    client: Client, count: object, status: int, match: str
) -> None:
    body = infer_body(1)
    body["outputs"] = [{"name": "probabilities", "parameters": {"classification": count}}]
    answered, _, answer = client.request("POST", "/v2/models/fraud/infer", body)
    assert answered == status
    assert match in answer["error"]
