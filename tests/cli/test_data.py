"""The CLI on the shipped sample: help, data check, error exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_skfolio_config_data_check_names_close_only_and_lost_features(workdir) -> None:
    config = str(REPO_ROOT / "config" / "skfolio.yaml")
    out = signals("--config", config, "data", "check", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "close only" in out.stdout and "unavailable features" in out.stdout
    assert "close-only bars for 20 of 20 symbol(s)" in out.stdout and "stoch_k" in out.stdout
    summary = json.loads(signals("--config", config, "data", "check", "-s", "GE", "--json", cwd=workdir).stdout)
    assert summary["source"]["provider"] == "skfolio" and summary["source"]["synthetic_tables"] == []
    unavailable = {u["input"]: u for u in summary["unavailable"]}
    assert unavailable["open/high/low/volume"]["n_features"] == 22
    assert unavailable["sector ETF"]["features"] == ["sector_corr_60", "rs_sector_20", "rs_sector_60"]
    assert unavailable["VIX"]["scope"] == "partly"
    assert {"fundamentals", "insider_transactions", "short_interest"} <= set(unavailable)
    assert "SPY" not in unavailable


def test_provider_choices_agree_with_the_config_and_the_factory() -> None:
    import typing

    from signals.cli.data import PROVIDER_CHOICES
    from signals.data.sources import PROVIDERS
    from signals.settings.model import DataSettings

    assert PROVIDER_CHOICES == PROVIDERS
    assert typing.get_args(DataSettings.model_fields["provider"].annotation) == PROVIDERS
