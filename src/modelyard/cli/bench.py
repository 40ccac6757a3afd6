"""``modelyard bench``: load a local server with one model's requests and print what it sustains.

A quick check for users, over ``modelyard.loadtest.generator``: it reads the
model's metadata (``GET /v2/models/{name}``), builds a valid Open Inference
Protocol request of random values (or sends ``--body``), checks that the server
answers it, then runs closed-loop load (``--rate`` for open loop) and prints
throughput, latency percentiles, errors and the cost of 1,000 predictions at
the machine's price. Loopback targets only, and at most two minutes a run.

The generator runs on the same machine as the server and takes CPU from it:
for published figures use wrk (see benchmarks/serving).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import orjson
import typer
from rich.table import Table

from modelyard.cli.context import cli_context
from modelyard.cli.output import AsJson, current_output, print_json
from modelyard.config import ServingSettings
from modelyard.errors import ConfigurationError, ValidationError
from modelyard.loadtest.generator import (
    MAX_DURATION_S,
    LoadPlan,
    LoadResult,
    Target,
    cost_per_1000,
    run_load,
)

_PROBE_TIMEOUT_S = 10.0


def _server_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


def _get(client: httpx.Client, url: str) -> httpx.Response:
    try:
        return client.get(url)
    except httpx.TransportError as error:
        raise ConfigurationError(
            f"no server answers at {url} ({type(error).__name__}: {error}); "
            "start one with `modelyard serve`"
        ) from None


def served_models(client: httpx.Client, base: str) -> list[str]:
    """The names the server answers for (its repository index)."""
    url = f"{base}/v2/repository/index"
    try:
        response = client.post(url, content=b"{}", headers={"content-type": "application/json"})
    except httpx.TransportError as error:
        raise ConfigurationError(
            f"no server answers at {base} ({type(error).__name__}: {error}); "
            "start one with `modelyard serve`"
        ) from None
    if response.status_code != 200:
        raise ConfigurationError(
            f"{url} answered {response.status_code}: {_server_error(response)}"
        )
    return sorted({str(entry["name"]) for entry in response.json()})


def random_tensors(metadata: dict[str, Any], rows: int, seed: int) -> dict[str, Any]:
    """An OIP request of ``rows`` rows of random values for the inputs in ``metadata``."""
    rng = np.random.default_rng(seed)
    tensors = []
    for spec in metadata.get("inputs", []):
        shape = [rows if d == -1 else int(d) for d in spec["shape"]]
        if shape and shape[0] != rows:
            shape = [rows, *shape[1:]]
        size = math.prod(shape)
        datatype = spec["datatype"]
        data: list[Any]
        if datatype.startswith("FP"):
            data = np.round(rng.normal(size=size), 4).tolist()
        elif datatype.startswith(("INT", "UINT")):
            data = rng.integers(0, 10, size=size).tolist()
        elif datatype == "BOOL":
            data = rng.integers(0, 2, size=size).astype(bool).tolist()
        else:
            data = [""] * size
        tensors.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    if not tensors:
        raise ValidationError("the model's metadata lists no inputs; pass a request with --body")
    return {"inputs": tensors}


def _openapi_example(client: httpx.Client, base: str, model: str) -> dict[str, Any] | None:
    """The server's example request for ``model`` (real values from its training sample)."""
    try:
        document = client.get(f"{base}/openapi.json").json()
        operation = document["paths"][f"/v2/models/{model}/infer"]["post"]
        example = operation["requestBody"]["content"]["application/json"]["example"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return example if isinstance(example, dict) else None


def _rows_of(request: dict[str, Any]) -> int:
    if isinstance(request.get("instances"), list):
        return len(request["instances"])
    inputs = request.get("inputs")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        shape = inputs[0].get("shape") or [1]
        return int(shape[0]) if shape else 1
    return 1


def prepare_request(
    base: str,
    model: str | None,
    rows: int,
    body_file: Path | None,
    token: str | None,
    seed: int,
) -> tuple[str, str, bytes, int]:
    """Check the server and model; the model, path, body and rows per request to send."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=_PROBE_TIMEOUT_S, headers=headers) as client:
        ready = _get(client, f"{base}/v2/health/ready")
        if ready.status_code != 200:
            raise ConfigurationError(f"the server at {base} is not ready ({ready.status_code})")
        names = served_models(client, base)
        if model is None:
            if len(names) != 1:
                raise ValidationError(
                    f"the server serves {', '.join(names) or 'no models'}; choose one with --model"
                )
            model = names[0]
        metadata = _get(client, f"{base}/v2/models/{model}")
        if metadata.status_code == 404:
            raise ValidationError(
                f"model {model!r} is not served at {base}; served: {', '.join(names) or 'none'}"
            )
        if metadata.status_code != 200:
            raise ConfigurationError(
                f"model {model!r} metadata answered {metadata.status_code}: "
                f"{_server_error(metadata)}"
            )
        if body_file is not None:
            try:
                request = orjson.loads(body_file.read_bytes())
            except (OSError, orjson.JSONDecodeError) as error:
                raise ValidationError(
                    f"cannot read a JSON request from {body_file}: {error}"
                ) from None
            if not isinstance(request, dict):
                raise ValidationError(f"{body_file} must hold a JSON object")
        else:
            request = random_tensors(metadata.json(), rows, seed)
        path = (
            f"/v1/models/{model}:predict" if "instances" in request else f"/v2/models/{model}/infer"
        )
        body = orjson.dumps(request)
        probe = client.post(
            f"{base}{path}", content=body, headers={"content-type": "application/json"}
        )
        if probe.status_code != 200 and body_file is None and rows == 1:
            example = _openapi_example(client, base, model)
            if example is not None:
                body = orjson.dumps(example)
                probe = client.post(
                    f"{base}{path}", content=body, headers={"content-type": "application/json"}
                )
        if probe.status_code != 200:
            raise ValidationError(
                f"the server refused the benchmark request ({probe.status_code}: "
                f"{_server_error(probe)}); pass a valid request with --body FILE"
            )
    return model, path, body, _rows_of(orjson.loads(body))


def _significant(value: float) -> str:
    """``value`` to 3 significant digits without an exponent (0.00000521, not 5.21e-06)."""
    return str(
        np.format_float_positional(value, precision=3, unique=False, fractional=False, trim="-")
    )


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def result_table(
    result: LoadResult, *, url: str, model: str, rows: int, price_per_hour: float
) -> Table:
    """The run's figures as a two-column table."""
    predictions = result.throughput * rows
    mode = f"open loop at {result.rate:,.0f} req/s" if result.rate is not None else "closed loop"
    table = Table(title=f"modelyard bench: {model} at {url}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("load", f"{mode}, {result.connections} connections, {rows} row(s)/request")
    table.add_row("duration", f"{result.duration_s:.1f} s")
    table.add_row("requests", f"{result.requests:,}")
    table.add_row("throughput", f"{result.throughput:,.0f} req/s")
    if rows != 1:
        table.add_row("predictions", f"{predictions:,.0f} rows/s")
    latency = result.latency
    label = "latency (from due time)" if result.service is not None else "latency"
    table.add_row(
        f"{label} p50 / p90 / p99",
        f"{_ms(latency.p50_s)} / {_ms(latency.p90_s)} / {_ms(latency.p99_s)}",
    )
    table.add_row(f"{label} max", _ms(latency.max_s))
    if result.service is not None:
        service = result.service
        table.add_row("service time p50 / p99", f"{_ms(service.p50_s)} / {_ms(service.p99_s)}")
    errors = ", ".join(f"{kind}: {count:,}" for kind, count in result.errors.items())
    table.add_row("errors", f"{result.error_count:,}" + (f" ({errors})" if errors else ""))
    cost = cost_per_1000(predictions, price_per_hour)
    table.add_row(
        "cost per 1,000 predictions",
        "-" if math.isinf(cost) else f"${_significant(cost)} (at ${price_per_hour:g}/hour)",
    )
    return table


def bench(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Argument(help="The server's base URL; loopback only (127.0.0.1, ::1).")
    ] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model to load (default: the only one served)."),
    ] = None,
    connections: Annotated[
        int, typer.Option("--connections", "-c", min=1, max=1024, help="Keep-alive connections.")
    ] = 32,
    duration: Annotated[
        float,
        typer.Option("--duration", "-d", min=0.1, max=MAX_DURATION_S, help="Seconds to measure."),
    ] = 10.0,
    requests: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many requests (or the duration, if sooner)."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Open loop: send this many requests/s and measure latency from each "
            "request's due time. Default: closed loop (like wrk).",
        ),
    ] = None,
    rows: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per request.")] = 1,
    warmup: Annotated[
        float, typer.Option(min=0, max=MAX_DURATION_S, help="Seconds of unmeasured load first.")
    ] = 1.0,
    price_per_hour: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Machine price per hour for the cost line "
            "(default: setting serving.machine_price_per_hour).",
        ),
    ] = None,
    body: Annotated[
        Path | None,
        typer.Option(
            help='A JSON request to send instead of a random one (OIP, or {"instances": ...}).'
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token (default: setting serving.token).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random request.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Load a local server with one model's requests; print throughput, latency and cost."""
    serving = cli_context(ctx).settings.serving
    run_benchmark(
        url,
        model=model,
        connections=connections,
        duration=duration,
        requests=requests,
        rate=rate,
        rows=rows,
        warmup=warmup,
        price_per_hour=serving.machine_price_per_hour if price_per_hour is None else price_per_hour,
        body=body,
        token=token if token is not None else serving.token,
        seed=seed,
        as_json=as_json,
    )


def run_benchmark(
    url: str,
    *,
    model: str | None = None,
    connections: int = 32,
    duration: float = 10.0,
    requests: int | None = None,
    rate: float | None = None,
    rows: int = 1,
    warmup: float = 1.0,
    price_per_hour: float = ServingSettings().machine_price_per_hour,
    body: Path | None = None,
    token: str | None = None,
    seed: int = 0,
    as_json: bool = False,
) -> LoadResult:
    """``modelyard bench`` with every default resolved: check the target and the request,
    run the load, print the table; returns what was measured."""
    target = Target.from_url(url)
    base = target.url
    name, path, payload, request_rows = prepare_request(base, model, rows, body, token, seed)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    plan = LoadPlan(
        url=base,
        path=path,
        body=payload,
        connections=connections,
        duration_s=duration,
        requests=requests,
        rate=rate,
        warmup_s=warmup,
        headers=headers,
    )
    plan.check()
    out = current_output()
    # With --json the document is all that stdout carries.
    (out.stderr if as_json else out.stdout).print(
        f"loading {base}{path} for {duration:g} s (after {warmup:g} s warm-up)..."
    )
    result = run_load(plan)
    if as_json:
        print_json(
            {
                "url": base,
                "path": path,
                "model": name,
                "rows_per_request": request_rows,
                "throughput": result.throughput,
                "cost_per_1000": _finite(
                    cost_per_1000(result.throughput * request_rows, price_per_hour)
                ),
                "price_per_hour": price_per_hour,
                **{k: v for k, v in result.__dict__.items() if k != "responses"},
            }
        )
        return result
    console = out.stdout
    console.print(
        result_table(result, url=base, model=name, rows=request_rows, price_per_hour=price_per_hour)
    )
    if result.service is None:
        console.print(
            "closed loop: latency is from each send, so queueing behind a stall is "
            "under-counted; the generator shares this machine's CPUs with the server.",
            highlight=False,
        )
    return result


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value
