"""URL routing: which endpoint a method and path name, with the model and version in it.

Hand-written because the route table is small and fixed: a dict lookup for the
static paths and one ``split`` for the model paths, memoised per path, beats a
regex router and needs no framework.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.errors import MethodNotAllowedError, RouteNotFoundError

READ = ("GET", "HEAD")
WRITE = ("POST",)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a path names: the endpoint, and the model name and version in it (if any)."""

    name: str
    methods: tuple[str, ...]
    model: str | None = None
    version: str | None = None


# The dashboard (``mount``): pages, data and actions under /ui, behind its own sign-in.
UI = Endpoint("ui", (*READ, *WRITE))

STATIC: dict[str, Endpoint] = {
    "/v2": Endpoint("server_metadata", READ),
    "/v2/health/live": Endpoint("live", READ),
    "/v2/health/ready": Endpoint("ready", READ),
    "/v2/repository/index": Endpoint("repository_index", WRITE),
    "/v1/feedback": Endpoint("feedback", WRITE),
    "/v1/features/push": Endpoint("features_push", WRITE),
    "/metrics": Endpoint("metrics", READ),
    "/openapi.json": Endpoint("openapi", READ),
}
# Endpoints whose successful answers are not worth a log line (probes, scrapes).
QUIET = frozenset({"live", "ready", "metrics", "model_ready", "openapi", "ui"})
# Endpoints that need the bearer token when one is configured (health and metrics stay open).
GUARDED = frozenset(
    {
        "infer",
        "predict",
        "recommend",
        "model_metadata",
        "repository_index",
        "feedback",
        "features_push",
    }
)
# Endpoints answered whatever the Host header says: container probes (kubelet) send the
# pod's IP as Host, and a liveness answer tells a rebinding page nothing.
ANY_HOST = frozenset({"live", "ready"})
_MODEL_ENDPOINTS = {
    "": Endpoint("model_metadata", READ),
    "ready": Endpoint("model_ready", READ),
    "infer": Endpoint("infer", WRITE),
}
_CACHE_LIMIT = 4096


def _match_v2(parts: list[str]) -> Endpoint | None:
    # parts after "v2", "models": [name] [versions, v] [ready|infer]
    if not parts or not parts[0]:
        return None
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version, rest = rest[1], rest[2:]
    if len(rest) > 1:
        return None
    template = _MODEL_ENDPOINTS.get(rest[0] if rest else "")
    if template is None:
        return None
    return Endpoint(template.name, template.methods, name, version)


def _match_v1(parts: list[str]) -> Endpoint | None:
    # KServe V1 / TensorFlow Serving: models/{name}[/versions/{v}][:predict]; [:recommend]
    if not parts or not parts[-1]:
        return None
    last, verb = parts[-1], ""
    for suffix in (":predict", ":recommend"):
        if last.endswith(suffix):
            last, verb = last[: -len(suffix)], suffix[1:]
    parts = [*parts[:-1], last]
    if len(parts) == 1 and parts[0]:
        name, version = parts[0], None
    elif len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        name, version = parts[0], parts[2]
    else:
        return None
    if verb:
        return Endpoint(verb, WRITE, name, version)
    return Endpoint("model_status", READ, name, version)


def match(path: str) -> Endpoint | None:
    """The route for ``path``, or ``None`` if no endpoint lives there."""
    route = STATIC.get(path)
    if route is not None:
        return route
    if path == "/ui" or path.startswith(("/ui/", "/ui?")):
        return UI
    parts = path.split("/")
    if len(parts) >= 4 and parts[0] == "" and parts[2] == "models":
        if parts[1] == "v2":
            return _match_v2(parts[3:])
        if parts[1] == "v1":
            return _match_v1(parts[3:])
    return None


class Router:
    """``match`` with a bounded memo, and method checks that raise our errors."""

    def __init__(self) -> None:
        self._cache: dict[str, Endpoint | None] = {}

    def find(self, path: str) -> Endpoint:
        """The endpoint at ``path``, whatever the method; ``RouteNotFoundError`` if none."""
        try:
            route = self._cache[path]
        except KeyError:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            route = self._cache[path] = match(path)
        if route is None:
            raise RouteNotFoundError(f"no endpoint at {path!r}; see /openapi.json")
        return route

    def resolve(self, method: str, path: str) -> Endpoint:
        route = self.find(path)
        if method not in route.methods:
            raise MethodNotAllowedError(
                f"{method} is not allowed on {path!r}; use {' or '.join(route.methods)}",
                route.methods,
            )
        return route
