"""Bad configuration and secrets, end to end in real processes.

* A bad setting stops the CLI (``Error: ...``) and the entry points (``error: ...``) with exit 1,
  no traceback, and a message naming the variable or the file and key.
* Credentials given in SA_ variables reach neither the SQLite MLflow store (params, tags, dataset
  sources, artifacts, the raw database and artifact files) nor any process output, including
  ``signals registry sync`` against a real password-protected Redis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

SECRET = "S3cr3tXq9"  # distinctive: any occurrence is a leak


def _env(**extra: str) -> dict[str, str]:
    """The test process's environment without SA_/MLFLOW_ variables, this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SA_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return {**env, **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- config errors in real processes
CLI = (["-m", "signals.cli"], ["data", "check"], "Error: ")
ENTRY_POINT = ([], ["-m", "entrypoints.features"], "error: ")


@pytest.mark.parametrize("runner", [CLI, ENTRY_POINT], ids=["cli", "entrypoint"])
@pytest.mark.parametrize(
    ("env", "yaml_text", "needles"),
    [
        ({"SA_ML__UP_THRESHOLD": "nan"}, None,
         ["ml.up_threshold: must be a finite number", "(from SA_ML__UP_THRESHOLD='nan')"]),
        ({"SA_MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"}, None,
         ["SA_MLFLOW_TRACKING_URI='sqlite:///elsewhere.db': no such setting (did you mean SA_MLFLOW__TRACKING_URI?)"]),
        ({"SA_ML__PREDICTION_HORIZON": "true"}, None, ["ml.prediction_horizon: must be a number, not a boolean"]),
        ({}, "ml:\n  prediction_horizon: true\n", ["ml.prediction_horizon: must be a number, not a boolean", "bad.yaml"]),
        ({"SA_REDIS__URLL": f"redis://:{SECRET}@127.0.0.1:6379/0"}, None,
         ["SA_REDIS__URLL='redis://:***@127.0.0.1:6379/0': no such setting (did you mean SA_REDIS__URL?)"]),
    ],
    ids=["nan", "near-miss-variable", "bool-from-env", "bool-in-yaml", "secret-in-bad-variable"],
)
def test_bad_configuration_stops_cleanly(tmp_path: Path, runner, env: dict, yaml_text: str | None,
                                         needles: list[str]) -> None:
    before, after, prefix = runner
    config: list[str] = []
    if yaml_text is not None:
        (tmp_path / "bad.yaml").write_text(yaml_text)
        config = ["--config", str(tmp_path / "bad.yaml")]
    args = [*before, *config, *after] if runner is CLI else [*after, *config]
    out = _run(args, tmp_path, _env(**env), timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(prefix), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    for needle in needles:
        assert needle in out.stderr
    if env:
        assert "settings.yaml" not in out.stderr  # blamed on the variable, not the file
    assert SECRET not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.yaml"] if yaml_text else [])  # no ./mlflow.db


# ----------------------------------------------------------------------------- nothing secret in the store
SECRET_ENV = {
    "SA_REDIS__URL": f"redis://:{SECRET}@127.0.0.1:6379/0?password={SECRET}",
    "SA_DATA__SQL_URL": f"postgresql://app:{SECRET}@db.example:5432/market?sslmode=require",
    "SA_TUNING__STORAGE": f"postgresql://optuna:{SECRET}@db.example:5432/optuna",
    "SA_MLFLOW__REGISTRY_URI": f"https://{SECRET}@registry.example",  # token-only userinfo; never contacted
    "SA_ALERTS__SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T0001/B0002/{SECRET}",
    "SA_ALERTS__TELEGRAM_WEBHOOK_URL": f"https://api.telegram.org/bot123456:{SECRET}/sendMessage",
}
EXPECTED_PARAMS = {
    "cfg.redis.url": "redis://:***@127.0.0.1:6379/0?password=***",
    "cfg.data.sql_url": "postgresql://app:***@db.example:5432/market?sslmode=require",
    "cfg.tuning.storage": "postgresql://optuna:***@db.example:5432/optuna",
    "cfg.mlflow.registry_uri": "https://***@registry.example",
    "cfg.alerts.slack_webhook_url": "https://hooks.slack.com/***",
    "cfg.alerts.telegram_webhook_url": "https://api.telegram.org/***",
}


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_no_secret_reaches_the_tracking_store(tmp_path: Path) -> None:
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = _env(**SECRET_ENV, SA_MLFLOW__TRACKING_URI=store, SA_FEATURES__CACHE_DIR=str(tmp_path / "features"),
               SA_FEATURES__N_JOBS="1")
    out = _run(["-m", "entrypoints.features", "--symbols", "AAPL", "--start", "2008-01-02", "--end", "2008-03-31"],
               tmp_path, env)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr

    client = mlflow.MlflowClient(tracking_uri=store)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    run = runs[0]
    for key, expected in EXPECTED_PARAMS.items():
        assert run.data.params[key] == expected
    yaml_text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/config/resolved_settings.yaml")
    assert "url: redis://:***@127.0.0.1:6379/0?password=***" in yaml_text
    leaks = [f"param {k}" for k, v in run.data.params.items() if SECRET in v]
    leaks += [f"tag {k}" for k, v in run.data.tags.items() if SECRET in v]
    leaks += [f"dataset {d.dataset.name}" for d in run.inputs.dataset_inputs
              if SECRET in d.dataset.source + str([(t.key, t.value) for t in d.tags])]
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=store,
                                                     dst_path=str(tmp_path / "downloaded")))
    assert (local / "config" / "resolved_settings.yaml").is_file()
    leaks += [f"artifact {p}" for p in _files_holding(local, SECRET.encode())]
    # and the raw bytes: the SQLite store, the artifact root, the feature cache
    shutil.rmtree(local)
    leaks += [f"file {p}" for p in _files_holding(tmp_path, SECRET.encode())]
    assert leaks == []


def test_dataset_sources_and_tags_are_masked_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The logging helpers mask what any step passes them, not only the resolved settings."""
    import mlflow
    import pandas as pd

    from signals.adapters import tracking as T

    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    exp = client.create_experiment("secrets")
    mlflow.set_experiment(experiment_id=exp)
    with T.start_step_run("step", {"signals.source": f"redis://{SECRET}@h"}) as run:
        rid = run.info.run_id
        T.set_tags_batch(client, rid, {"note": f"sql at postgresql://u:{SECRET}@db/x"})
        T.log_params_batch(client, rid, {"api_token": SECRET, "storage": f"redis://:{SECRET}@h/0"})
        T.log_training_dataset(pd.DataFrame({"a": [1.0, 2.0]}), name="d", targets=None,
                               source={"provider": "sql", "url": f"postgresql://u:x@db/x?password={SECRET}"})
    got = client.get_run(rid)
    text = str(got.data.params) + str(got.data.tags) + str([d.dataset.source for d in got.inputs.dataset_inputs])
    assert SECRET not in text
    assert got.data.params["storage"] == "redis://:***@h/0" and got.data.params["api_token"] == "***"
    mlflow.set_tracking_uri("")


# ----------------------------------------------------------------------------- registry sync output
@pytest.fixture
def password_redis(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway redis-server on a free port that requires the password SECRET."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a password-protected Redis")
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis-pw")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", SECRET, "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, password=SECRET, socket_timeout=1)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.skip(f"redis-server exited with {proc.returncode}")
                __import__("time").sleep(0.05)
        yield port, client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_registry_sync_prints_the_url_masked(tmp_path: Path, password_redis) -> None:
    port, client = password_redis
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    base = dict(SA_MLFLOW__TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", SA_REDIS__PREFIX=prefix)

    good = _run(["-m", "signals.cli", "registry", "sync"], tmp_path,
                _env(**base, SA_REDIS__URL=f"redis://:{SECRET}@127.0.0.1:{port}/0?password={SECRET}"), timeout=120)
    assert good.returncode == 0, good.stderr
    assert f"mirror at redis://:***@127.0.0.1:{port}/0?password=*** (prefix '{prefix}') rebuilt" in good.stdout
    assert client.hget(f"{prefix}:models:meta", "model_name") == b"signals-xgb"  # it really wrote

    bad = _run(["-m", "signals.cli", "registry", "sync"], tmp_path,
               _env(**base, SA_REDIS__URL=f"redis://{SECRET}@127.0.0.1:{port}/0"), timeout=120)
    assert bad.returncode == 1
    assert f"Error: could not write the Redis mirror at redis://***@127.0.0.1:{port}/0: " in bad.stderr
    assert "Traceback" not in bad.stderr
    for output in (good.stdout, good.stderr, bad.stdout, bad.stderr):
        assert SECRET not in output
    assert _files_holding(tmp_path, SECRET.encode()) == []  # e.g. the stale marker under .redis/
    stale = client.get(f"{prefix}:mirror:stale")
    assert stale is None or SECRET.encode() not in stale
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
