"""Optuna tuning per window: search space, no lookahead, resume, pruning, determinism."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from signals.dataset import forward_returns, labelled
from signals.modeling import tuning as TU
from signals.modeling.model import MLPipeline
from signals.modeling.splits import Window, label_end_dates
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    X, close = make_panel(n_symbols=3, start="2018-01-01", end="2019-04-30", n_features=6, signal=0.01)
    y = MLPipeline(horizon=5).prepare_target(close)
    X, y, fwd = labelled(X, y, forward_returns(close, 5))
    return X, y, fwd


def _config(**kw) -> TU.TuneConfig:
    # one study per window, cold, median pruner: the mechanics these tests check; the cost
    # controls (warm start, retune policy, two fidelities, successive halving) have their own tests
    base = dict(horizon=5, train_months=6, test_months=2, step_months=3, n_trials=3, min_training_samples=50,
                early_stopping_rounds=10, storage=None, xgb_threads=1, pruner="median", fidelity_rows=1.0,
                full_every=1, warm_start_trials=0)
    base.update(kw)
    return TU.TuneConfig(**base)


def test_search_space_bounds() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        p = TU.suggest_params(trial)
        study.tell(trial, 0.0)
        assert 100 <= p["n_estimators"] <= 600 and isinstance(p["n_estimators"], int)
        assert 2 <= p["max_depth"] <= 8 and isinstance(p["max_depth"], int)
        assert 0.01 <= p["learning_rate"] <= 0.2
        assert 0.5 <= p["subsample"] <= 1.0 and 0.3 <= p["colsample_bytree"] <= 1.0
        assert 1 <= p["min_child_weight"] <= 300 and 0.1 <= p["reg_lambda"] <= 100 and 1e-3 <= p["reg_alpha"] <= 10
    for name in ("learning_rate", "min_child_weight", "reg_lambda", "reg_alpha"):  # scale parameters: log
        assert study.trials[0].distributions[name].log is True
    dist = study.trials[0].distributions["learning_rate"]
    assert dist.log is True and (dist.low, dist.high) == (0.01, 0.2)


def test_window_tuning_returns_early_stopped_best(data) -> None:
    X, y, _ = data
    res = TU.tune_window(X, y.to_numpy(), config=_config(), study_name="t-best")
    assert res.n_trials_total == 3 and res.n_trials_run == 3 and res.n_trials_resumed == 0
    assert set(res.best_params) == set(TU.SEARCH_SPACE)
    assert res.best_params["n_estimators"] == res.n_rounds < 500  # early stopping kept fewer rounds
    assert res.best_value > 0


def test_every_fit_sees_only_data_before_the_test_window(data, monkeypatch) -> None:
    """Tuning trials, the refit and the calibration: no row at/after the test start, and no
    fitted row whose label window reaches into the slice it is evaluated on or the test window."""
    X, y, fwd = data
    dates_all = X.index.get_level_values("date").to_numpy()
    symbols_all = X.index.get_level_values("symbol").to_numpy()
    label_end = pd.Series(label_end_dates(dates_all, symbols_all, 5), index=X.index)
    seen: list[tuple[pd.Index, pd.Index | None]] = []
    orig_train = MLPipeline.train

    def spy(self, features, target, **kw):
        ev = kw.get("eval_set")
        seen.append((features.index, ev[0].index if ev else None))
        return orig_train(self, features, target, **kw)

    monkeypatch.setattr(MLPipeline, "train", spy)
    orig_call = TU.TrialObjective.__call__

    def spy_trial(self, trial):  # trials fit on prebuilt matrices (tuning.reuse_matrix): record their rows
        seen.append((self.X_fit.index, self.X_val.index))
        return orig_call(self, trial)

    monkeypatch.setattr(TU.TrialObjective, "__call__", spy_trial)

    class Hooks(TU.WalkForwardHooks):
        def __init__(self) -> None:
            self.windows: list[tuple[Window, int]] = []

        def window_started(self, window, n_train, n_test, study_name):
            self.windows.append((window, len(seen)))
            return None

        def window_finished(self, result):
            self.ends.append(len(seen))

    hooks = Hooks()
    hooks.ends = []
    res = TU.run_walk_forward(X, y, fwd, config=_config(), hooks=hooks)
    assert len(res.windows) == len(hooks.windows) >= 2
    bounds = hooks.ends
    for (window, first), last in zip(hooks.windows, bounds):
        calls = seen[first:last]
        assert len(calls) == 3 + 1  # trials + the window's refit (its calibrator comes from earlier windows)
        for fit_index, eval_index in calls:
            fit_dates = fit_index.get_level_values("date")
            assert fit_dates.max() < window.test_start
            assert label_end.loc[fit_index].max() < window.test_start
            if eval_index is not None:  # tuning: validation slice is after the fit rows' labels
                ev_dates = eval_index.get_level_values("date")
                assert ev_dates.max() < window.test_start
                assert label_end.loc[fit_index].max() < ev_dates.min()
    # and the OOS rows are exactly the test windows' rows
    for w in res.windows:
        d = w.predictions["date"]
        assert d.min() >= w.window.test_start and d.max() < w.window.test_end


def test_interrupted_study_resumes_with_only_the_missing_trials(data, tmp_path) -> None:
    X, y, _ = data
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = _config(storage=storage, n_trials=4)
    calls: list[int] = []

    def crash_on_third(record: TU.TrialRecord) -> None:
        calls.append(record.number)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        TU.tune_window(X, y.to_numpy(), config=cfg, study_name="resume-me", on_trial=crash_on_third)
    done_before = len(TU.finished_trials(optuna.load_study(study_name="resume-me", storage=storage)))
    assert done_before == 2

    calls.clear()
    res = TU.tune_window(X, y.to_numpy(), config=cfg, study_name="resume-me", on_trial=calls.append)
    assert res.n_trials_resumed == 2 and res.n_trials_run == 2 and res.n_trials_total == 4
    assert len(calls) == 2
    again = TU.tune_window(X, y.to_numpy(), config=cfg, study_name="resume-me")
    assert again.n_trials_run == 0 and again.best_params == res.best_params


def test_pruned_trials_are_reported(data, monkeypatch) -> None:
    X, y, _ = data

    class PruneOdd(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return trial.number % 2 == 1

    def create(config, name, seed=None):
        return optuna.create_study(study_name=name, storage=config.storage, direction="minimize",
                                   sampler=optuna.samplers.TPESampler(seed=config.seed), pruner=PruneOdd())

    monkeypatch.setattr("signals.modeling.tuning.parallel.study_for", create)  # where tune_window looks it up
    records: list[TU.TrialRecord] = []
    res = TU.tune_window(X, y.to_numpy(), config=_config(n_trials=4, report_every=5), study_name="p",
                         on_trial=records.append)
    assert res.n_pruned == 2 and res.best_trial % 2 == 0
    by_number = {r.number: r for r in records}
    assert [by_number[i].pruned for i in range(4)] == [False, True, False, True]
    pruned = by_number[1]
    assert pruned.intermediate and pruned.intermediate[0][0] == 5 and pruned.value == pruned.intermediate[-1][1]
    assert by_number[0].n_rounds is not None and by_number[1].n_rounds is None


def test_pruning_callback_reports_every_k_rounds() -> None:
    class FakeTrial:
        def __init__(self) -> None:
            self.reports: list[tuple[int, float]] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append((step, value))

        def should_prune(self) -> bool:
            return len(self.reports) >= 3

    trial = FakeTrial()
    cb = TU.make_pruning_callback(trial, report_every=4)
    log = {"validation": {"mlogloss": []}}
    with pytest.raises(optuna.TrialPruned):
        for epoch in range(100):
            log["validation"]["mlogloss"].append(1.0 - epoch / 1000)
            cb.after_iteration(None, epoch, log)
    assert [s for s, _ in trial.reports] == [4, 8, 12]
    assert trial.reports[0][1] == pytest.approx(1.0 - 3 / 1000)


def test_same_seed_same_data_same_result(data) -> None:
    X, y, fwd = data
    a = TU.run_walk_forward(X, y, fwd, config=_config())
    b = TU.run_walk_forward(X, y, fwd, config=_config())
    assert a.final_params == b.final_params
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    c = TU.run_walk_forward(X, y, fwd, config=_config(seed=7))
    assert c.final_params != a.final_params


def test_final_params_are_the_best_pooled_over_recent_windows(data) -> None:
    X, y, fwd = data
    res = TU.run_walk_forward(X, y, fwd, config=_config(final_params_windows=3))
    recent = res.windows[-3:]
    report = res.final_params_report
    candidates = {str(w.window.index): w.tuning.trial_params for w in recent}
    assert set(report["pooled_val_log_loss"]) <= set(candidates)
    best = min(report["pooled_val_log_loss"], key=report["pooled_val_log_loss"].get)
    assert str(res.final_params_window) == best and res.final_params == candidates[best]
    # every candidate was scored on every recent window's validation slice; pooled = row-weighted mean
    table = pd.DataFrame(report["table"])
    assert len(table) == len(report["pooled_val_log_loss"]) * 3
    for cand, rows in table.groupby("candidate_window"):
        pooled = (rows["val_log_loss"] * rows["rows"]).sum() / rows["rows"].sum()
        assert pooled == pytest.approx(report["pooled_val_log_loss"][str(cand)])
    # n_estimators stays the trial's cap (the final fit early-stops), not the window's stopped rounds
    assert res.final_params["n_estimators"] >= res.windows[int(best) - res.windows[0].window.index].tuning.n_rounds


def test_small_windows_are_skipped_not_fatal(data) -> None:
    X, y, fwd = data
    # drop most rows of the first training window so it falls below min_training_samples
    d = X.index.get_level_values("date")
    keep = ~((d < pd.Timestamp("2018-05-01")) & (X.index.get_level_values("symbol") != "S0"))
    res = TU.run_walk_forward(X[keep], y[keep], fwd[keep], config=_config(min_training_samples=200))
    assert res.skipped and res.skipped[0][0].index == 0
    assert all(w.window.index != 0 for w in res.windows)
    with pytest.raises(TU.InsufficientDataError):
        TU.run_walk_forward(X, y, fwd, config=_config(min_training_samples=10_000))


def test_study_name_depends_on_window_data_and_config() -> None:
    w = Window(2, pd.Timestamp("2018-01-01"), pd.Timestamp("2018-07-01"), pd.Timestamp("2018-07-01"),
               pd.Timestamp("2018-09-01"))
    cfg = _config()
    a = TU.study_name_for("s", w, "digest-a", cfg)
    assert a == TU.study_name_for("s", w, "digest-a", cfg)
    assert a.startswith("s-w002-2018-07-01-")
    assert a != TU.study_name_for("s", w, "digest-b", cfg)
    assert a != TU.study_name_for("s", w, "digest-a", _config(early_stopping_rounds=11))
    assert a == TU.study_name_for("s", w, "digest-a", _config(n_trials=50, n_jobs=2))  # more trials = resume


def test_stitching_keeps_latest_window() -> None:
    d = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"])
    pred = pd.DataFrame({"symbol": "A", "date": d, "window": [0, 0, 1, 1], "y": [0, 1, 2, 2],
                         "p_down": 0.2, "p_flat": 0.3, "p_up": 0.5, "forward_return": 0.01})
    st = TU.stitch_predictions(pred)
    assert st["window"].tolist() == [0, 1, 1] and st["y"].tolist() == [0, 2, 2]
