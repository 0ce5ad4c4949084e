"""The tuning cost controls: reused matrices, warm start, the retune policy, two fidelities, heartbeats.

Each control must change what a study costs, never what a trial means: the same params on the
same rows score the same with or without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest

from signals.adapters.tracking import TrialRunLogger
from signals.dataset import forward_returns, labelled
from signals.modeling import tuning as TU
from signals.modeling.model import MLPipeline
from signals.modeling.tuning.objective import params_key, study_for, symbol_subsample
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[2]


def _panel(n_symbols: int, end: str = "2019-04-30"):
    X, close = make_panel(n_symbols=n_symbols, start="2018-01-01", end=end, n_features=5, signal=0.01)
    y = MLPipeline(horizon=5).prepare_target(close)
    return labelled(X, y, forward_returns(close, 5))


@pytest.fixture(scope="module")
def small():
    return _panel(3)


@pytest.fixture(scope="module")
def wide():
    return _panel(40, end="2018-10-31")


def _config(**kw) -> TU.TuneConfig:
    base = dict(horizon=5, train_months=6, test_months=2, step_months=3, n_trials=4, min_training_samples=50,
                early_stopping_rounds=10, storage=None, xgb_threads=1, pruner="none", fidelity_rows=1.0,
                full_every=1, warm_start_trials=0)
    base.update(kw)
    return TU.TuneConfig(**base)


def test_retune_policy_full_every_k_short_between() -> None:
    cfg = _config(n_trials=40, full_every=4, short_trials=3)
    assert [cfg.trials_for(k) for k in range(9)] == [40, 3, 3, 3, 40, 3, 3, 3, 40]
    assert [_config(n_trials=40, full_every=1).trials_for(k) for k in range(3)] == [40, 40, 40]
    assert _config(n_trials=2, full_every=4, short_trials=3).trials_for(1) == 2  # never more than a full study


def test_two_fidelity_needs_enough_trials_and_symbols() -> None:
    cfg = _config(fidelity_rows=0.25, promote_top=3)
    assert cfg.two_fidelity(40, 200) and cfg.two_fidelity(4, 40)
    assert not cfg.two_fidelity(3, 200)  # nothing to rank: every trial would be promoted
    assert not cfg.two_fidelity(40, 20)  # a 5-symbol ranking is noise
    assert not _config(fidelity_rows=1.0).two_fidelity(40, 200)
    with pytest.raises(ValueError, match="fidelity_rows"):
        _config(fidelity_rows=0.0)
    with pytest.raises(ValueError, match="pruner"):
        _config(pruner="bohb")


def test_symbol_subsample_takes_whole_symbols_deterministically(wide) -> None:
    X, _, _ = wide
    a = symbol_subsample(X.index, 0.25, seed=3)
    assert np.array_equal(a, symbol_subsample(X.index, 0.25, seed=3))
    chosen = set(X.index.get_level_values("symbol")[a])
    assert len(chosen) == 10
    # every row of a chosen symbol, none of the others
    assert len(a) == int(X.index.get_level_values("symbol").isin(chosen).sum())
    assert not np.array_equal(a, symbol_subsample(X.index, 0.25, seed=4))


def test_reused_matrices_score_trials_as_a_fresh_fit_does(small) -> None:
    X, y, _ = small
    fresh = TU.tune_window(X, y.to_numpy(), config=_config(reuse_matrix=False), study_name="same")
    reused = TU.tune_window(X, y.to_numpy(), config=_config(reuse_matrix=True), study_name="same")
    assert reused.trial_params == fresh.trial_params and reused.n_rounds == fresh.n_rounds
    assert reused.best_value == pytest.approx(fresh.best_value, abs=1e-6)
    assert reused.full_values.keys() == fresh.full_values.keys()
    for key, (value, rounds) in fresh.full_values.items():
        assert reused.full_values[key][0] == pytest.approx(value, abs=1e-6) and reused.full_values[key][1] == rounds


def test_warm_start_runs_the_previous_best_first_and_not_twice(small, tmp_path: Path) -> None:
    X, y, _ = small
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = TU.tune_window(X, y.to_numpy(), config=_config(storage=storage), study_name="w1")
    cfg = _config(storage=storage, warm_start_trials=2)
    second = TU.tune_window(X, y.to_numpy(), config=cfg, study_name="w2", warm_start=first.top_trials)
    assert second.n_warm_started == 2 and len(first.top_trials) >= 2
    study = optuna.load_study(study_name="w2", storage=storage)
    ran = [params_key(t.params) for t in sorted(study.trials, key=lambda t: t.number)]
    assert ran[:2] == [params_key(p) for p in first.top_trials[:2]]
    # a rerun (resume) with the same warm start enqueues nothing new: the study already has them
    again = TU.tune_window(X, y.to_numpy(), config=cfg, study_name="w2", warm_start=first.top_trials)
    assert again.n_trials_run == 0 and len(optuna.load_study(study_name="w2", storage=storage).trials) == 4


def test_two_fidelity_ranks_on_a_subsample_and_promotes_the_best(wide, tmp_path: Path) -> None:
    X, y, _ = wide
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    exp = client.create_experiment("fidelity")
    window_run = client.create_run(exp).info.run_id
    logger = TrialRunLogger(client, exp, window_run, window=0, background=False)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = _config(storage=storage, n_trials=6, fidelity_rows=0.25, promote_top=2)
    res = TU.tune_window(X, y.to_numpy(), config=cfg, study_name="tf", on_trial=logger)
    assert res.n_low_fidelity == 6 and res.n_trials_total == 8
    low = optuna.load_study(study_name="tf-lo25", storage=storage)
    full = optuna.load_study(study_name="tf", storage=storage)
    best_low = sorted((t for t in low.trials if t.value is not None), key=lambda t: t.value)[:2]
    assert {params_key(t.params) for t in full.trials} == {params_key(t.params) for t in best_low}
    assert res.best_value == min(t.value for t in full.trials)  # the result is a full-row score
    # each trial one run, the subsample ones marked, with the share of rows they saw
    runs = client.search_runs([exp], filter_string="tags.`signals.step` = 'tune-trial'")
    assert len(runs) == 8
    lo = [r for r in runs if r.data.tags.get("optuna.study_role") == "subsample"]
    assert len(lo) == 6 and all(r.info.run_name.endswith("-subsample") for r in lo)
    assert all(0.2 < float(r.data.tags["fidelity"]) < 0.3 for r in lo)
    assert {r.data.tags["fidelity"] for r in runs if r not in lo} == {"1.000"}


def test_walk_forward_retunes_short_and_warm_between_full_studies(small) -> None:
    X, y, fwd = small
    cfg = _config(n_trials=4, full_every=2, short_trials=2, warm_start_trials=2, final_params_windows=4)
    res = TU.run_walk_forward(X, y, fwd, config=cfg)
    assert len(res.windows) >= 3
    targets = [w.tuning.n_trials_target for w in res.windows]
    assert targets == [4 if k % 2 == 0 else 2 for k in range(len(targets))]
    assert [w.tuning.n_warm_started for w in res.windows] == [0] + [2] * (len(targets) - 1)
    # the final choice reuses the scores of candidates that a window's study already ran on every row
    report = res.final_params_report
    assert report["n_reused"] > 0 and report["n_fits"] + report["n_reused"] == len(report["table"])
    for row in report["table"]:
        if row["reused"]:
            w = next(w for w in res.windows if w.window.index == row["scored_on_window"])
            assert row["val_log_loss"] in [v for v, _ in w.tuning.full_values.values()]


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_successive_halving_prunes_and_keeps_a_complete_best(small, pruner: str) -> None:
    X, y, _ = small
    res = TU.tune_window(X, y.to_numpy(), config=_config(n_trials=12, pruner=pruner, report_every=5,
                                                         early_stopping_rounds=50), study_name="sh")
    assert res.n_pruned > 0 and res.n_trials_total == 12 and np.isfinite(res.best_value)


_KILLED_WORKER = """
import sys, time
from signals.modeling.tuning.objective import TuneConfig, study_for
cfg = TuneConfig(storage=sys.argv[1], heartbeat_interval=1, heartbeat_grace=2)
study = study_for(cfg, "hb-study")
def objective(trial):
    trial.suggest_float("x", 0.0, 1.0)
    time.sleep(120)  # killed long before
    return 0.0
study.optimize(objective, n_trials=1)
"""


@pytest.mark.integration
def test_a_killed_process_trial_is_failed_and_retried_with_its_params(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WORKER, storage], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                trials = optuna.load_study(study_name="hb-study", storage=storage).trials
            except KeyError:
                trials = []
            if trials and trials[0].state == optuna.trial.TrialState.RUNNING:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the worker never started its trial")
        time.sleep(1.5)  # at least one heartbeat written, the params suggested
        trials = optuna.load_study(study_name="hb-study", storage=storage).trials
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    x = trials[0].params["x"]
    time.sleep(2.5)  # past the grace period
    cfg = TU.TuneConfig(storage=storage, heartbeat_interval=1, heartbeat_grace=2)
    study = study_for(cfg, "hb-study")
    seen: list[float] = []
    study.optimize(lambda t: seen.append(t.suggest_float("x", 0.0, 1.0)) or 0.5, n_trials=1)
    states = {t.number: t.state for t in study.trials}
    assert states[0] == optuna.trial.TrialState.FAIL  # no longer RUNNING forever
    assert seen == [x]  # the retry ran the dead trial's params
    assert list(states.values()).count(optuna.trial.TrialState.COMPLETE) == 1
