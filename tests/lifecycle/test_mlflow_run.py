"""`mlflow run . -e main --env-manager local` on the shipped sample (small): a champion, a monitoring
run and signals in Redis; the same run repeated reuses the finished steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SMALL = """
data:
  symbols: [AAPL, MSFT, IBM]
  start: "2008-01-01"
  end: "2012-12-31"
ml:
  min_training_samples: 200
walk_forward:
  train_months: 12
  test_months: 6
  step_months: 12
tuning:
  n_trials: 2
  early_stopping_rounds: 10
monitoring:
  window_days: 40
"""


def _mlflow_run(workdir: Path, env: dict[str, str], config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("mlflow")), "run", str(REPO_ROOT), "-e", "main", "--env-manager", "local",
         "--experiment-name", "signals", "-P", f"config={config}", "-P", "n_trials=2"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )


def test_mlflow_run_main_end_to_end_and_reuse(workdir: Path, redis_server_url: str, redis_prefix: str) -> None:
    import mlflow
    import redis

    config = workdir / "small.yaml"
    config.write_text(SMALL)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SA_", "MLFLOW_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": uri,
        "SA_FEATURES__CACHE_DIR": str(workdir / "features"),
        "SA_REDIS__URL": redis_server_url,
        "SA_REDIS__PREFIX": redis_prefix,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    first = _mlflow_run(workdir, env, config)
    assert first.returncode == 0, first.stderr[-4000:]

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not a registry URI an earlier test left set
    exp = client.get_experiment_by_name("signals")
    mains = client.search_runs([exp.experiment_id], "tags.`signals.step` = 'main'")
    assert len(mains) == 1 and mains[0].info.status == "FINISHED"
    main_id = mains[0].info.run_id
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{main_id}'")
    steps = {c.data.tags["signals.step"] for c in children}
    assert steps >= {"features", "tune", "train", "promote"}
    v1 = client.get_model_version("signals-xgb", "1")
    if v1.tags["gate.decision"] != "promote":
        # the gate refused a model that does not beat its class prior: no champion, nothing monitored or
        # generated, and the reason is on the run; a forced promotion through the MLproject entry point
        # then makes it the champion (the override recorded on the version)
        assert "monitor" not in steps and "generate" not in steps
        assert mains[0].data.tags["signals.skipped_steps"] == "monitor,generate"
        assert "no champion" in mains[0].data.tags["signals.skip_reason"]
        forced = subprocess.run(
            [str(Path(sys.executable).with_name("mlflow")), "run", str(REPO_ROOT), "-e", "promote", "--env-manager",
             "local", "--experiment-name", "signals", "-P", f"config={config}", "-P", "force=true",
             "-P", "reason=e2e: inspect the challenger"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert forced.returncode == 0, forced.stderr[-3000:]
        assert client.get_model_version("signals-xgb", "1").tags["gate.forced"] == "true"
        first = _mlflow_run(workdir, env, config)  # monitor and generate now run against the champion
        assert first.returncode == 0, first.stderr[-4000:]
        mains = client.search_runs([exp.experiment_id], "tags.`signals.step` = 'main'",
                                   order_by=["attributes.start_time DESC"])
        children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{mains[0].info.run_id}'")
        steps = {c.data.tags["signals.step"] for c in children}
    assert steps >= {"monitor", "generate"}
    assert str(client.get_model_version_by_alias("signals-xgb", "champion").version) == "1"
    mon_exp = client.get_experiment_by_name("signals-monitoring")
    assert client.search_runs([mon_exp.experiment_id], "tags.`signals.step` = 'monitor'")

    # ./mlruns holds artifacts only: a bare `mlflow ui` here must not fall back to a file store
    assert (workdir / "mlruns").is_dir() and not list((workdir / "mlruns").glob("*/meta.yaml"))

    # `signals backtest` right after the pipeline: it finds the tune run nested under `main`
    bt = subprocess.run([sys.executable, "-m", "signals.cli", "--config", str(config), "backtest", "--json"],
                        cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert bt.returncode == 0, bt.stderr[-3000:]
    bt_out = json.loads(bt.stdout)
    tune_run = client.get_run(bt_out["tune_run_id"])
    assert tune_run.data.tags["signals.step"] == "tune"
    assert tune_run.data.tags["mlflow.parentRunId"] in {m.info.run_id for m in mains}
    assert client.get_run(bt_out["backtest_run_id"]).info.status == "FINISHED"

    r = redis.Redis.from_url(redis_server_url, decode_responses=True)
    latest = r.hgetall(f"{redis_prefix}:signals:latest")
    assert set(latest) == {"AAPL", "MSFT", "IBM"}
    assert json.loads(latest["AAPL"])["model_version"] == "1"
    assert r.get(f"{redis_prefix}:models:active") == "1"
    assert r.xlen(f"{redis_prefix}:drift:events") >= 1

    second = _mlflow_run(workdir, env, config)
    assert second.returncode == 0, second.stderr[-4000:]
    out = second.stdout + second.stderr
    for step in ("features", "tune", "train"):
        assert f"{step}: reusing finished run" in out, out[-3000:]
    n_main = len(mains) + 1
    mains = client.search_runs([exp.experiment_id], "tags.`signals.step` = 'main'", order_by=["attributes.start_time DESC"])
    assert len(mains) == n_main
    reused = {k for k in mains[0].data.tags if k.startswith("signals.reused_from.")}
    assert reused == {"signals.reused_from.features", "signals.reused_from.tune", "signals.reused_from.train"}
    assert mains[0].data.metrics["steps_reused"] == 3
