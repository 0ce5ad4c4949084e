"""Full sample (4 symbols, 2000-2013), default 24/6/3-month walk-forward, few trials (slow)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_full_sample_tune_and_train(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.lifecycle.train import run_train
    from signals.lifecycle.tune import run_tune
    from signals.settings.model import load_settings

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        features={"cache_dir": str(workdir / "features"), "n_jobs": 1},
        redis={"enabled": False},
        tuning={"n_trials": 2},
    )
    tune = run_tune(settings)
    # anchor 2000-03-01, last labelled date 2013-02: test windows start 2002-03-01 .. 2012-12-01
    assert len(tune.windows) == 44 and not tune.skipped_windows
    assert tune.windows[0]["test_start"] == "2002-03-01" and tune.windows[-1]["test_start"] == "2012-12-01"
    m = tune.metrics
    assert m["oos_n_rows"] > 9000
    for key in ("oos_log_loss", "baseline_prior_log_loss", "oos_sharpe", "baseline_buy_hold_sharpe"):
        assert np.isfinite(m[key])
    # no edge is expected from daily technical features on four large caps; the numbers must be
    # honest (near the prior), not suspiciously good
    assert abs(m["oos_log_loss"] - m["baseline_prior_log_loss"]) < 0.1
    assert m["oos_accuracy"] < 0.5

    train = run_train(settings)
    assert train.tune_run_id == tune.run_id
    assert train.data_window["holdout_start"] >= "2012-08-01"
    ho = pd.read_parquet(mlflow.artifacts.download_artifacts(train.artifacts["holdout_predictions"]))
    assert set(ho["symbol"]) == {"AAPL", "GOOG", "IBM", "MSFT"}
    assert abs(train.metrics["holdout_log_loss"] - train.metrics["holdout_baseline_prior_log_loss"]) < 0.15
