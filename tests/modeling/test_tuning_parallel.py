"""Several processes on one Optuna study per window (``tuning.workers``), on a real PostgreSQL
Optuna storage and a SQLite MLflow store: no trial lost or duplicated, one nested MLflow run per
trial under its window run, loud worker failures, clear storage errors."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest

from signals.modeling.tuning.objective import finished_trials
from tests.conftest import REPO_ROOT, fresh_pg_database
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.integration

N_TRIALS = 6


@pytest.fixture
def pg_optuna_url():
    """A fresh PostgreSQL database for this test's Optuna storage, dropped afterwards."""
    with fresh_pg_database("sig_optuna") as url:
        yield url


def _data():
    from signals.dataset import build_training_data

    X, close = make_panel(n_symbols=2, start="2018-01-01", end="2018-11-30", n_features=5)
    return build_training_data(X, close, horizon=5, up_threshold=0.01, down_threshold=-0.01, symbols=["S0", "S1"],
                               source={"provider": "synthetic-test", "synthetic": "all tables"})


def _settings(workdir: Path, storage: str, **tuning):
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}", "experiment": "signals-workers"},
        redis={"enabled": False},
        ml={"min_training_samples": 50},
        walk_forward={"train_months": 4, "test_months": 2, "step_months": 2},
        # every window a full single-fidelity study: the quota mechanics under test
        tuning={"n_trials": N_TRIALS, "early_stopping_rounds": 5, "storage": storage, "full_every": 1,
                "fidelity_rows": 1.0, **tuning},
    )


def test_workers_share_each_window_study_and_nest_every_trial(workdir: Path, pg_optuna_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.lifecycle.tune import TAG_TUNE_WORKER, tune_with_tracking

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = _settings(workdir, pg_optuna_url, workers=2)
    res = tune_with_tracking(settings, _data(), max_windows=2)
    assert len(res.windows) == 2

    client = mlflow.MlflowClient()
    runs = client.search_runs([res.experiment_id], max_results=1000)
    assert client.get_run(res.run_id).data.params["tune.workers"] == "2"
    windows = {r.info.run_id: r for r in runs if r.data.tags.get("signals.step") == "tune-window"}
    trials = [r for r in runs if r.data.tags.get("signals.step") == "tune-trial"]
    assert len(windows) == 2 and {w.data.tags["mlflow.parentRunId"] for w in windows.values()} == {res.run_id}
    # no orphan trial runs: every trial run hangs under one of this tune's window runs
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} <= set(windows)
    assert len(trials) == N_TRIALS * len(windows)

    for wid, w in windows.items():
        assert w.info.status == "FINISHED" and w.data.metrics["n_trials_run"] == N_TRIALS
        study = optuna.load_study(study_name=w.data.tags["optuna.study_name"], storage=pg_optuna_url)
        states = Counter(t.state for t in study.get_trials(deepcopy=False))
        assert sum(states.values()) == N_TRIALS, states  # exactly n_trials, nothing running or failed
        assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
        numbers = sorted(t.number for t in study.trials)
        assert numbers == list(range(N_TRIALS))  # distinct trial numbers
        mine = [t for t in trials if t.data.tags["mlflow.parentRunId"] == wid]
        logged = Counter(int(t.data.tags["optuna.trial_number"]) for t in mine)
        assert logged == Counter(numbers), "each trial number needs exactly one MLflow run under its window"
        assert all(t.info.status == "FINISHED" and t.data.tags["signals.window"] == w.data.tags["signals.window"]
                   for t in mine)
        # both processes ran their fixed quota (6 trials over 2 processes: 3 + 3)
        assert Counter(t.data.tags[TAG_TUNE_WORKER] for t in mine) == {"0": 3, "1": 3}
        # the logged score is the study's value of that trial
        by_number = {t.number: t for t in study.trials}
        for t in mine:
            st = by_number[int(t.data.tags["optuna.trial_number"])]
            if st.state == optuna.trial.TrialState.COMPLETE:
                assert t.data.metrics["val_log_loss"] == pytest.approx(st.value)
    assert mlflow.active_run() is None


class FailingSink:
    """A worker trial sink whose callback raises: the worker's trial fails inside the process."""

    def __call__(self, worker: int):
        def on_trial(record) -> None:
            raise RuntimeError(f"boom in worker {worker} at trial {record.number}")

        return on_trial


def test_a_failing_worker_fails_the_window_loudly(pg_optuna_url: str) -> None:
    from signals.modeling import tuning as TU
    from signals.modeling.tuning.objective import TuneWorkerError

    data = _data()
    cfg = TU.TuneConfig(horizon=5, n_trials=4, min_training_samples=50, early_stopping_rounds=5,
                        storage=pg_optuna_url, xgb_threads=1, workers=2)
    seen: list[int] = []
    with pytest.raises(TuneWorkerError, match=r"worker 1 .*failed on study 'fails'.*boom in worker 1"):
        TU.tune_window(data.features, data.y.to_numpy(), config=cfg, study_name="fails",
                       on_trial=lambda r: seen.append(r.number), worker_sink=FailingSink())
    study = optuna.load_study(study_name="fails", storage=pg_optuna_url)
    states = Counter(t.state for t in study.trials)
    assert states[optuna.trial.TrialState.FAIL] == 1  # the worker's trial, recorded as failed
    assert optuna.trial.TrialState.RUNNING not in states  # everyone stopped cleanly
    assert len(seen) <= 2  # the coordinator stopped after its current trial, within its quota


def test_workers_need_a_shared_storage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from signals.modeling import tuning as TU
    from signals.modeling.tuning.objective import TuneWorkerError
    from signals.modeling.tuning.parallel import TuneWorkerPool, split_quotas

    with pytest.raises(TuneWorkerError, match="needs a shared Optuna storage.*postgresql://"):
        TU.TuneConfig(storage=None, workers=2)
    with pytest.raises(TuneWorkerError, match="in-memory SQLite"):
        TU.TuneConfig(storage="sqlite:///:memory:", workers=3)
    assert TU.TuneConfig(storage=None, workers=1).workers == 1
    with caplog.at_level(logging.WARNING, logger="signals.modeling.tuning.parallel"):
        with TuneWorkerPool(1, f"sqlite:///{tmp_path / 'optuna.db'}"):  # no task: no process is started
            pass
    assert "PostgreSQL is the intended storage" in caplog.text
    assert split_quotas(7, 3) == [3, 2, 2] and split_quotas(1, 3) == [1, 0, 0] and split_quotas(0, 2) == [0, 0]


def test_workers_option_reaches_the_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from signals.cli import cli
    from signals.lifecycle.tune import tune_config

    settings = _settings(tmp_path, "sqlite:///x.db", workers=3)
    assert tune_config(settings).workers == 3 and tune_config(settings, workers=1).workers == 1
    out = CliRunner().invoke(cli, ["tune", "--help"])
    assert "--workers" in out.output


@pytest.mark.slow
def test_the_walk_forward_runs_its_trials_on_a_dask_cluster(workdir: Path, pg_optuna_url: str, dask_cluster: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``compute.address``: every window's trials (full, then short and warm-started) are tasks on
    the cluster; each finished trial is one run under its window run, none lost, none twice."""
    from signals.lifecycle.tune import TAG_TUNE_WORKER, tune_with_tracking

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = _settings(workdir, pg_optuna_url, full_every=2, short_trials=2, warm_start_trials=2)
    settings = settings.model_copy(update={"compute": settings.compute.model_copy(update={"address": dask_cluster})})
    res = tune_with_tracking(settings, _data(), max_windows=2)
    client = mlflow.MlflowClient()
    assert client.get_run(res.run_id).data.params["tune.dask_workers"] == "2"
    runs = client.search_runs([res.experiment_id], max_results=1000)
    windows = {r.info.run_id: r for r in runs if r.data.tags.get("signals.step") == "tune-window"}
    trials = [r for r in runs if r.data.tags.get("signals.step") == "tune-trial"]
    assert len(windows) == 2
    targets = sorted(int(w.data.metrics["n_trials_target"]) for w in windows.values())
    assert targets == [2, N_TRIALS]
    for wid, w in windows.items():
        study = optuna.load_study(study_name=w.data.tags["optuna.study_name"], storage=pg_optuna_url)
        numbers = sorted(t.number for t in finished_trials(study))
        assert len(numbers) == int(w.data.metrics["n_trials_target"])
        mine = [t for t in trials if t.data.tags["mlflow.parentRunId"] == wid]
        assert Counter(int(t.data.tags["optuna.trial_number"]) for t in mine) == Counter(numbers)
        assert all(t.data.tags[TAG_TUNE_WORKER] != "0" for t in mine)  # all ran as cluster tasks
    warm = [w for w in windows.values() if int(w.data.metrics["n_trials_target"]) == 2]
    assert warm[0].data.metrics["n_warm_started"] == 2
