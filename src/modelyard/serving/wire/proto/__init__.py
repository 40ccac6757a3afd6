"""The Open Inference Protocol's gRPC messages, generated from ``open_inference_grpc.proto``.

``open_inference_grpc_pb2.py`` (and its type stub ``.pyi``) are protoc's output,
committed so that neither a user nor the server needs a compiler. After a change to
the ``.proto``, regenerate them from the repository root with the ``dev`` extra's
``grpcio-tools``::

    cd src/modelyard/serving/wire/proto && python -m grpc_tools.protoc -I. \\
        --python_out=. --pyi_out=. open_inference_grpc.proto

(``tests/unit/serving/test_oip_grpc.py`` fails when the module no longer matches the
file). No ``_pb2_grpc.py`` is generated: the server registers its handlers itself
(``serving.grpc.server``), so that the inference handler can answer with bytes it has
already serialised. The generated module refuses to load under a ``protobuf`` older than
the compiler that wrote it; the ``grpc`` extra's ``protobuf`` floor says which.
"""
