"""Edge optimisation of image models: the CNN and its training (``cnn``), measuring on
this CPU (``measure``), int8 quantization (``quantize``), structured pruning and the
``Optimizer`` that gates and registers candidates (``optimizer``), the accuracy gate
(``gate``, pure) and the comparison table (``compare``).

Only what needs no torch is exported here; ``modelyard.optimize.optimizer`` (the
``vision`` extra: torch, scikit-learn) is imported by whoever trains or prunes.
"""

from modelyard.optimize.compare import comparison_rows
from modelyard.optimize.gate import Figures, GateCheck, OptimizePolicy, Verdict, judge
from modelyard.optimize.measure import Timing

__all__ = [
    "Figures",
    "GateCheck",
    "OptimizePolicy",
    "Timing",
    "Verdict",
    "comparison_rows",
    "judge",
]
