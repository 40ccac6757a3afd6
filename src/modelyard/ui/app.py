"""The dashboard's web app: pages under ``/ui``, their data under ``/ui/api``.

A Starlette app (its routing, requests, responses and static files are what a
dashboard needs, and no hot path runs through it): ``modelyard serve`` answers
``/ui`` with it in every worker (``serving.http``'s mount), and ``modelyard ui``
runs it alone. Data routes are plain ``def`` functions, which Starlette runs on its
thread pool, so a page's database reads never hold up a worker's event loop.

The page is one HTML file and ES modules (``static/``): no build step, nothing
fetched from elsewhere at run time (uPlot, the charting library, is vendored in
``static/vendor``). Who may look is ``session``'s business: with a token configured,
every page and data route answers 401 without a session or the bearer token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from modelyard.config import Settings
from modelyard.errors import (
    ConflictError,
    ModelyardError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
)
from modelyard.ui import session
from modelyard.ui.context import UiContext
from modelyard.ui.data import actions, deployments, paging
from modelyard.ui.data import models as model_pages
from modelyard.ui.data import monitoring as monitoring_data
from modelyard.ui.data import requests as requests_data
from modelyard.ui.data import runs as run_pages

STATIC = Path(__file__).parent / "static"
_SPAN_LIMIT_S = 30 * 86400.0
_BODY_LIMIT = 64 * 1024  # an action's JSON: a reason and a version
_HEADERS = {
    # Only this server's own scripts and styles; no framing (clickjacking of the actions).
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_OPEN_PATHS = ("/ui/static/", "/ui/api/login", "/ui/api/session")


@dataclass(frozen=True)
class Caller:
    """Who is asking: the name their actions are recorded under."""

    name: str


def create_app(
    settings: Settings,
    ui: UiContext | None = None,
    *,
    metrics: Callable[[], bytes] | None = None,
) -> Guard:
    """The dashboard over ``settings``' home, behind its door (``Guard``; the Starlette app
    is its ``app``). ``ui``: stores already built, for tests; ``metrics``: the serving
    server's ``/metrics`` text, where the dashboard runs inside one (shadow agreement is
    counted there, not stored)."""
    context = ui if ui is not None else UiContext(settings)
    token = settings.serving.token

    def caller(request: Request) -> Caller:
        found = request.scope.get("modelyard.caller")
        assert isinstance(found, Caller), "the guard sets the caller of every guarded route"
        return found

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    def who(request: Request) -> JSONResponse:
        cookie = request.cookies.get(session.COOKIE)
        found = session.verify(token, cookie, time.time()) if token else None
        return _json(
            {
                "token_required": token is not None,
                "name": found.name if found else (None if token else _default_actor(settings)),
            }
        )

    async def login(request: Request) -> Response:
        if token is None:
            return _json({"name": _default_actor(settings), "token_required": False})
        body = await _body(request)
        offered = body.get("token")
        if not isinstance(offered, str) or not session.token_matches(token, offered):
            raise UnauthorizedError("token: not the server's token")
        try:
            name = session.clean_name(body.get("name"))
        except ValueError as error:
            raise ValidationError(str(error)) from error
        response = _json({"name": name, "token_required": True})
        response.set_cookie(
            session.COOKIE,
            session.issue(token, name, time.time()),
            max_age=session.SESSION_S,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def logout(request: Request) -> Response:
        response = _json({"name": None})
        response.delete_cookie(session.COOKIE, path="/ui")
        return response

    def overview(request: Request) -> JSONResponse:
        return _json(deployments.overview(context, time.time()))

    def deployment(request: Request) -> JSONResponse:
        span = _number(request, "span", 3600.0, 60.0, _SPAN_LIMIT_S)
        name = request.path_params["name"]
        return _json(deployments.deployment_page(context, name, time.time(), span, metrics))

    async def rollout(request: Request) -> JSONResponse:
        body = await _body(request)
        reason = actions.reason_of(body)
        name, action = request.path_params["name"], request.path_params["action"]
        return _json(
            await _threaded(
                actions.rollout_action, context, name, action, caller(request).name, reason
            )
        )

    async def alias(request: Request) -> JSONResponse:
        body = await _body(request)
        reason = actions.reason_of(body)
        model, name = request.path_params["model"], request.path_params["alias"]
        return _json(
            await _threaded(
                actions.move_alias, context, model, name, body, caller(request).name, reason
            )
        )

    async def acknowledge(request: Request) -> JSONResponse:
        body = await _body(request)
        reason = actions.reason_of(body)
        name, alert = request.path_params["name"], request.path_params["alert"]
        return _json(
            await _threaded(
                actions.acknowledge_alert,
                context,
                name,
                alert,
                caller(request).name,
                reason,
                time.time(),
            )
        )

    # -- monitoring and requests pages (ui.data.monitoring, ui.data.requests) --------------

    def monitoring(request: Request) -> JSONResponse:
        span = _number(request, "span", 86400.0, 60.0, _SPAN_LIMIT_S)
        name = request.path_params["name"]
        return _json(monitoring_data.monitoring_page(context, name, time.time(), span))

    def accuracy(request: Request) -> JSONResponse:
        span = _number(request, "span", 86400.0, 60.0, _SPAN_LIMIT_S)
        name = request.path_params["name"]
        return _json(monitoring_data.accuracy_page(context, name, time.time(), span))

    def drift_check(request: Request) -> JSONResponse:
        top = int(_number(request, "top", monitoring_data.HISTOGRAM_FEATURES, 1, 30, unit=""))
        name, check = request.path_params["name"], request.path_params["check"]
        return _json(monitoring_data.drift_check_page(context, name, check, top))

    def logged_requests(request: Request) -> JSONResponse:
        return _json(requests_data.search(context, request.query_params))

    def logged_request(request: Request) -> JSONResponse:
        name, request_id = request.path_params["name"], request.path_params["request_id"]
        return _json(requests_data.request_detail(context, name, request_id))

    watching = [
        Route("/ui/api/deployments/{name}/monitoring", monitoring),
        Route("/ui/api/deployments/{name}/accuracy", accuracy),
        Route("/ui/api/deployments/{name}/drift/{check:int}", drift_check),
        Route("/ui/api/requests", logged_requests),
        Route("/ui/api/deployments/{name}/requests/{request_id:path}", logged_request),
    ]

    # -- models and runs (issue 21, items 1 and 5): each a page of an index -------------
    def models_list(request: Request) -> JSONResponse:
        query = request.query_params
        return _json(
            model_pages.models_page(
                context, paging.page_size(query), paging.text(query, "page_token")
            )
        )

    def model(request: Request) -> JSONResponse:
        query = request.query_params
        return _json(
            model_pages.model_page(
                context,
                request.path_params["model"],
                paging.page_size(query),
                paging.text(query, "page_token"),
            )
        )

    def version(request: Request) -> JSONResponse:
        name, number = request.path_params["model"], request.path_params["version"]
        return _json(model_pages.version_page(context, name, number))

    def retrains(request: Request) -> JSONResponse:
        return _json(model_pages.retrains(context, request.path_params["model"]))

    def runs_list(request: Request) -> JSONResponse:
        query = request.query_params
        return _json(
            run_pages.runs_page(
                context,
                filter=paging.text(query, "filter"),
                experiment=paging.text(query, "experiment"),
                status=paging.text(query, "status"),
                limit=paging.page_size(query),
                page_token=paging.text(query, "page_token"),
                columns=paging.names(query, "columns", run_pages.COLUMN_LIMIT),
            )
        )

    def run(request: Request) -> JSONResponse:
        charts = paging.names(request.query_params, "charts", run_pages.CHARTS)
        return _json(run_pages.run_page(context, request.path_params["run"], charts))

    def run_metric(request: Request) -> JSONResponse:
        key = paging.text(request.query_params, "key")
        return _json(run_pages.metric_page(context, request.path_params["run"], key))

    models_and_runs = [
        Route("/ui/api/models", models_list),
        Route("/ui/api/models/{model}", model),
        Route("/ui/api/models/{model}/versions/{version:int}", version),
        Route("/ui/api/models/{model}/retrains", retrains),
        Route("/ui/api/runs", runs_list),
        Route("/ui/api/runs/{run}", run),
        Route("/ui/api/runs/{run}/metric", run_metric),
    ]
    # -- end of models and runs ------------------------------------------------------

    routes = [
        *watching,
        Route("/ui", lambda request: RedirectResponse("/ui/", status_code=308)),
        Route("/ui/", page),
        Route("/ui/api/session", who),
        Route("/ui/api/login", login, methods=["POST"]),
        Route("/ui/api/logout", logout, methods=["POST"]),
        Route("/ui/api/overview", overview),
        Route("/ui/api/deployments/{name}", deployment),
        Route("/ui/api/deployments/{name}/rollout/{action}", rollout, methods=["POST"]),
        Route("/ui/api/deployments/{name}/alerts/{alert:int}/ack", acknowledge, methods=["POST"]),
        Route("/ui/api/models/{model}/aliases/{alias}", alias, methods=["POST"]),
        *models_and_runs,
        Mount("/ui/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ModelyardError: _error,
            404: _not_found,
            405: _method_not_allowed,
        },
    )
    app.state.ui = context
    return Guard(app, token, settings)


class Guard:
    """The dashboard's door (ASGI middleware): a session or the bearer token on every
    page and data route when a token is set, and writes only from this server's pages."""

    def __init__(self, app: Starlette, token: str | None, settings: Settings) -> None:
        self.app = app
        self.token = token
        self.default = _default_actor(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD") and not session.same_origin(
            request.headers.get("origin"), request.headers.get("host")
        ):
            await _refuse(scope, receive, send, 403, "this write did not come from this server")
            return
        if path.startswith(_OPEN_PATHS) or self.token is None:
            scope["modelyard.caller"] = Caller(self.default)
            await self.app(scope, receive, send)
            return
        found = session.verify(self.token, request.cookies.get(session.COOKIE), time.time())
        if found is not None:
            scope["modelyard.caller"] = Caller(found.name)
        elif session.bearer_matches(self.token, request.headers.get("authorization")):
            scope["modelyard.caller"] = Caller(self.default)
        elif path.startswith("/ui/api/"):
            await _refuse(scope, receive, send, 401, "sign in: this server needs its token")
            return
        else:  # a page: the sign-in form, and nothing else, with 401
            response = FileResponse(STATIC / "index.html", status_code=401, headers=_HEADERS)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _default_actor(settings: Settings) -> str:
    return settings.user or "dashboard"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    code = "unauthorized" if status == 401 else "forbidden"
    await _json({"error": message, "code": code}, status)(scope, receive, send)


def _json(document: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, headers=_HEADERS)


async def _threaded(function: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(function, *args)


async def _body(request: Request) -> dict[str, Any]:
    """An action's JSON object body, or a ValidationError naming what is wrong."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ValidationError("the body must be JSON (content-type: application/json)")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _BODY_LIMIT:
            raise ValidationError(f"the body is over {_BODY_LIMIT} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as error:
        raise ValidationError(f"the body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return body


def _number(
    request: Request, name: str, default: float, low: float, high: float, unit: str = " seconds"
) -> float:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(f"{name}: a number{unit and ' of' + unit}, not {text!r}") from None
    if not low <= value <= high:
        raise ValidationError(f"{name}: between {low:g} and {high:g}{unit}, not {value:g}")
    return value


_STATUS: tuple[tuple[type[ModelyardError], int], ...] = (
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConflictError, 409),
    (UnauthorizedError, 401),
)


async def _error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ModelyardError)
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 500)
    return _json({"error": error.message, "code": error.code}, status)


async def _not_found(request: Request, error: Exception) -> Response:
    return _json({"error": f"no page or data at {request.url.path!r}", "code": "not_found"}, 404)


async def _method_not_allowed(request: Request, error: Exception) -> Response:
    message = f"{request.method} is not allowed on {request.url.path!r}"
    return _json({"error": message, "code": "method_not_allowed"}, 405)
