"""``modelyard demo recommender`` end to end in its smallest world: it trains, serves, runs
the A/B test that MF must win, closes the loop once and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEMO_TIMEOUT_S = 180  # about 25 s here


def test_the_smoke_demo_promotes_mf_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "rd"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    args = ["demo", "recommender", "--smoke", "--json", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    first_test, loop_test = printed["ab_tests"]
    assert (first_test["promoted"], first_test["last_look"]["winner"]) == ("mf", "mf")
    assert loop_test["title"] == "champion vs retrained"
    assert printed["offline"]["mf"]["ndcg"] > printed["offline"]["popularity"]["ndcg"]
    report = (out / "report.md").read_text()
    first, loop = report.split("## A/B test: ")[1:3]
    assert first.startswith("popularity vs MF")
    assert "verdict: **winner**, may stop: **True** (mf beats popularity" in first
    assert "* promoted: mf" in first
    assert loop.startswith("champion vs retrained")
    assert "<svg" in (out / "report.html").read_text()  # the plots
