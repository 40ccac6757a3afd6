"""The server's background loops, one each per server whatever its worker count: the
rollout controller, and with inference logging the retention sweep and the
monitoring pass. They run on threads of the process that answers no requests (the
supervisor), or beside the only worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelyard.config import Settings
from modelyard.runner.monitoring import MonitorLoop
from modelyard.runner.periodic import PeriodicLoop
from modelyard.runner.retention import RetentionLoop
from modelyard.runner.rollouts import RolloutLoop


def metrics_directory(settings: Settings) -> Path:
    """Where this server's workers exchange metrics (and the monitoring pass writes its
    figures); created here, removed by the caller at shutdown."""
    directory = settings.home / "run" / f"serve-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def background_loops(settings: Settings, metrics_dir: Path) -> list[PeriodicLoop]:
    """Start the loops this server runs; ``metrics_dir`` is where its workers' metrics meet."""
    loops: list[PeriodicLoop] = [RolloutLoop(settings).start()]
    monitoring = settings.monitoring
    if monitoring.log_inferences:
        loops.append(RetentionLoop(settings).start())
        if monitoring.check_interval_s > 0:
            loops.append(MonitorLoop(settings, metrics_dir=metrics_dir).start())
    return loops
