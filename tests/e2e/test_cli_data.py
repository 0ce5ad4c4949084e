"""The CLI on the shipped sample: help, data check, error exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def signals(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signals.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_help_lists_commands() -> None:
    out = signals("--help")
    assert out.returncode == 0
    assert "data" in out.stdout


def test_data_check_prints_coverage(workdir) -> None:
    out = signals("data", "check", "--json", cwd=workdir)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    rows = {r["symbol"]: r for r in summary["symbols"]}
    assert set(rows) == {"AAPL", "GOOG", "IBM", "MSFT"}
    assert rows["AAPL"]["first"] == "2000-03-01" and rows["AAPL"]["adjusted_rows"] == 3270
    synthetic = {t["table"] for t in summary["tables"] if t["synthetic"]}
    assert synthetic == {"fundamentals", "insider_transactions", "short_interest"}


def test_unknown_symbol_exits_non_zero(workdir) -> None:
    out = signals("data", "check", "-s", "NOPE", cwd=workdir)
    assert out.returncode == 1
    assert "unknown symbol 'NOPE'" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_config_exits_non_zero(workdir) -> None:
    cfg = workdir / "bad.yaml"
    cfg.write_text("ml:\n  prediction_horizon: 0\n")
    out = signals("--config", str(cfg), "data", "check", cwd=workdir)
    assert out.returncode == 1
    assert "ml.prediction_horizon" in out.stderr
