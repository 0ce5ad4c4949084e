"""`signals backtest` finds the latest finished tune run whether it is nested under `main` or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from signals.lifecycle.backtest import OOS_FILE, find_tune_run
from signals.trading.backtest import BacktestError

pytestmark = pytest.mark.integration


def _tune_run(client, exp_id: str, tmp: Path, *, parent: str | None = None, step: str = "tune",
              status: str = "FINISHED", with_oos: bool = True) -> str:
    tags = {"signals.step": step, **({"mlflow.parentRunId": parent} if parent else {})}
    rid = client.create_run(exp_id, tags=tags).info.run_id
    if with_oos:
        f = tmp / OOS_FILE
        f.write_bytes(b"x")
        client.log_artifact(rid, str(f))
    client.set_terminated(rid, status)
    return rid


def test_latest_tune_run_nested_or_not(workdir: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.create_experiment("signals", artifact_location=(workdir / "art").as_uri())
    with pytest.raises(BacktestError, match=r"signals run.*--trials 5") as err:
        find_tune_run(client, exp)
    assert "100" not in str(err.value)

    standalone = _tune_run(client, exp, workdir)
    assert find_tune_run(client, exp).info.run_id == standalone

    main = client.create_run(exp, tags={"signals.step": "main"}).info.run_id
    nested = _tune_run(client, exp, workdir, parent=main)
    _tune_run(client, exp, workdir, parent=nested, step="tune-window")  # a window: never a tune run
    _tune_run(client, exp, workdir, status="FAILED")                     # unfinished: skipped
    _tune_run(client, exp, workdir, with_oos=False)                      # no OOS predictions: skipped
    assert find_tune_run(client, exp).info.run_id == nested
