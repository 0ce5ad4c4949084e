"""tune -> train on a slice of the real sample data (feature store, SQLite MLflow, Optuna storage).

One tiny walk-forward (2 symbols, 18 months, 6/2/2-month windows, 2 trials per window) and one
train run are shared by the checks below.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.modeling.test_model import single_thread_xgboost  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "IBM"]
START, END = "2008-01-01", "2009-06-30"
N_TRIALS = 2


def small_settings(root: Path, **extra):
    from signals.settings.model import load_settings

    overrides = dict(
        mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "signals-test"},
        features={"cache_dir": str(root / "features"), "n_jobs": 1},
        redis={"enabled": False},
        ml={"min_training_samples": 100, "xgb_params": {"n_estimators": 40, "max_depth": 3}},
        walk_forward={"train_months": 6, "test_months": 2, "step_months": 2},
        tuning={"n_trials": N_TRIALS, "early_stopping_rounds": 10},
        monitoring={"reference_rows": 200},
    )
    for k, v in extra.items():
        overrides[k] = {**overrides.get(k, {}), **v}
    return load_settings(REPO_ROOT / "config" / "settings.yaml", **overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    from signals.lifecycle.train import run_train
    from signals.lifecycle.tune import run_tune

    root = tmp_path_factory.mktemp("tune-train")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        settings = small_settings(root)
        tune = run_tune(settings, symbols=SYMBOLS, start=START, end=END)
        train = run_train(settings, symbols=SYMBOLS, start=START, end=END)
        client = mlflow.MlflowClient()
        all_runs = client.search_runs([tune.experiment_id], max_results=1000)
        yield {"settings": settings, "tune": tune, "train": train, "client": client, "runs": all_runs, "root": root}


def test_run_tree_is_parent_window_trial(runs) -> None:
    tune = runs["tune"]
    by_step: dict[str, list] = {}
    for r in runs["runs"]:
        by_step.setdefault(r.data.tags.get("signals.step"), []).append(r)
    windows, trials = by_step["tune-window"], by_step["tune-trial"]
    assert len(windows) == len(tune.windows) >= 3
    assert all(w.data.tags["mlflow.parentRunId"] == tune.run_id for w in windows)
    window_ids = {w.info.run_id for w in windows}
    assert len(trials) == N_TRIALS * len(windows)
    assert all(t.data.tags["mlflow.parentRunId"] in window_ids for t in trials)
    for w in windows:
        assert w.info.status == "FINISHED"
        assert {"train_start", "train_end", "test_start", "test_end", "best.max_depth"} <= set(w.data.params)
        assert {"oos_log_loss", "oos_log_loss_raw", "oos_accuracy", "oos_brier", "oos_ece", "oos_ece_raw",
                "oos_skill_vs_prior", "baseline_prior_log_loss", "baseline_buy_hold_sharpe",
                "calibration_pool_rows"} <= set(w.data.metrics)
        assert w.data.params["calibration.method"] in ("identity", "temperature", "sigmoid", "isotonic")
    t = trials[0]
    assert {"val_log_loss", "pruned"} <= set(t.data.metrics) and "learning_rate" in t.data.params
    assert t.data.tags["pruned"] in ("true", "false")


def test_tune_parent_logs_aggregates_baselines_and_provenance(runs) -> None:
    tune, client = runs["tune"], runs["client"]
    parent = client.get_run(tune.run_id)
    m = parent.data.metrics
    for key in ("oos_log_loss", "oos_log_loss_raw", "oos_accuracy", "oos_brier", "oos_ece", "oos_ece_raw",
                "oos_skill_vs_prior", "oos_skill_vs_prior_lo", "oos_skill_vs_prior_hi", "oos_ic_pooled",
                "baseline_prior_log_loss", "baseline_always_up_accuracy", "baseline_buy_hold_sharpe",
                "mean_window_log_loss", "calibration_pool_rows"):
        assert np.isfinite(m[key]), key
    assert m["oos_skill_vs_prior_lo"] <= m["oos_skill_vs_prior"] <= m["oos_skill_vs_prior_hi"]
    assert m["oos_skill_vs_prior"] == pytest.approx(m["baseline_prior_log_loss"] - m["oos_log_loss"])
    assert parent.data.params["calibration.method"] in ("identity", "temperature", "sigmoid", "isotonic")
    assert "strategy Sharpe" in parent.data.params["tune.sharpe_definition"]
    assert 0.3 < m["oos_log_loss"] / np.log(3) < 1.5  # a sane 3-class log-loss
    p, tags = parent.data.params, parent.data.tags
    assert p["cfg.ml.prediction_horizon"] == "5" and p["cfg.walk_forward.train_months"] == "6"
    assert {f"final.{k}" for k in tune.final_params} <= set(p)
    assert tags["signals.feature_version"] and tags["signals.git_commit"]
    assert tags["signals.git_dirty"] in ("true", "false", "unknown")
    assert "synthetic" in tags["signals.data_synthetic_tables"]
    ds = parent.inputs.dataset_inputs[0]
    assert tags["signals.data_digest"].startswith(ds.dataset.digest)
    assert "fundamentals" in ds.dataset.source
    artifacts = {a.path for a in client.list_artifacts(tune.run_id)} | {
        a.path for a in client.list_artifacts(tune.run_id, "plots")} | {a.path for a in client.list_artifacts(tune.run_id, "config")}
    assert {"oos_predictions.parquet", "final_params.json", "calibration.json", "windows.json",
            "config/resolved_settings.yaml",
            "plots/window_metrics.png", "plots/cumulative_returns.png", "plots/confusion_matrix.png",
            "plots/reliability.png", "plots/feature_importance.png"} <= artifacts


def test_oos_predictions_artifact(runs) -> None:
    tune = runs["tune"]
    oos = pd.read_parquet(mlflow.artifacts.download_artifacts(tune.artifacts["oos_predictions"]))
    from signals.modeling.tuning.walk_forward import OOS_COLUMNS

    assert list(oos.columns) == list(OOS_COLUMNS)
    assert set(oos["symbol"]) == set(SYMBOLS)
    for cols in (["p_down", "p_flat", "p_up"], ["raw_down", "raw_flat", "raw_up"], ["prior_down", "prior_flat", "prior_up"]):
        assert np.allclose(oos[cols].sum(axis=1), 1.0)
    assert (oos["label_end"] > oos["date"]).all() and (oos["date"] >= oos["test_start"]).all()
    assert np.allclose(oos[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)
    assert oos["forward_return"].notna().all() and set(oos["y"]) <= {0, 1, 2}
    for w in tune.windows:
        rows = oos[oos["window"] == w["index"]]
        assert rows["date"].min() >= pd.Timestamp(w["test_start"]) and rows["date"].max() < pd.Timestamp(w["test_end"])
    # labels are consistent with the logged forward returns
    assert (oos.loc[oos["forward_return"] > 0.01, "y"] == 2).all()
    assert (oos.loc[oos["forward_return"] < -0.01, "y"] == 0).all()


def test_train_uses_latest_tune_params_and_logs_honest_holdout(runs) -> None:
    tune, train, client = runs["tune"], runs["train"], runs["client"]
    assert train.params_source == "latest_tune_run" and train.tune_run_id == tune.run_id
    # the tune run's params; n_estimators was its cap, the final fit early-stopped inside it
    assert {k: v for k, v in train.params.items() if k != "n_estimators"} == {
        k: v for k, v in tune.final_params.items() if k != "n_estimators"}
    assert 1 <= train.params["n_estimators"] <= tune.final_params["n_estimators"]
    run = client.get_run(train.run_id)
    p, tags, m = run.data.params, run.data.tags, run.data.metrics
    for key in ("train_start", "train_end", "holdout_start", "holdout_end", "n_train_rows"):
        assert p[key] == tags[key] == str(train.data_window[key])
    # the sample's VIX (2014-2019) never overlaps its bars: the one suspicious-data warning, in both runs
    for rid in (train.run_id, tune.run_id):
        assert client.get_run(rid).data.tags["signals.data_warnings"] == "1"
    warned = json.loads(mlflow.artifacts.load_text(f"runs:/{train.run_id}/data_warnings.json"))
    assert [(w["check"], w["symbol"]) for w in warned] == [("market_no_overlap", "VIX")]
    h = runs["settings"].ml.prediction_horizon
    holdout_start = pd.Timestamp(p["holdout_start"])
    # the last walk_forward.test_months (2) calendar months of the labelled data
    expected = pd.Timestamp(p["holdout_end"]) - pd.DateOffset(months=2) + pd.Timedelta(days=1)
    assert expected <= holdout_start < expected + pd.Timedelta(days=5)  # first trading day on/after
    # the evaluation model's rows end >= horizon trading days before the hold-out (purged)
    gap = pd.bdate_range(p["eval_fit_end"], holdout_start)
    assert len(gap) - 1 >= h
    assert pd.Timestamp(p["eval_fit_start"]) < pd.Timestamp(p["eval_stopping_start"]) < holdout_start
    for key in ("holdout_log_loss", "holdout_accuracy", "holdout_brier", "holdout_ece", "holdout_log_loss_raw",
                "holdout_ece_raw", "holdout_baseline_prior_log_loss", "holdout_skill_vs_prior",
                "holdout_skill_vs_prior_lo", "eval_calibration_pool_rows", "calibration_pool_rows", "n_rounds"):
        assert np.isfinite(m[key]), key
    # the evaluation model's calibrator only saw OOS rows labelled before the hold-out
    assert m["eval_calibration_pool_rows"] < m["calibration_pool_rows"]
    assert p["calibration.method"] in ("identity", "temperature", "sigmoid", "isotonic")
    assert p["calibration.source"].startswith(f"tune run {tune.run_id}")
    ho = pd.read_parquet(mlflow.artifacts.download_artifacts(train.artifacts["holdout_predictions"]))
    from signals.lifecycle.train import HOLDOUT_COLUMNS

    assert list(ho.columns) == list(HOLDOUT_COLUMNS)
    assert ho["date"].min() == holdout_start and ho["date"].max() == pd.Timestamp(p["holdout_end"])
    from signals.modeling import metrics as M

    assert M.log_loss(ho["y"].to_numpy(), ho[["p_down", "p_flat", "p_up"]].to_numpy()) == pytest.approx(
        m["holdout_log_loss"])
    plots = {a.path for a in client.list_artifacts(train.run_id, "plots")}
    assert {"plots/feature_importance.png", "plots/confusion_matrix.png", "plots/reliability.png"} <= plots


def test_logged_model_loads_and_predicts(runs) -> None:
    from signals.serving.pyfunc import load_predictor, load_reference

    train = runs["train"]
    assert train.model_uri.startswith("models:/")
    predictor = load_predictor(train.model_uri)
    ref = load_reference(train.model_uri)
    assert len(ref) == 200 and list(ref.columns) == predictor.feature_names
    out = predictor.predict_frame(ref.head(10))
    assert np.allclose(out[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)
    assert predictor.metadata["holdout_start"] == train.data_window["holdout_start"]
    # what the guard compares rows with: measured on every training row
    assert predictor.coverage is not None and predictor.coverage.n_rows == train.data_window["n_train_rows"]
    assert predictor.coverage.required and set(predictor.coverage.present_share) == set(predictor.feature_names)
    model = mlflow.pyfunc.load_model(train.model_uri)
    assert len(model.predict(ref.head(3))) == 3


def test_rerun_resumes_studies_and_reproduces(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same storage: every study is complete, nothing re-runs, same params and metrics."""
    from signals.lifecycle.tune import run_tune

    monkeypatch.chdir(runs["root"])
    again = run_tune(runs["settings"], symbols=SYMBOLS, start=START, end=END)
    assert again.final_params == runs["tune"].final_params
    assert again.metrics == pytest.approx(runs["tune"].metrics, nan_ok=True)
    client = runs["client"]
    windows = client.search_runs([again.experiment_id],
                                 filter_string=f"tags.`mlflow.parentRunId` = '{again.run_id}'")
    assert windows and all(w.data.metrics["n_trials_run"] == 0 for w in windows)
    assert all(w.data.metrics["n_trials_resumed"] == N_TRIALS for w in windows)


def test_fresh_storage_same_seed_same_result(runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed + same data, a fresh Optuna storage (every trial re-run) => same params and metrics."""
    from signals.lifecycle.tune import run_tune

    monkeypatch.chdir(runs["root"])
    fresh = run_tune(runs["settings"], symbols=SYMBOLS, start=START, end=END,
                     storage=f"sqlite:///{tmp_path / 'fresh-optuna.db'}")
    assert fresh.storage != runs["tune"].storage
    assert fresh.final_params == runs["tune"].final_params
    assert fresh.metrics == pytest.approx(runs["tune"].metrics, rel=1e-12, nan_ok=True)


def test_train_with_explicit_and_bad_tune_run(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.core.errors import SignalsError
    from signals.lifecycle.train import TuneRunError, run_train

    monkeypatch.chdir(runs["root"])
    train = runs["train"]
    with pytest.raises(TuneRunError, match="not a tune run") as exc:
        run_train(runs["settings"], symbols=SYMBOLS, start=START, end=END, tune_run_id=train.run_id)
    assert isinstance(exc.value, SignalsError)
    with pytest.raises(TuneRunError, match="not found"):
        run_train(runs["settings"], symbols=SYMBOLS, start=START, end=END, tune_run_id="0" * 32)


def test_entrypoint_main_validates_string_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    from entrypoints import train, tune

    for argv in (["--trials", "abc"], ["--jobs", "0"], ["--start", "yesterday-ish"],
                 ["--start", "2010-01-01", "--end", "2009-01-01"]):
        with pytest.raises(SystemExit) as exc:
            tune.main(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--trials must be an integer" in err and "--jobs must be >= 1" in err and "must be before" in err
    with pytest.raises(SystemExit):
        train.main(["--params", "[1, 2]"])
    with pytest.raises(SystemExit):
        train.main(["--params", json.dumps({"gamma": 1})])
    assert "unknown XGBoost" in capsys.readouterr().err


def test_train_is_reproducible(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.lifecycle.train import run_train

    monkeypatch.chdir(runs["root"])
    again = run_train(runs["settings"], symbols=SYMBOLS, start=START, end=END, tune_run_id=runs["tune"].run_id)
    assert again.params_source == "tune_run" and again.params == runs["train"].params
    assert again.metrics == pytest.approx(runs["train"].metrics, nan_ok=True)
    assert again.model_uri != runs["train"].model_uri


def _cli_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    env = {
        "SA_MLFLOW__TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",  # the module's store, own experiment
        "SA_MLFLOW__EXPERIMENT": "signals-cli-test",
        "SA_TUNING__STORAGE": f"sqlite:///{root / 'cli-optuna.db'}",
        "SA_FEATURES__CACHE_DIR": str(root / "features"),
        "SA_FEATURES__N_JOBS": "1",
        "SA_REDIS__ENABLED": "false",
        "SA_ML__MIN_TRAINING_SAMPLES": "50",
        "SA_ML__XGB_PARAMS__N_ESTIMATORS": "30",
        "SA_WALK_FORWARD__TRAIN_MONTHS": "6",
        "SA_WALK_FORWARD__TEST_MONTHS": "2",
        "SA_WALK_FORWARD__STEP_MONTHS": "2",
        "SA_TUNING__EARLY_STOPPING_ROUNDS": "5",
        "SA_MONITORING__REFERENCE_ROWS": "100",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_cli_tune_then_train(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from signals.cli import cli

    monkeypatch.chdir(runs["root"])
    _cli_env(monkeypatch, runs["root"])
    runner = CliRunner()
    res = runner.invoke(cli, ["tune", "-s", "AAPL", "--start", "2008-01-01", "--end", "2008-10-31", "--trials", "1"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "tune run " in res.output and "baseline_kind" in res.output and "final params" in res.output
    tune_id = res.output.split("tune run ")[1].split(":")[0]
    res = runner.invoke(cli, ["train", "-s", "AAPL", "--start", "2008-01-01", "--end", "2008-10-31"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"params from latest_tune_run {tune_id}" in res.output
    assert "model URI: models:/" in res.output and "hold-out, evaluation model" in res.output
    assert "class prior" in res.output and "calibration: " in res.output
    bad = runner.invoke(cli, ["tune", "--start", "not-a-date"])
    assert bad.exit_code == 2 and "ISO date" in bad.output
