"""``kill -9`` during a tune, then a rerun: nothing stays RUNNING, and the runs are linked.

The first tune runs in a real child process, killed with SIGKILL once it has logged a trial; the
rerun (same data, same study: it resumes the Optuna studies) marks the killed tune run and its
open window run FAILED, links them both ways, and nests its own windows and trials under itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from signals.adapters import tracking as T
from tests.conftest import REPO_ROOT
from tests.modeling.test_model import single_thread_xgboost  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.integration

SETUP = textwrap.dedent(
    """
    from signals.dataset import build_training_data
    from signals.settings.model import load_settings
    from tests.modeling.test_model import make_panel

    def setup(root, n_trials):
        settings = load_settings(
            "{config}",
            mlflow={{"tracking_uri": f"sqlite:///{{root}}/mlflow.db", "experiment": "killed"}},
            redis={{"enabled": False}},
            ml={{"min_training_samples": 50, "xgb_params": {{"n_estimators": 20, "max_depth": 2}}}},
            walk_forward={{"train_months": 4, "test_months": 2, "step_months": 2}},
            tuning={{"n_trials": n_trials, "early_stopping_rounds": 5}},
        )
        X, close = make_panel(n_symbols=2, start="2018-01-01", end="2018-10-31", n_features=4)
        data = build_training_data(X, close, horizon=5, up_threshold=0.01, down_threshold=-0.01, symbols=["S0", "S1"],
                                   source={{"provider": "synthetic-test", "synthetic": "all tables"}})
        return settings, data
    """
).format(config=REPO_ROOT / "config" / "settings.yaml")


def _trial_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM tags WHERE key = 'signals.step' AND value = 'tune-trial'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _start_killable_tune(root: Path) -> subprocess.Popen:
    child = SETUP + textwrap.dedent(
        f"""
        import signals.modeling.model
        signals.modeling.model.DEFAULT_N_JOBS = 1
        from signals.lifecycle.tune import tune_with_tracking
        settings, data = setup({str(root)!r}, 400)  # far more trials than it will live to run
        tune_with_tracking(settings, data, background_trial_logging=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    return subprocess.Popen([sys.executable, "-c", child], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_tune_is_failed_and_linked_on_rerun(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    proc = _start_killable_tune(workdir)
    try:
        deadline = time.monotonic() + 90
        while _trial_runs(workdir / "mlflow.db") < 2:
            assert proc.poll() is None, f"the tune ended before it could be killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no trial run logged in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    namespace: dict = {}
    exec(SETUP, namespace)  # the same settings and data as the killed process
    settings, data = namespace["setup"](str(workdir), 2)
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    before = client.search_runs([client.get_experiment_by_name("killed").experiment_id], max_results=1000)
    killed = [r for r in before if r.data.tags.get(T.TAG_STEP) == T.STEP_TUNE]
    assert len(killed) == 1 and killed[0].info.status == "RUNNING"
    dead_id = killed[0].info.run_id
    assert killed[0].data.tags[T.TAG_HOST] == socket.gethostname() and killed[0].data.tags[T.TAG_PID] == str(proc.pid)

    from signals.lifecycle.tune import tune_with_tracking

    res = tune_with_tracking(settings, data, background_trial_logging=False)

    runs = {r.info.run_id: r for r in client.search_runs([res.experiment_id], max_results=1000)}
    assert [r.info.run_name for r in runs.values() if r.info.status == "RUNNING"] == []
    old, new = runs[dead_id], runs[res.run_id]
    assert old.info.status == "FAILED" and old.data.tags[T.TAG_SUPERSEDED_BY] == res.run_id
    assert new.info.status == "FINISHED" and new.data.tags[T.TAG_RESUMED_FROM] == dead_id
    assert new.data.tags[T.TAG_TUNE_STUDY] == old.data.tags[T.TAG_TUNE_STUDY]
    # the killed process's open window run is FAILED; the rerun's windows hang under the live run
    old_windows = [r for r in runs.values() if r.data.tags.get(T.PARENT_TAG) == dead_id]
    assert old_windows and any(r.info.status == "FAILED" for r in old_windows)
    new_windows = {rid: r for rid, r in runs.items() if r.data.tags.get(T.PARENT_TAG) == res.run_id}
    assert len(new_windows) == len(res.windows) >= 2
    assert all(r.info.status == "FINISHED" for r in new_windows.values())
    first = next(r for r in new_windows.values() if r.data.tags[T.TAG_WINDOW] == "0")
    assert first.data.metrics["n_trials_resumed"] >= 1  # the study was resumed, not restarted
    for r in runs.values():  # every trial run sits under a window run of one of the two tune runs
        if r.data.tags.get(T.TAG_STEP) == T.STEP_TRIAL:
            parent = runs[r.data.tags[T.PARENT_TAG]]
            assert parent.data.tags[T.PARENT_TAG] in (dead_id, res.run_id)
            if parent.info.run_id in new_windows:  # logged by the rerun: finished, under a finished window
                assert r.info.status == "FINISHED" and parent.info.status == "FINISHED"
            else:  # logged by the killed process: finished, or FAILED if it was being logged at the kill
                assert r.info.status in ("FINISHED", "FAILED")


def test_dead_process_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    me = T.process_tags()
    assert not T.run_process_dead(me)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert T.run_process_dead({**me, T.TAG_PID: str(gone.pid)})
    if T.TAG_PID_START in me:  # the pid lives, but it is another process than the one that ran the run
        assert T.run_process_dead({**me, T.TAG_PID_START: str(int(me[T.TAG_PID_START]) + 1)})
    far = {**me, T.TAG_HOST: "another-host"}
    now = float(me[T.TAG_HEARTBEAT])
    assert not T.run_process_dead(far, now=now + T.HEARTBEAT_GRACE_S - 1)
    assert T.run_process_dead(far, now=now + T.HEARTBEAT_GRACE_S + 1)
    assert not T.run_process_dead({})  # an older run without process tags is never judged
