"""The lifecycle against MLflow on PostgreSQL: through ``mlflow server`` (HTTP tracking, proxied
artifacts) and directly with a ``postgresql://`` tracking URI.

tune -> train -> register -> promote (gate, auto) on a small slice of the sample data (through the
server: tuned by 2 processes per window on a PostgreSQL Optuna storage), then
everything is read back through a fresh ``MlflowClient``: the tune run tree (parent, window
children, trial grandchildren), the ``champion`` alias, and the served model loaded from
``models:/<name>@champion``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, free_port, fresh_pg_database, wait_healthy
from tests.modeling.test_model import single_thread_xgboost  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "IBM"]
START, END = "2008-01-01", "2009-06-30"
N_TRIALS = 2
VENV_BIN = Path(sys.executable).parent


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started: its own process group (uvicorn and its worker)."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _settings(root: Path, tracking_uri: str, optuna_storage: str | None = None, workers: int = 1,
              artifact_location: str | None = None):
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": tracking_uri, "experiment": "signals-pg", "model_name": "signals-xgb-pg",
                "artifact_location": artifact_location},
        features={"cache_dir": str(root / "features"), "n_jobs": 1},
        redis={"enabled": False},
        ml={"min_training_samples": 100, "xgb_params": {"n_estimators": 40, "max_depth": 3}},
        walk_forward={"train_months": 6, "test_months": 2, "step_months": 3},
        # every window a full study (the retune policy has its own tests): equal quotas per process
        tuning={"n_trials": N_TRIALS, "early_stopping_rounds": 10, "workers": workers, "full_every": 1,
                "storage": optuna_storage or f"sqlite:///{root / 'optuna.db'}"},
        monitoring={"reference_rows": 200},
        registry={"gate_resamples": 200},
    )


def _lifecycle(settings) -> dict:
    """tune -> train -> register -> promote --auto; returns what each step produced."""
    from signals.lifecycle.promote import run_promote
    from signals.lifecycle.register import run_register
    from signals.lifecycle.train import run_train
    from signals.lifecycle.tune import run_tune

    tune = run_tune(settings, symbols=SYMBOLS, start=START, end=END)
    train = run_train(settings, symbols=SYMBOLS, start=START, end=END)
    version = run_register(settings, train.run_id, model_uri=train.model_uri, metrics=train.metrics)
    # the gate runs and records its verdict; a 2-symbol, 18-month model seldom beats its class prior, and
    # this test is about the server path, so the promotion is forced (the override is recorded too)
    promoted = run_promote(settings, auto=True, force=True, reason="test: promote through the server")
    return {"tune": tune, "train": train, "version": version, "promote": promoted}


def _check_readback(tracking_uri: str, settings, out: dict, workers: int = 1) -> None:
    """A fresh client (and fresh global URIs) sees the run tree, the champion, and a servable model."""
    from signals.serving.pyfunc import load_reference

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    tune, train, version, promoted = out["tune"], out["train"], out["version"], out["promote"]

    parent = client.get_run(tune.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["signals.step"] == "tune"
    assert np.isfinite(parent.data.metrics["oos_log_loss"])
    runs = client.search_runs([tune.experiment_id], max_results=1000)
    windows = {r.info.run_id: r for r in runs if r.data.tags.get("signals.step") == "tune-window"}
    trials = [r for r in runs if r.data.tags.get("signals.step") == "tune-trial"]
    assert len(windows) == len(tune.windows) >= 2
    assert {w.data.tags["mlflow.parentRunId"] for w in windows.values()} == {tune.run_id}
    per_window = Counter(t.data.tags["mlflow.parentRunId"] for t in trials)
    assert per_window == {wid: N_TRIALS for wid in windows}
    for wid in windows:
        numbers = sorted(int(t.data.tags["optuna.trial_number"]) for t in trials
                         if t.data.tags["mlflow.parentRunId"] == wid)
        assert numbers == list(range(N_TRIALS))
    if workers > 1:  # the worker processes logged their share through the server too
        from signals.lifecycle.tune import TAG_TUNE_WORKER

        assert Counter(t.data.tags[TAG_TUNE_WORKER] for t in trials) == {
            str(k): len(windows) * N_TRIALS // workers for k in range(workers)}
    # artifacts went through the server / artifact store and come back
    arts = {a.path for a in client.list_artifacts(tune.run_id)}
    assert {"oos_predictions.parquet", "final_params.json"} <= arts

    assert client.get_run(train.run_id).data.tags["signals.step"] == "train"
    assert promoted.promoted and promoted.champion_after == version.version_id
    assert promoted.gate.baseline == "class_prior"
    assert client.get_model_version(settings.mlflow.model_name, version.version_id).tags["gate.decision"] in (
        "promote", "keep", "insufficient_data")
    # the gate's decision is recorded as a run too (a failure there is only a warning: check it)
    assert promoted.mlflow_run_id and client.get_run(promoted.mlflow_run_id).data.tags["signals.step"] == "promote"
    name = settings.mlflow.model_name
    champ = client.get_model_version_by_alias(name, "champion")
    assert str(champ.version) == version.version_id and champ.run_id == train.run_id  # int on the SQL store, str over REST
    assert str(client.get_registered_model(name).aliases["champion"]) == version.version_id

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    ref = load_reference(f"models:/{name}@champion")
    pred = model.predict(ref.head(5))
    assert len(pred) == 5
    assert np.allclose(pred[["p_down", "p_flat", "p_up"]].to_numpy(dtype=float).sum(axis=1), 1.0)


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield tmp_path
    # the next test must not inherit this test's global MLflow URIs
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_lifecycle_through_mlflow_server_on_postgresql(isolated_cwd: Path) -> None:
    root = isolated_cwd
    mlflow_exe = VENV_BIN / "mlflow"
    assert mlflow_exe.exists() or shutil.which("mlflow"), "the venv has no mlflow executable"
    with fresh_pg_database("sig_mlflow") as backend, fresh_pg_database("sig_optuna") as optuna_storage:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        log_path = root / "mlflow-server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(mlflow_exe), "server", "--backend-store-uri", backend,
                 "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                 "--workers", "1"],
                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_healthy(url, proc, log_path, what="mlflow server")
            # tune with 2 processes per window study (Optuna on PostgreSQL too), all logging over HTTP
            settings = _settings(root, url, optuna_storage=optuna_storage, workers=2)
            out = _lifecycle(settings)
            _check_readback(url, settings, out, workers=2)
            # the artifacts really live in the server's destination, not under the client's cwd
            assert any((root / "artifacts").rglob("oos_predictions.parquet"))
            assert not (root / "mlruns").exists() and not (root / "mlflow.db").exists()
        finally:
            _stop(proc)


def test_lifecycle_with_postgresql_tracking_uri(isolated_cwd: Path) -> None:
    """No server: the client talks to PostgreSQL itself; artifacts go to mlflow.artifact_location
    (required in this mode: without it every host would keep artifacts in its own ./mlruns)."""
    from signals.settings.model import ConfigError

    root = isolated_cwd
    with fresh_pg_database("sig_mlflow") as backend:  # dropped WITH (FORCE): pooled connections do not block it
        with pytest.raises(ConfigError, match="mlflow.artifact_location is not set"):
            _lifecycle(_settings(root, backend))
        settings = _settings(root, backend, artifact_location=(root / "shared-artifacts").as_uri())
        out = _lifecycle(settings)
        _check_readback(backend, settings, out)
        assert any((root / "shared-artifacts").rglob("oos_predictions.parquet")) and not (root / "mlruns").exists()
