"""Parallel Optuna trials (tuning.n_jobs=2) keep every trial run nested under its window run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mlflow
import pytest

from tests.conftest import REPO_ROOT
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.integration


def test_parallel_trials_stay_nested(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.dataset import build_training_data
    from signals.lifecycle.tune import tune_with_tracking
    from signals.settings.model import load_settings

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        redis={"enabled": False},
        ml={"min_training_samples": 50},
        walk_forward={"train_months": 4, "test_months": 2, "step_months": 2},
        tuning={"n_trials": 6, "n_jobs": 2, "early_stopping_rounds": 5},
    )
    X, close = make_panel(n_symbols=2, start="2018-01-01", end="2018-11-30", n_features=5)
    data = build_training_data(X, close, horizon=5, up_threshold=0.01, down_threshold=-0.01, symbols=["S0", "S1"],
                               source={"provider": "synthetic-test", "synthetic": "all tables"})
    res = tune_with_tracking(settings, data)
    assert len(res.windows) >= 2

    client = mlflow.MlflowClient()
    runs = client.search_runs([res.experiment_id], max_results=1000)
    windows = {r.info.run_id: r for r in runs if r.data.tags.get("signals.step") == "tune-window"}
    trials = [r for r in runs if r.data.tags.get("signals.step") == "tune-trial"]
    assert {w.data.tags["mlflow.parentRunId"] for w in windows.values()} == {res.run_id}
    # every trial's parent is a window run of this tune run, and it is the window it says it is
    per_window = Counter()
    for t in trials:
        parent = t.data.tags["mlflow.parentRunId"]
        assert parent in windows, f"trial {t.info.run_name} is not nested under a window run"
        assert t.data.tags["signals.window"] == windows[parent].data.tags["signals.window"]
        assert t.info.status == "FINISHED"
        per_window[parent] += 1
    # a full study every tuning.full_every windows, short warm-started ones between (their
    # enqueued trials run first, one at a time; the rest on both threads)
    targets = {wid: int(w.data.metrics["n_trials_target"]) for wid, w in windows.items()}
    assert sorted(set(targets.values())) == [2, 6]
    assert per_window == Counter(targets)
    # the trial numbers of each window are exactly 0..target-1 (none lost, none duplicated across threads)
    for wid in windows:
        numbers = sorted(int(t.data.tags["optuna.trial_number"]) for t in trials if t.data.tags["mlflow.parentRunId"] == wid)
        assert numbers == list(range(targets[wid]))
    # nothing leaked onto MLflow's fluent run stack
    assert mlflow.active_run() is None
