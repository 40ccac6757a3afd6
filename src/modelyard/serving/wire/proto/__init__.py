"""The Open Inference Protocol's gRPC service and messages: ``open_inference_grpc.proto``.

``open_inference_grpc.binpb`` (the file compiled, a ``FileDescriptorSet``) and
``messages.pyi`` (its type stub) are protoc's output, committed so that neither a user
nor the server needs a compiler; ``messages`` builds the message classes from the
former (why not protoc's ``_pb2.py``: its docstring). After a change to the ``.proto``,
regenerate both with the ``dev`` extra's ``grpcio-tools``::

    cd src/modelyard/serving/wire/proto && python -m grpc_tools.protoc -I. \\
        --descriptor_set_out=open_inference_grpc.binpb --pyi_out=. \\
        open_inference_grpc.proto && mv open_inference_grpc_pb2.pyi messages.pyi

(``tests/unit/serving/test_oip_grpc.py`` fails when the compiled file no longer matches
the ``.proto``). No service stub is generated: the server registers its handlers itself
(``serving.rpc.server``), so that the inference handler can answer with bytes it has
already serialised.
"""
