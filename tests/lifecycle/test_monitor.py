"""The CLI: ``signals monitor``, ``signals retrain --if-needed`` and ``signals backtest``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.support import shared_env

pytestmark = pytest.mark.integration


@pytest.fixture
def env(monkeypatch):
    e = shared_env()
    monkeypatch.chdir(e.workdir)
    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", e.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_FEATURES__CACHE_DIR", e.settings.features.cache_dir)
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    monkeypatch.setenv("SA_ML__CONFIDENCE_THRESHOLD", "0.4")
    return e


def _cli(monkeypatch, capsys, *args):
    from signals.cli import main

    monkeypatch.setattr(sys, "argv", ["signals", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_monitor_and_retrain_if_needed(env, monkeypatch, capsys):
    import signals.lifecycle.monitor as monitor

    # the last day of the data the champion saw (labels end 2011-12-22): day 0, quiet
    code, out, err = _cli(monkeypatch, capsys, "monitor", "--as-of", "2011-12-30", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["check_date"] == "2011-12-30" and doc["model_version"] == env.champion.version_id
    assert doc["mlflow_run_id"] and doc["stale"] is False and doc["retrain"] is None
    assert doc["data_age_days"] == 8 and doc["staleness_basis"] == "data"
    assert doc["drift_alarm"] is False and doc["drift_null_windows"] >= 200 and doc["retrain_needed"] is False
    assert "vix_level" in doc["not_comparable_features"]  # the sample has no VIX at all
    assert not {"day_of_week", "month"} & {t["feature"] for t in doc["top_features"]}

    code, out, err = _cli(monkeypatch, capsys, "monitor", "--as-of", "2012-12-31")
    assert code == 0 and "drift:" in out and "rolling accuracy:" in out and "MLflow run:" in out
    assert "data age:" in out and "no alert channel configured" in out

    calls = []
    monkeypatch.setattr(monitor, "run_retrain", lambda s, reasons: calls.append(list(reasons)) or {"fake": True})
    code, out, err = _cli(monkeypatch, capsys, "retrain", "--if-needed", "--as-of", "2011-12-30", "--json")
    assert code == 0, err
    assert calls == [] and json.loads(out)["retrain_needed"] is False  # fresh data, no drift: nothing to do

    # a year after the training end the model is stale by data time, whatever the wall clock says
    code, out, err = _cli(monkeypatch, capsys, "retrain", "--if-needed", "--as-of", "2012-12-31", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["stale"] is True and doc["model_age_days"] < 1 and doc["data_age_days"] == 375
    assert any(r.startswith("staleness:") and "data time" in r for r in calls[-1])

    monkeypatch.setenv("SA_ML__MODEL_STALENESS_DAYS", "1000")  # only drift can trigger now
    monkeypatch.setenv("SA_MONITORING__PSI_MINOR", "0")
    monkeypatch.setenv("SA_MONITORING__PSI_MAJOR", "0")  # any PSI > 0 counts as major drift
    monkeypatch.setenv("SA_MONITORING__DRIFTED_FEATURES_FOR_RETRAIN", "1")
    monkeypatch.setenv("SA_MONITORING__DRIFT_RULE", "psi")  # the plain count, not the calibrated rule
    code, out, err = _cli(monkeypatch, capsys, "retrain", "--if-needed", "--as-of", "2011-12-30", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["retrain_needed"] is True and doc["retrain"] == {"fake": True}
    assert len(calls) == 2 and calls[-1][0].startswith("drift:")


def _fake_tune_run(settings, seed=0):
    """A finished run tagged like a tune parent, holding oos_predictions.parquet for 2012."""
    import mlflow

    from signals.adapters.tracking import configure_mlflow
    from signals.data import get_provider

    exp = configure_mlflow(settings)
    client = mlflow.MlflowClient()
    provider = get_provider(settings)
    rng = np.random.default_rng(seed)
    rows = []
    for sym in provider.symbols():
        dates = provider.bars(sym, "2012-01-01", "2012-12-31").index
        for window, chunk in enumerate(np.array_split(dates, 2)):
            p = rng.dirichlet([1.0, 1.0, 1.0], size=len(chunk))
            rows.append(pd.DataFrame({"symbol": sym, "date": chunk, "window": window, "y": 1,
                                      "p_down": p[:, 0], "p_flat": p[:, 1], "p_up": p[:, 2], "forward_return": 0.0}))
    frame = pd.concat(rows, ignore_index=True)
    run = client.create_run(exp, run_name="fake-tune", tags={"signals.step": "tune"})
    from signals.adapters.tracking import log_parquet

    log_parquet(client, run.info.run_id, frame, "oos_predictions.parquet")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, frame


def test_backtest_finds_the_latest_tune_run_and_logs_results(env, monkeypatch, capsys):
    import mlflow

    from signals.data import get_provider
    from signals.trading.backtest import run_backtest

    run_id, frame = _fake_tune_run(env.settings)
    code, out, err = _cli(monkeypatch, capsys, "backtest", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tune_run_id"] == run_id
    provider = get_provider(env.settings)
    prices = pd.DataFrame({s: provider.bars(s, start="2012-01-01")["close"] for s in provider.symbols()})
    expected = run_backtest(frame, prices, confidence_threshold=0.4, min_hold_days=3, cost_bps=5.0)
    assert doc["metrics"]["strategy"]["sharpe"] == pytest.approx(expected.metrics["strategy"]["sharpe"])
    assert doc["metrics"]["benchmark"]["total_return"] == pytest.approx(expected.metrics["benchmark"]["total_return"])
    client = mlflow.MlflowClient(tracking_uri=env.settings.mlflow.tracking_uri)
    bt = client.get_run(doc["backtest_run_id"])
    assert bt.data.tags["signals.tune_run_id"] == run_id
    assert "strategy_sharpe" in bt.data.metrics and "benchmark_max_drawdown" in bt.data.metrics
    assert {"equity_curve.png", "daily_returns.parquet", "positions.parquet"} <= {a.path for a in client.list_artifacts(bt.info.run_id)}

    code, out, _ = _cli(monkeypatch, capsys, "backtest", "--tune-run-id", run_id, "--no-log")
    assert code == 0 and "sharpe" in out and "buy_and_hold" in out
    code, _, err = _cli(monkeypatch, capsys, "backtest", "--tune-run-id", "0" * 32)
    assert code == 1 and "no MLflow run" in err
