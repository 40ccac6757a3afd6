"""Baseline: BentoML 1.4 serving the same ONNX model, with its adaptive batching on.

Its best settings found here (BENCHMARKING.md): a batchable API (merging
concurrent requests into one model call, like modelyard's micro-batcher),
``max_batch_size=64`` as modelyard's, and a generous ``max_latency_ms`` (a tight
one answers most requests with 503), two workers on two cores, one intra-op
thread each. Request: ``{"input": [[30 floats], ...]}``.

Run: ``bentoml serve bentoml_service:Fraud`` with ``BENCH_MODEL=model.onnx``.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
import onnxruntime as ort


@bentoml.service(workers=2, traffic={"timeout": 30})
class Fraud:
    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[1].name  # probabilities

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=64, max_latency_ms=1000)
    def infer(self, input: np.ndarray) -> np.ndarray:
        data = input.astype(np.float32, copy=False)
        return self.session.run([self.output_name], {self.input_name: data})[0]
