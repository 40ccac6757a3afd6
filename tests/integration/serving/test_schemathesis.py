"""schemathesis against the served OpenAPI document: no 5xx for anything it sends, and
every answer keeps to the document (status codes, content types, bodies, headers).

Run through the schemathesis command line on the live ``/openapi.json``: its
pytest loader (``schemathesis.pytest.from_fixture``) does not work with pytest 9
(it reads ``Function._nodeid``, which pytest 9 removed). One schemathesis worker:
with several, hypothesis's lambda descriptions call ``ast.parse`` from threads and
hit CPython 3.11.7's "AST constructor recursion depth mismatch" bug.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
)


TOKEN = "schemathesis-token"


def run_schemathesis(url: str, tmp_path: Path, headers: list[str]) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        *headers,
        "--checks",
        CHECKS,
        "--mode",
        "all",
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert cases is not None, result.stdout[-3000:]
    assert int(cases.group(1)) == int(cases.group(2)) > 300


def test_the_api_keeps_to_its_document(server: Any, tmp_path: Path) -> None:
    run_schemathesis(server.url, tmp_path, [])


def test_the_api_keeps_to_its_document_with_a_token(
    model_home: Path, launch_server: Any, tmp_path: Path
) -> None:
    """The same checks on a server that wants a bearer token, the token sent on every call."""
    guarded = launch_server(model_home, ["fraud@champion", "price"], settings={"token": TOKEN})
    run_schemathesis(guarded.url, tmp_path, ["--header", f"Authorization: Bearer {TOKEN}"])
