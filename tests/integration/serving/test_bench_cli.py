"""``modelyard bench`` against a real server, and the load generator against a tiny
hand-written one (chunked answers, closed connections, error statuses)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from modelyard.cli.bench import bench, random_tensors, run_benchmark
from modelyard.errors import ConfigurationError, ValidationError
from modelyard.loadtest.generator import LoadPlan, generate


def cli() -> typer.Typer:
    commands = typer.Typer()
    commands.command()(bench)
    commands.command("noop")(lambda: None)  # two commands: ``bench`` is then a subcommand
    return commands


def run_bench(*args: str) -> str:
    result = CliRunner().invoke(cli(), ["bench", *args], terminal_width=200)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def row(output: str, label: str) -> str:
    found = re.search(rf"{re.escape(label)}\s*│\s*(.+?)\s*│", output)
    assert found, f"no {label!r} row in:\n{output}"
    return found.group(1)


def test_bench_prints_throughput_latency_and_cost(server: Any) -> None:
    output = run_bench(server.url, "--model", "fraud", "-d", "1.5", "--warmup", "0.3", "-c", "4")
    requests = int(row(output, "requests").replace(",", ""))
    throughput = float(row(output, "throughput").split()[0].replace(",", ""))
    assert requests > 50
    assert throughput > 20
    assert row(output, "errors") == "0"
    assert re.search(r"\d+\.\d\d ms / \d+\.\d\d ms / \d+\.\d\d ms", row(output, "p50 / p90 / p99"))
    assert "(at $0.1/hour)" in row(output, "cost per 1,000 predictions")
    assert "closed loop" in output


def test_open_loop_reports_latency_from_due_time(server: Any) -> None:
    output = run_bench(
        server.url, "-m", "price", "-d", "1", "--warmup", "0", "-c", "2", "--rate", "100",
        "--rows", "3", "--price-per-hour", "3.6",
    )  # fmt: skip
    assert "open loop at 100 req/s" in output
    assert "service time p50 / p99" in output
    assert row(output, "errors") == "0"
    # ~100 req/s x 3 rows; at $3.6 an hour, 1,000 predictions cost 1 / (predictions/s)
    predictions = float(row(output, "predictions").split()[0].replace(",", ""))
    cost = float(row(output, "cost per 1,000 predictions").split()[0].lstrip("$"))
    assert 200 < predictions < 400
    assert cost == pytest.approx(1 / predictions, rel=0.01)


def test_a_records_body_goes_to_the_records_route(server: Any, tmp_path: Path) -> None:
    record = {"rooms": 3, "area": 70.5, "age": 12, "floor": 2, "distance": 1.5}
    body = tmp_path / "body.json"
    body.write_bytes(orjson.dumps({"instances": [record, record]}))
    output = run_bench(server.url, "-m", "price", "-d", "0.5", "--warmup", "0", "--body", str(body))
    assert "/v1/models/price:predict" in output
    assert "2 row(s)/request" in output
    assert row(output, "errors") == "0"


def test_an_unknown_model_is_one_clear_error(server: Any) -> None:
    with pytest.raises(ValidationError, match="model 'nope' is not served at .*; served: fraud"):
        run_benchmark(server.url, model="nope", duration=0.5)


def test_the_model_must_be_chosen_when_several_are_served(server: Any) -> None:
    with pytest.raises(ValidationError, match="serves fraud, price; choose one with --model"):
        run_benchmark(server.url, duration=0.5)


def test_a_body_the_server_refuses_is_reported(server: Any, tmp_path: Path) -> None:
    body = tmp_path / "bad.json"
    body.write_bytes(b'{"instances": [{"rooms": "many"}]}')
    with pytest.raises(ValidationError, match="refused the benchmark request \\(4\\d\\d: "):
        run_benchmark(server.url, model="price", duration=0.5, body=body)


def test_no_server_is_a_configuration_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigurationError, match="no server answers at http://127.0.0.1:"):
        run_benchmark(f"http://127.0.0.1:{port}", duration=0.5)


def test_another_machine_is_refused_before_any_request() -> None:
    with pytest.raises(ValidationError, match="got host '203.0.113.9'"):
        run_benchmark("http://203.0.113.9:8000", duration=0.5)


def test_random_tensors_follow_the_metadata() -> None:
    metadata = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "n", "datatype": "INT64", "shape": [-1]},
            {"name": "flag", "datatype": "BOOL", "shape": [-1]},
        ]
    }
    request = random_tensors(metadata, rows=4, seed=1)
    matrix, count, flag = request["inputs"]
    assert matrix["shape"] == [4, 3]
    assert len(matrix["data"]) == 12
    assert all(isinstance(v, float) for v in matrix["data"])
    assert count["shape"] == [4]
    assert all(isinstance(v, int) and 0 <= v < 10 for v in count["data"])
    assert all(isinstance(v, bool) for v in flag["data"])


# -- the generator against a server written for the test -----------------------------------


@asynccontextmanager
async def tiny_server(every_nth_503: int, close_every: int) -> AsyncIterator[int]:
    """Answers chunked 200s, a 503 every ``every_nth_503`` requests, and closes the
    connection after ``close_every`` requests on it."""
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        on_this = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                served += 1
                on_this += 1
                closing = on_this >= close_every
                connection = b"Connection: close\r\n" if closing else b""
                if served % every_nth_503 == 0:
                    writer.write(
                        b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n" + connection + b"\r\nbusy"
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + connection
                        + b"\r\n2\r\nok\r\n3;x=1\r\n!!!\r\n0\r\n\r\n"
                    )  # fmt: skip
                await writer.drain()
                if closing:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_the_generator_counts_statuses_and_survives_closed_connections() -> None:
    async def scenario() -> Any:
        async with tiny_server(every_nth_503=10, close_every=7) as port:
            plan = LoadPlan(
                url=f"http://127.0.0.1:{port}",
                path="/",
                body=b"{}",
                connections=3,
                duration_s=5,
                requests=200,
            )
            return await generate(plan)

    result = asyncio.run(scenario())
    assert result.requests == 200
    assert result.errors == {"503": result.requests - result.ok}
    assert 15 <= result.errors["503"] <= 25
    assert result.latency.count == 200
    assert result.latency.p50_s <= result.latency.p99_s <= result.latency.max_s


def test_the_generator_counts_refused_connections() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    plan = LoadPlan(
        url=f"http://127.0.0.1:{port}", path="/", body=b"", connections=2, duration_s=0.3
    )
    result = asyncio.run(generate(plan))
    assert result.ok == 0
    assert set(result.errors) == {"ConnectionRefusedError"}
