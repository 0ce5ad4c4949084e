"""benchmarks/features.py runs small and ends with the JSON line other tools parse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_small_and_prints_json_last(workdir: Path) -> None:
    out = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "benchmarks" / "features.py"),
            "--symbols", "4", "--days", "300", "--no-breakdown", "--repeats", "2", "--settle", "0",
        ],
        capture_output=True, text=True, cwd=workdir, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("cold build") for line in lines)  # the readable table comes first
    result = json.loads(lines[-1])
    assert {"cold_symbol_days_per_s", "warm_symbol_days_per_s", "cold_over_talib", "warm_over_talib"} <= set(result)
    assert result["symbol_days"] == 4 * 300
    assert result["cold_symbol_days_per_s"] > 0 and result["warm_symbol_days_per_s"] > 0 and result["cold_over_talib"] > 1
    assert len(result["cold_runs_s"]) == 2 and result["cold_s"] == min(result["cold_runs_s"])
