"""A window's trials on a real 2-worker Dask cluster, against a PostgreSQL Optuna storage and a
SQLite MLflow store: no trial lost or run twice, each one exactly one MLflow run nested under its
window run; storages the workers cannot share are refused up front."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest

from signals.modeling.tuning.dask_trials import dask_storage_problem, run_trials_on_dask, split_tasks
from signals.modeling.tuning.objective import TrialObjective, TuneConfig, TuneWorkerError, create_study, finished_trials
from tests.conftest import fresh_pg_database
from tests.modeling.test_model import make_panel

N_TRIALS = 6


def _objective(storage: str) -> TrialObjective:
    from signals.dataset import build_training_data
    from signals.modeling.splits import frame_holdout_split

    X, close = make_panel(n_symbols=2, start="2018-01-01", end="2018-11-30", n_features=5)
    data = build_training_data(X, close, horizon=5, up_threshold=0.01, down_threshold=-0.01, symbols=["S0", "S1"],
                               source={"provider": "synthetic-test", "synthetic": "all tables"})
    config = TuneConfig(n_trials=N_TRIALS, early_stopping_rounds=5, min_training_samples=50, storage=storage)
    X, y = data.features, data.y.to_numpy()
    fit, val, _ = frame_holdout_split(X, fraction=config.validation_fraction, horizon=config.horizon)
    return TrialObjective(X.iloc[fit], y[fit], X.iloc[val], y[val], config, threads=1)


def test_split_tasks_is_exact() -> None:
    assert split_tasks(7, 1) == [1] * 7 and split_tasks(7, 3) == [3, 3, 1] and split_tasks(0, 2) == []


@pytest.mark.parametrize("storage", [None, "sqlite:///optuna.db", "sqlite:///:memory:", "mysql://u@db/optuna"])
def test_storages_the_workers_cannot_share_are_refused(storage: str | None) -> None:
    problem = dask_storage_problem(storage)
    assert problem is not None and "PostgreSQL" in problem and "tuning.storage" in problem
    with pytest.raises(TuneWorkerError, match="need an Optuna storage on PostgreSQL"):
        run_trials_on_dask(object(), "study", storage or "", _objective("postgresql://u@db/x"), 2)


def test_postgresql_is_accepted() -> None:
    assert dask_storage_problem("postgresql://u@db:5432/optuna") is None
    assert dask_storage_problem("postgresql+psycopg://u@db:5432/optuna") is None


@pytest.mark.integration
@pytest.mark.slow  # 25-50 s here: each worker imports MLflow and opens the store before its first trial
def test_trials_on_dask_are_all_run_once_and_nested_under_the_window(dask_cluster: str, workdir: Path) -> None:
    from signals.adapters.dask_compute import client_for
    from signals.lifecycle.tune import TAG_TUNE_WORKER, MlflowTrialSink

    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    exp_id = client.create_experiment("signals-dask", artifact_location=(workdir / "mlruns").as_uri())
    window_run = client.create_run(exp_id, run_name="window-000").info.run_id
    with fresh_pg_database("sig_optuna_dask") as storage:
        objective = _objective(storage)
        study_name = "signals-dask-w000"
        create_study(storage, study_name, objective.config.seed)  # the coordinator's part
        sink = MlflowTrialSink(tracking, exp_id, window_run, window=0)
        numbers = run_trials_on_dask(client_for(dask_cluster), study_name, storage, objective, N_TRIALS, sink=sink)

        assert sorted(numbers) == list(range(N_TRIALS))
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert len(finished_trials(study)) == len(study.trials) == N_TRIALS
    trials = client.search_runs([exp_id], "tags.`signals.step` = 'tune-trial'", max_results=100)
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {window_run}
    assert Counter(int(t.data.tags["optuna.trial_number"]) for t in trials) == Counter(range(N_TRIALS))
    assert Counter(t.data.tags[TAG_TUNE_WORKER] for t in trials) == Counter(str(k) for k in range(1, N_TRIALS + 1))
    assert all(t.info.status == "FINISHED" for t in trials)


class FailingSink:
    """A trial reporter that cannot log (a tracking server that refuses the host)."""

    def __call__(self, index: int):
        def report(record):
            raise ConnectionError("tracking server unreachable from this worker")

        return report


@pytest.mark.integration
def test_a_failing_task_is_a_tuning_error_naming_the_study(dask_cluster: str) -> None:
    from signals.adapters.dask_compute import client_for

    with fresh_pg_database("sig_optuna_dask") as storage:
        objective = _objective(storage)
        create_study(storage, "signals-dask-fails", objective.config.seed)
        with pytest.raises(TuneWorkerError, match=r"tuning task \d+ of 3 on the Dask cluster failed on study "
                                                  r"'signals-dask-fails': ConnectionError"):
            run_trials_on_dask(client_for(dask_cluster), "signals-dask-fails", storage, objective, 3, sink=FailingSink())
