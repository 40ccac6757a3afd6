"""The files of a modelyard image: Dockerfile, .dockerignore, requirements.txt.

The image (what ``modelyard containerize`` writes, pure here):

* ``python:<the version here>-slim``, the interpreter's exact version;
* every runtime dependency at the exact version installed where the files were written
  (``pins.installed_pins``), built into wheels in a first stage and installed from them
  alone (``--no-index``) in the second, so the image holds no compiler and no cache;
  modelyard's own wheel is taken from ``wheels/`` beside the Dockerfile;
* a non-root user (uid 10001, which the manifests of ``pod`` run as) and ``modelyard``
  as the entrypoint, ``serve`` on 0.0.0.0:8080 as the command, a ``HEALTHCHECK`` on
  ``/v2/health/ready``;
* the model versions either fetched at start from the artifact store by their sha256
  (the registry verifies every blob it reads), or baked in: copied into a read-only
  artifact store at ``/opt/modelyard/artifacts`` whose every blob is checked against
  ``SHA256SUMS`` while the image builds.

No secret goes in: the database URL and the token come from the environment at start
(a Kubernetes Secret, see ``pod``).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.platforms.pod import HOME, PORT, USER_ID

__all__ = ["ARTIFACTS_DIR", "BakedBlob", "ImageSpec", "blob_path", "render_image_files"]

ARTIFACTS_DIR = "/opt/modelyard/artifacts"


@dataclass(frozen=True)
class BakedBlob:
    """One blob of the registry the image carries: its sha256 and what it is."""

    digest: str
    what: str


@dataclass(frozen=True)
class ImageSpec:
    """What an image is built from.

    ``subject``: the deployment or model reference it serves; ``versions``: each
    version as ``model/3`` with its model file's sha256; ``requirements``: pinned
    ``name==version`` lines; ``baked``: the blobs copied in (empty: fetched at start).
    """

    subject: str
    python_version: str
    modelyard_version: str
    requirements: tuple[str, ...]
    versions: tuple[tuple[str, str], ...]
    baked: tuple[BakedBlob, ...] = ()


def blob_path(digest: str) -> str:
    """Where a blob lies in an artifact store (``store.artifacts``' layout)."""
    return f"sha256/{digest[:2]}/{digest}"


def render_image_files(spec: ImageSpec) -> dict[str, str]:
    """File name (relative to the build context) -> text."""
    files = {
        "Dockerfile": _dockerfile(spec),
        ".dockerignore": _DOCKERIGNORE,
        "requirements.txt": "".join(f"{line}\n" for line in spec.requirements),
    }
    if spec.baked:
        files["artifacts/SHA256SUMS"] = "".join(
            f"{blob.digest}  {blob_path(blob.digest)}\n" for blob in spec.baked
        )
    return files


_DOCKERIGNORE = """\
# Only what the Dockerfile copies goes into the build context.
*
!requirements.txt
!wheels/
!artifacts/
"""


def _dockerfile(spec: ImageSpec) -> str:
    base = f"python:{spec.python_version}-slim"
    served = ", ".join(f"{ref} sha256:{digest}" for ref, digest in spec.versions)
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# modelyard {spec.modelyard_version} serving {spec.subject}: written by",
        "# `modelyard containerize`; see docs/kubernetes.md. Put modelyard's wheel in wheels/",
        "# (`pip wheel --no-deps -w wheels <modelyard source>`) before building.",
        f"FROM {base} AS wheels",
        "WORKDIR /build",
        "COPY requirements.txt ./",
        "COPY wheels/ ./wheels/",
        "# Every dependency at the version installed where this file was written.",
        "RUN pip wheel --no-cache-dir --wheel-dir /wheels --find-links ./wheels \\",
        "    -r requirements.txt \\",
        "    && cp requirements.txt /wheels/",
        "",
        f"FROM {base}",
        f'LABEL org.opencontainers.image.title="modelyard {spec.subject}" \\',
        f'      io.modelyard.versions="{served}"',
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        f"    MODELYARD_HOME={HOME}",
        f"RUN groupadd --system --gid {USER_ID} modelyard \\",
        f"    && useradd --system --uid {USER_ID} --gid {USER_ID} --home-dir {HOME} \\",
        "       --create-home modelyard",
        "COPY --from=wheels /wheels /wheels",
        "RUN pip install --no-cache-dir --no-index --find-links /wheels \\",
        "    -r /wheels/requirements.txt \\",
        "    && rm -rf /wheels",
    ]
    if spec.baked:
        lines += [
            "# The model versions, baked in: every blob is checked against its sha256 here,",
            "# and again by the registry each time it is read.",
            f"COPY artifacts/ {ARTIFACTS_DIR}/",
            f"WORKDIR {ARTIFACTS_DIR}",
            "RUN sha256sum --check --strict SHA256SUMS \\",
            "    && mkdir -p tmp",
            f"ENV MODELYARD_ARTIFACTS_URL={ARTIFACTS_DIR}",
        ]
    else:
        lines += [
            "# The model versions are fetched at start from the artifact store",
            "# (MODELYARD_ARTIFACTS_URL) by their sha256, verified as they are read.",
        ]
    lines += [
        f"WORKDIR {HOME}",
        f"USER {USER_ID}:{USER_ID}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \\",
        '    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('
        f"'http://127.0.0.1:{PORT}/v2/health/ready', timeout=2)\"]",
        'ENTRYPOINT ["modelyard"]',
        f'CMD ["serve", "--host", "0.0.0.0", "--port", "{PORT}"]',
    ]
    return "\n".join(lines) + "\n"
