"""``modelyard k8s render`` and ``modelyard containerize``: files for platforms that exist.

Both read the deployment (or model version) from this home's stores, call the pure
renderers of ``modelyard.platforms`` and write what they return: manifests as
multi-document YAML on stdout or one file each in ``--out``, or one JSON ``List``
with ``--json`` (``kubectl apply -f`` takes either); a Dockerfile and its build context.
See docs/kubernetes.md.
"""

from __future__ import annotations

import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from modelyard.cli.context import CliContext, cli_context
from modelyard.cli.output import AsJson, console, current_output, print_json
from modelyard.errors import NotFoundError, ValidationError
from modelyard.platforms import (
    BakedBlob,
    ClusterOptions,
    ImageSpec,
    blob_path,
    installed_pins,
    manifest_file_name,
    render_image_files,
    render_kserve,
    render_kubernetes,
    render_target,
    to_yaml,
)
from modelyard.registry import ModelVersion
from modelyard.store.artifacts import is_remote_url

__all__ = ["containerize", "k8s_app"]

k8s_app = typer.Typer(
    help="Kubernetes and KServe manifests for a deployment.", no_args_is_help=True
)

TARGETS = ("kubernetes", "kserve")


@k8s_app.command("render")
def render(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="The deployment to serve.")],
    image: Annotated[
        str | None,
        typer.Option(
            help="The modelyard image (`modelyard containerize` writes one); without it, a "
            "deployment whose target is kserve renders as the leader pushes it."
        ),
    ] = None,
    target: Annotated[
        str, typer.Option(help="'kubernetes' (modelyard splits traffic) or 'kserve'.")
    ] = "kubernetes",
    kserve_mode: Annotated[
        str,
        typer.Option(
            help="KServe's canary: 'standard' (spec.canary) or 'knative' (canaryTrafficPercent)."
        ),
    ] = "standard",
    namespace: Annotated[str | None, typer.Option(help="Namespace of every object.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Kubernetes name (default: from the deployment's).")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(help="Secret with database-url and serving-token (default NAME-secrets)."),
    ] = None,
    artifacts_url: Annotated[
        str | None,
        typer.Option(
            help="Artifact store the pods read (default: this home's, when it is remote; "
            "else the image's own)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per pod.")] = 1,
    cpu: Annotated[str, typer.Option(help="CPU requested per pod.")] = "1",
    memory: Annotated[str, typer.Option(help="Memory per pod (request and limit).")] = "1Gi",
    min_replicas: Annotated[int, typer.Option(min=1, help="Fewest pods.")] = 2,
    max_replicas: Annotated[int, typer.Option(min=1, help="Most pods.")] = 10,
    target_cpu: Annotated[
        int, typer.Option(min=1, max=100, help="CPU utilization the autoscaler aims at (%).")
    ] = 70,
    out: Annotated[
        Path | None, typer.Option(help="Write one file per object here (default: stdout).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Manifests that serve DEPLOYMENT on Kubernetes, or on KServe with its canary at the
    rollout's current step: apply them again after each step."""
    if target not in TARGETS:
        raise ValidationError(f"--target must be one of {list(TARGETS)}, got {target!r}")
    if kserve_mode not in ("standard", "knative"):
        raise ValidationError(f"--kserve-mode must be 'standard' or 'knative', got {kserve_mode!r}")
    cli = cli_context(ctx)
    found = cli.deployments.get(deployment)
    if image is None:
        if found.config.target.kind != "kserve":
            raise ValidationError(
                f"--image is needed: deployment {deployment!r} stores no kserve target to "
                "render from"
            )
        _write(render_target(found, artifacts_url=_remote_artifacts(cli)), out, as_json)
        return
    options = ClusterOptions(
        image=image,
        namespace=namespace,
        name=name,
        secret=secret,
        artifacts_url=artifacts_url or _remote_artifacts(cli),
        workers=workers,
        cpu=cpu,
        memory=memory,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_cpu_percent=target_cpu,
    )
    if options.artifacts_url is None:
        _note(
            "the pods read model versions from the image (`modelyard containerize --bake`): "
            "this home's artifacts are on a local disk; --artifacts-url names a store they reach"
        )
    documents = (
        render_kubernetes(found, options)
        if target == "kubernetes"
        else render_kserve(found, options, kserve_mode)  # type: ignore[arg-type]
    )
    _write(documents, out, as_json)


def _write(documents: list[dict[str, Any]], out: Path | None, as_json: bool) -> None:
    """The manifests on stdout (YAML, or one JSON ``List``), or one file each in ``out``."""
    if out is None:
        if as_json:
            print_json({"apiVersion": "v1", "kind": "List", "items": documents})
        else:
            typer.echo(to_yaml(documents), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, document in enumerate(documents, start=1):
        path = out / manifest_file_name(index, document)
        path.write_text(to_yaml([document]), encoding="utf-8")
        written.append(str(path))
    if as_json:
        print_json({"written": written})
        return
    for path_text in written:
        console.print(f"wrote {path_text}")
    console.print(f"apply: kubectl apply -f {out}")


def containerize(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Argument(help="A deployment, or a model version (name, name/3, name@alias).")
    ],
    out: Annotated[Path, typer.Option(help="The build context to write.")],
    bake: Annotated[
        bool,
        typer.Option(
            "--bake/--fetch",
            help="Copy the versions into the image (checked by sha256 at build), or fetch "
            "them from the artifact store at start.",
        ),
    ] = False,
    wheel: Annotated[
        Path | None, typer.Option(help="modelyard's wheel, copied into the context's wheels/.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Write a Dockerfile (slim Python, non-root, pinned wheels) serving SUBJECT."""
    cli = cli_context(ctx)
    versions = _versions_of(cli, subject)
    registry = cli.yard.registry
    baked: dict[str, tuple[BakedBlob, bytes]] = {}
    if bake:
        for found in versions:
            ref = f"{found.model}/{found.version}"
            blobs = [(found.artifact_digest, f"{ref} model")]
            if found.profile_digest is not None:
                blobs.append((found.profile_digest, f"{ref} profile"))
                sample = registry.profile(found.model, found.version).get("sample_digest")
                if sample:
                    blobs.append((sample, f"{ref} profile sample"))
            for digest, what in blobs:
                baked.setdefault(digest, (BakedBlob(digest, what), registry.artifact(digest)))
    if wheel is not None and not (wheel.is_file() and wheel.name.startswith("modelyard-")):
        raise ValidationError(f"--wheel must be modelyard's wheel file, got {str(wheel)!r}")
    pins = installed_pins()
    if pins.missing:
        _note(f"not installed here, so not pinned: {', '.join(pins.missing)}")
    spec = ImageSpec(
        subject=subject,
        python_version=platform.python_version(),
        modelyard_version=metadata.version("modelyard"),
        requirements=pins.lines,
        versions=tuple((f"{v.model}/{v.version}", v.artifact_digest) for v in versions),
        baked=tuple(blob for blob, _ in baked.values()),
    )
    written = _write_context(out, render_image_files(spec), baked, wheel)
    summary: dict[str, Any] = {
        "context": str(out),
        "files": written,
        "versions": [ref for ref, _ in spec.versions],
        "baked": bake,
        "build": f"docker build -t modelyard-{_image_name(subject)} {out}",
    }
    if as_json:
        print_json(summary)
        return
    for path_text in written:
        console.print(f"wrote {path_text}")
    if wheel is None:
        console.print(f"first: pip wheel --no-deps -w {out / 'wheels'} <modelyard source>")
    console.print(f"build: {summary['build']}")


def _versions_of(cli: CliContext, subject: str) -> list[ModelVersion]:
    """The versions a deployment names (champion first), or the one a reference names."""
    registry = cli.yard.registry
    try:
        config = cli.deployments.get(subject).config
    except NotFoundError:
        try:
            model, number = cli.model_ref(subject)
        except NotFoundError as error:
            raise NotFoundError(f"no deployment {subject!r}, and {error.message}") from None
        return [registry.get_version(model, number)]
    ordered = sorted(config.versions, key=lambda v: (v != config.champion, v))
    return [registry.get_version(config.model, v) for v in ordered]


def _write_context(
    out: Path,
    files: dict[str, str],
    baked: dict[str, tuple[BakedBlob, bytes]],
    wheel: Path | None,
) -> list[str]:
    written = []
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(str(path))
    for digest, (_, data) in baked.items():
        path = out / "artifacts" / blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(str(path))
    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        shutil.copy2(wheel, wheels / wheel.name)
        written.append(str(wheels / wheel.name))
    return written


def _remote_artifacts(cli: CliContext) -> str | None:
    """This home's artifact store when pods can reach it too (an object store URL)."""
    configured = cli.settings.artifacts_url
    return configured if configured and is_remote_url(configured) else None


def _image_name(subject: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in subject.lower()).strip("-")


def _note(message: str) -> None:
    """A note about the output, on stderr so that stdout stays the manifests."""
    current_output().stderr.print(f"note: {message}", highlight=False, markup=False)
