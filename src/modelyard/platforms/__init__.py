"""Running modelyard on platforms that exist: Kubernetes manifests, KServe, container images.

Pure renderers (a deployment and options in, plain documents out): ``render_kubernetes``
(modelyard splits the traffic), ``render_kserve`` (KServe splits a canary's traffic,
modelyard still judges it), ``render_target`` (a deployment's stored target, rendered
with its stored options), ``render_image_files`` (the Dockerfile); ``installed_pins``
reads the versions installed here. ``modelyard k8s render`` and ``modelyard
containerize`` write them (docs/kubernetes.md). The ``PlatformSink`` port and its
adapters (a folder for GitOps, a Kubernetes API server) apply them: the leader's runner
pushes each change of a kserve deployment through one (``runner.platform_sync``).
Imported by ``cli`` and ``runner`` only.
"""

from modelyard.platforms.dockerfile import BakedBlob, ImageSpec, blob_path, render_image_files
from modelyard.platforms.documents import manifest_file_name, to_yaml
from modelyard.platforms.kserve import KServeMode, render_kserve
from modelyard.platforms.kubernetes import render_kubernetes
from modelyard.platforms.pins import Pins, installed_pins
from modelyard.platforms.pod import ClusterOptions, kubernetes_name
from modelyard.platforms.sinks import DirectorySink, PlatformSink, open_sink
from modelyard.platforms.targets import (
    OPTION_KEYS,
    PUSHED_TARGETS,
    render_target,
    target_options,
)

__all__ = [
    "OPTION_KEYS",
    "PUSHED_TARGETS",
    "BakedBlob",
    "ClusterOptions",
    "DirectorySink",
    "ImageSpec",
    "KServeMode",
    "Pins",
    "PlatformSink",
    "blob_path",
    "installed_pins",
    "kubernetes_name",
    "manifest_file_name",
    "open_sink",
    "render_image_files",
    "render_kserve",
    "render_kubernetes",
    "render_target",
    "target_options",
    "to_yaml",
]
