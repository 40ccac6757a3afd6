"""Seeding every random number generator a training script is likely to use."""

from __future__ import annotations

import random
import sys

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator, and torch if it is imported.

    torch is seeded only when the script already imported it: importing it here
    would cost a second for scripts that never use it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
