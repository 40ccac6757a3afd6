"""Running modelyard on platforms that exist: Kubernetes manifests, KServe, container images.

Pure renderers (a deployment and options in, plain documents out): ``render_kubernetes``
(modelyard splits the traffic), ``render_kserve`` (KServe splits a canary's traffic,
modelyard still judges it), ``render_image_files`` (the Dockerfile); ``installed_pins``
reads the versions installed here. ``modelyard k8s render`` and ``modelyard
containerize`` write them (docs/kubernetes.md). Nothing but ``cli`` imports this package.
"""

from modelyard.platforms.dockerfile import BakedBlob, ImageSpec, blob_path, render_image_files
from modelyard.platforms.documents import manifest_file_name, to_yaml
from modelyard.platforms.kserve import KServeMode, render_kserve
from modelyard.platforms.kubernetes import render_kubernetes
from modelyard.platforms.pins import Pins, installed_pins
from modelyard.platforms.pod import ClusterOptions, kubernetes_name

__all__ = [
    "BakedBlob",
    "ClusterOptions",
    "ImageSpec",
    "KServeMode",
    "Pins",
    "blob_path",
    "installed_pins",
    "kubernetes_name",
    "manifest_file_name",
    "render_image_files",
    "render_kserve",
    "render_kubernetes",
    "to_yaml",
]
