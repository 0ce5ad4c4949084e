"""benchmarks/known_signal.py runs the real tune step on a tiny known-signal market and ends with
the JSON line of its figures (the full-size run is the benchmark itself: ~11 minutes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_known_signal_benchmark_runs_small_and_prints_json_last(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SA_", "MLFLOW_"))}
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "known_signal.py"), "--symbols", "6", "--days", "800",
         "--trials", "2", "--variants", "signal,noise"],
        capture_output=True, text=True, cwd=workdir, timeout=600, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("known-signal market: 6 symbols x 800 days")
    assert any(line.startswith("signal ") for line in lines) and any(line.startswith("noise ") for line in lines)
    figures = json.loads(lines[-1])
    assert {"signal_recovery", "noise_skill", "signal_ece", "noise_ece", "signal_oracle_gain"} <= set(figures)
    assert all(math.isfinite(figures[k]) for k in ("noise_skill", "signal_ece", "noise_ece", "signal_oracle_gain"))
    assert 0 < figures["signal_ece"] < 0.2 and figures["signal_oracle_gain"] > 0
