"""Save the benchmark's ONNX model as an MLflow model (run in the MLflow venv).

``python mlflow_save.py model.onnx sample.npy out_dir``: the ONNX flavour with a
tensor signature (float32, ``[-1, 30]``) and one intra-op thread per worker, as
for every server. ``mlflow models serve`` then takes ``{"inputs": [[...]]}``.

Not ``dataframe_split``: with a DataFrame, MLflow's ONNX flavour builds its
answer as one DataFrame column per output, which fails for a classifier whose
probabilities are ``[rows, 2]`` ("All arrays must be of the same length").
"""

from __future__ import annotations

import sys

import mlflow.onnx
import numpy as np
import onnx
from mlflow.models import infer_signature

onnx_path, sample_path, out_dir = sys.argv[1:4]
sample = np.load(sample_path).astype(np.float32)
mlflow.onnx.save_model(
    onnx.load(onnx_path),
    out_dir,
    signature=infer_signature(sample),
    onnx_execution_providers=["CPUExecutionProvider"],
    onnx_session_options={"intra_op_num_threads": 1, "inter_op_num_threads": 1},
)
