"""The OpenAPI 3.0 document served at ``/openapi.json``, written by hand.

There is no web framework to generate it from, and the routes are few and fixed
by the Open Inference Protocol (KServe V2) and KServe V1, so it is a plain dict.
``tests/integration/serving`` runs schemathesis against it, which checks that
the server keeps to it (statuses, content types, bodies, headers).
"""

from __future__ import annotations

from typing import Any

from modelyard.monitoring.feedback import FeedbackResult
from modelyard.serving.wire.oip import DATATYPES

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(description: str, schema: str, content_type: str = _JSON) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
        "content": {content_type: {"schema": _ref(schema)}},
    }


_ERRORS = {
    "400": "The body is not JSON or not shaped like the protocol's request",
    "401": "A bearer token is configured and the request did not carry it",
    "404": "No such model, version or endpoint",
    "405": "Method not allowed",
    "413": "Body larger than max_body_bytes, or more rows than max_rows",
    "415": "Content-Type is missing or not application/json",
    "422": "The values do not match the model's signature (the message names field and row)",
    "500": "The model failed on a valid batch",
    "503": "Overloaded (load shed; see Retry-After) or not ready yet",
    "504": "The request's deadline passed before it could be answered",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _response(_ERRORS[code], "Error") for code in codes}


def _params(model_names: list[str], versions: list[str], versioned: bool) -> list[dict[str, Any]]:
    name_schema: dict[str, Any] = {"type": "string"}
    if model_names:
        name_schema["enum"] = model_names
    params = [{"name": "model_name", "in": "path", "required": True, "schema": name_schema}]
    if versioned:
        version_schema: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}
        if versions:
            version_schema["enum"] = versions
        params.append(
            {
                "name": "model_version",
                "in": "path",
                "required": True,
                "description": "A version loaded on this server (see the model's metadata)",
                "schema": version_schema,
            }
        )
    params.append(
        {
            "name": "x-request-id",
            "in": "header",
            "required": False,
            "description": "Echoed back when it is 1-128 printable ASCII characters; "
            "otherwise a new id is generated",
            "schema": {"type": "string"},
        }
    )
    return params


def _body(schema: str, example: dict[str, Any] | None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(schema)}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {_JSON: media}}


def _model_paths(
    prefix: str,
    model_names: list[str],
    versions: list[str],
    versioned: bool,
    example: dict[str, Any] | None,
) -> dict[str, Any]:
    params = _params(model_names, versions, versioned)
    infer_errors = _errors("400", "401", "404", "413", "415", "422", "500", "503", "504")
    return {
        prefix: {
            "get": {
                "summary": "Model metadata (inputs, outputs, versions, platform)",
                "parameters": params,
                "responses": {
                    "200": _response("Model metadata", "ModelMetadata"),
                    **_errors("401", "404"),
                },
            }
        },
        f"{prefix}/ready": {
            "get": {
                "summary": "Whether the model is loaded and warmed",
                "parameters": params,
                "responses": {
                    "200": _response("Ready", "ModelReady"),
                    "503": _response("Not ready", "ModelReady"),
                    **_errors("404"),
                },
            }
        },
        f"{prefix}/infer": {
            "post": {
                "summary": "Open Inference Protocol inference",
                "parameters": params,
                "requestBody": _body("InferenceRequest", example),
                "responses": {
                    "200": _response("Outputs for every row", "InferenceResponse"),
                    **infer_errors,
                },
            }
        },
    }


def _v1_paths(
    model_names: list[str],
    versions: list[str],
    versioned: bool,
    example: dict[str, Any] | None,
) -> dict[str, Any]:
    prefix = "/v1/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
    params = _params(model_names, versions, versioned)
    return {
        f"{prefix}:predict": {
            "post": {
                "summary": "Predict from JSON records (KServe V1 / TensorFlow Serving style)",
                "parameters": params,
                "requestBody": _body("RecordsRequest", example),
                "responses": {
                    "200": _response("One prediction per record", "RecordsResponse"),
                    **_errors("400", "401", "404", "413", "415", "422", "500", "503", "504"),
                },
            }
        },
        f"{prefix}:recommend": {
            "post": {
                "summary": "A ranked list for one user from a recommender (docs/recommender.md)",
                "parameters": params,
                "requestBody": _body("RecommendRequest", None),
                "responses": {
                    "200": _response(
                        "Items by position, with scores and propensities", "RecommendResponse"
                    ),
                    **_errors("400", "401", "404", "413", "415", "422", "500", "503", "504"),
                },
            }
        },
    }


_FEEDBACK_ITEM: dict[str, Any] = {
    "type": "object",
    "description": "A label for one prediction row (request_id + row) or for an entity at "
    "a time (entity_key + event_time); give exactly one of label and outcome.",
    "properties": {
        "request_id": {"type": "string", "maxLength": 128},
        "row": {"type": "integer", "minimum": 0},
        "entity_key": {"type": "string", "maxLength": 255},
        "event_time": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        "label": {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
        "outcome": {"type": "object"},
    },
    "additionalProperties": False,
}

_REQUIRE_KNOWN = {
    "type": "boolean",
    "default": False,
    "description": "Refuse the whole post (404, nothing stored) when a request id is not in "
    "the inference log yet; it runs about a second behind the answers",
}
_LABEL_OUTCOME: dict[str, Any] = {
    "type": "object",
    "required": ["outcome"],
    "properties": {
        "outcome": {
            "type": "string",
            "enum": ["joined", "pending", "refused", "deferred"],
            "description": "joined: its prediction is in the inference log; pending: not yet "
            "(stored, and counted expired on /metrics if it does not join within "
            "monitoring.feedback_pending_s); refused: not stored, see reason; deferred: an "
            "entity label, matched when monitoring reads a window",
        },
        "request_id": {"type": "string"},
        "row": {"type": "integer"},
        "entity_key": {"type": "string"},
        "reason": {"type": "string"},
        "expires_at": {"type": "number", "description": "UNIX seconds; pending labels only"},
    },
}

_SCHEMAS: dict[str, Any] = {
    "FeedbackItem": _FEEDBACK_ITEM,
    "FeedbackRequest": {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "labels": {"type": "array", "items": _FEEDBACK_ITEM},
                    "require_known": _REQUIRE_KNOWN,
                },
                "required": ["labels"],
                "additionalProperties": False,
            },
            {
                **_FEEDBACK_ITEM,
                "properties": {**_FEEDBACK_ITEM["properties"], "require_known": _REQUIRE_KNOWN},
            },
        ]
    },
    "LabelOutcome": _LABEL_OUTCOME,
    "FeaturePush": {
        "type": "object",
        "required": ["stream", "events"],
        "properties": {
            "stream": {"type": "string"},
            "events": {"type": "array", "items": {"type": "object"}},
        },
    },
    "FeaturePushResult": {
        "type": "object",
        "properties": {
            "stream": {"type": "string"},
            "accepted": {"type": "integer"},
            "duplicates": {"type": "array", "items": {"type": "string"}},
            "too_late": {"type": "array", "items": {"type": "object"}},
        },
    },
    "FeedbackResult": {
        "type": "object",
        "properties": {
            **{name: {"type": "integer"} for name in FeedbackResult.COUNTS},
            "labels": {
                "type": "array",
                "items": _ref("LabelOutcome"),
                "description": "What each label matched, in the order posted",
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string"},
            "request_id": {"type": "string"},
        },
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "parameters": {"type": "object"},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "Parameters": {
        "type": "object",
        "additionalProperties": {
            "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
        },
    },
    "RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted(DATATYPES)},
            "parameters": _ref("Parameters"),
            "data": {"type": "array", "description": "Row-major values, flat or nested"},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": _ref("Parameters")},
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array"},
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs", "id"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
    "RecommendRequest": {
        "type": "object",
        "required": ["user"],
        "properties": {
            "user": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]},
            "k": {"type": "integer", "minimum": 1, "default": 10},
            "exclude": {"type": "array", "items": {"type": "string"}},
            "candidates": {"type": "array", "items": {"type": "string"}},
            "exclude_seen": {"type": "boolean", "default": True},
        },
        "additionalProperties": False,
    },
    "RecommendResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "arm": {"type": "string"},
            "id": {"type": "string"},
            "user": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object"}},
            "fallback": {"type": ["string", "null"]},
        },
    },
    "RecordsRequest": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [{"type": "object"}, {"type": "array"}]},
                "description": "Objects of field values, or lists of values in field order",
            },
            "top_k": {
                "type": "integer",
                "minimum": 1,
                "default": 3,
                "description": "Classes listed per record by a classifier with labels",
            },
        },
    },
    "RecordsResponse": {
        "type": "object",
        "required": ["predictions", "model_name", "model_version"],
        "properties": {
            "predictions": {"type": "array"},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
        },
    },
    "RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "version", "state"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
    },
}


def build_openapi(
    model_names: list[str],
    versions: list[str],
    server_version: str,
    examples: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The document for a server serving ``model_names`` with ``versions`` loaded;
    ``examples`` (an OIP and a records request) are those of the first model."""
    infer_example, records_example = examples if examples is not None else (None, None)
    paths: dict[str, Any] = {
        "/v2": {
            "get": {
                "summary": "Server metadata",
                "responses": {
                    "200": _response("Server name, version, extensions", "ServerMetadata")
                },
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "Liveness",
                "responses": {"200": _response("The server answers", "Live")},
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness: every model loaded, not draining",
                "responses": {
                    "200": _response("Ready", "Ready"),
                    "503": _response("Not ready", "Ready"),
                },
            }
        },
        "/v2/repository/index": {
            "post": {
                "summary": "Served models and their state",
                "responses": {
                    "200": _response("Index", "RepositoryIndex"),
                    **_errors("400", "401", "413", "415"),
                },
            }
        },
        "/v1/feedback": {
            "post": {
                "summary": "Attach ground truth or an outcome to earlier predictions (idempotent)",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("FeedbackRequest")}},
                },
                "responses": {
                    "200": _response(
                        "What the post changed and each label matched", "FeedbackResult"
                    ),
                    **_errors("400", "401", "413", "415", "422"),
                    "404": _response(
                        "With require_known, a request id not in the inference log (the message "
                        "names it; nothing was stored); or no feedback route on this server",
                        "Error",
                    ),
                },
            }
        },
        "/v1/features/push": {
            "post": {
                "summary": "Push events to a feature stream (applied once per event id)",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("FeaturePush")}},
                },
                "responses": {
                    "200": _response("What the push applied", "FeaturePushResult"),
                    **_errors("400", "401", "404", "413", "415", "422"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for versioned in (False, True):
        prefix = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
        paths.update(_model_paths(prefix, model_names, versions, versioned, infer_example))
        paths.update(_v1_paths(model_names, versions, versioned, records_example))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "modelyard serving",
            "version": server_version,
            "description": "Open Inference Protocol (KServe V2) REST API, plus JSON records "
            "(KServe V1). Every response carries x-request-id; inference responses also "
            "x-model-version.",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "headers": {"RequestId": {"required": True, "schema": {"type": "string"}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
