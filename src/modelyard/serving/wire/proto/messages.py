"""The Open Inference Protocol's gRPC messages, built in a descriptor pool of our own.

The messages are compiled from ``open_inference_grpc.proto`` into
``open_inference_grpc.binpb`` (a ``FileDescriptorSet``) and built here, at import,
with ``message_factory``; ``messages.pyi`` (protoc's type stub) types them.

Why not protoc's ``_pb2.py``: it registers the messages in protobuf's default pool,
where ``tritonclient.grpc`` and KServe register the same names
(``inference.ModelInferRequest`` ...) from files of other names, and whichever module
a process imports second fails ("duplicate symbol"). In a pool of its own, modelyard's
server and its users' Triton or KServe clients can share a process. Message names never
travel on the wire, only the service's path (``/inference.GRPCInferenceService/...``),
so clients built from any copy of the file talk to this server.
"""

from __future__ import annotations

from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

COMPILED = "open_inference_grpc.binpb"

_POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(
    resources.files(__package__).joinpath(COMPILED).read_bytes()
).file:
    _POOL.Add(_file)
DESCRIPTOR = _POOL.FindFileByName("open_inference_grpc.proto")


def _message(name: str) -> type[Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferParameter = _message("InferParameter")
InferTensorContents = _message("InferTensorContents")
