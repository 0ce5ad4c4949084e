"""``signals serve`` end to end: the champion served over real HTTP equals in-process predictions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signals.serving.schema import RECORD_FIELDS, validate_record
from tests.conftest import free_port, wait_healthy
from tests.registry.support import (  # noqa: F401 - fixture
    FEATURES,
    Template,
    make_features,
    registry_template,
    settings_for,
)

pytestmark = pytest.mark.e2e


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _split(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


@pytest.fixture
def served(registry_template: Template, workdir: Path):
    """The template's 'base' model registered and promoted, served by `signals serve` on a free port."""
    from signals.registry.client import ModelRegistry

    shutil.copy(registry_template.db, workdir / "mlflow.db")
    settings = settings_for(workdir, enabled=False)
    reg = ModelRegistry.from_settings(settings, mirror=False)
    run = registry_template.runs["base"]
    reg.register(None, run.model_uri, run.metrics, run_id=run.run_id)
    champion = reg.promote("1")
    port = free_port()
    env = {
        **os.environ,
        "SA_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
        "SA_REDIS__ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "signals.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the uvicorn child dies with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, workdir / "serve.log", timeout=60, what="signals serve")
        yield base, champion, settings
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_http_predictions_equal_in_process_and_schema_is_enforced(served) -> None:
    import mlflow

    base, champion, settings = served
    local = mlflow.artifacts.download_artifacts(artifact_uri=champion.path, tracking_uri=settings.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(local)

    rows = make_features(1000, seed=99)[FEATURES]
    for frame in (rows.head(1), rows):
        status, body = _post(f"{base}/invocations", _split(frame))
        assert status == 200, body
        got = pd.DataFrame(body["predictions"])
        want = model.predict(frame)
        assert list(got.columns) == list(RECORD_FIELDS)
        assert len(got) == len(frame)
        np.testing.assert_allclose(got[["p_down", "p_flat", "p_up", "confidence"]].astype(float),
                                   want[["p_down", "p_flat", "p_up", "confidence"]].astype(float), rtol=1e-9, atol=1e-12)
        assert (got["predicted_class"].to_numpy() == want["predicted_class"].to_numpy()).all()
        assert (got["signal"].to_numpy() == want["signal"].to_numpy()).all()
        np.testing.assert_allclose(got[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0, atol=1e-9)
        # the server names the model it runs; in process nobody told the model its registry name
        assert set(got["model_name"]) == {"signals-xgb"} and set(got["model_version"]) == {champion.version_id}
        assert want["model_name"].isna().all()
        assert all(validate_record(r) == [] for r in body["predictions"])
    assert set(pd.DataFrame(_post(f"{base}/invocations", _split(rows))[1]["predictions"])["signal"]) <= {"LONG", "SHORT", "NONE"}

    status, body = _post(f"{base}/invocations", _split(rows.head(3).drop(columns=["f3"])))
    assert status == 400, body
    assert body["message"].startswith("missing feature column(s): f3"), body
    status, _ = _post(f"{base}/invocations", {"dataframe_split": {"columns": FEATURES, "data": [["x"] * len(FEATURES)]}})
    assert status == 400


def test_serve_without_a_champion_is_a_clear_error(registry_template: Template, workdir: Path, monkeypatch, capsys) -> None:
    from signals.cli import main

    shutil.copy(registry_template.db, workdir / "mlflow.db")
    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    monkeypatch.setattr(sys, "argv", ["signals", "serve", "--port", "5999"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    assert "no champion to serve" in capsys.readouterr().err


def test_serve_command_line(registry_template: Template, workdir: Path) -> None:
    from signals.cli.registry import serve_command
    from signals.registry.client import ModelRegistry

    shutil.copy(registry_template.db, workdir / "mlflow.db")
    settings = settings_for(workdir, enabled=False)
    reg = ModelRegistry.from_settings(settings, mirror=False)
    reg.register(None, registry_template.runs["base"].model_uri, {})
    reg.promote("1")
    cmd, env, version = serve_command(settings)
    assert cmd[1:] == [
        "-m", "mlflow", "models", "serve", "-m", "models:/signals-xgb@champion",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", "5001",
    ]  # fmt: skip
    assert env["MLFLOW_TRACKING_URI"] == env["MLFLOW_REGISTRY_URI"] == settings.mlflow.tracking_uri
    assert version == "1"
    assert env["SIGNALS_MODEL_NAME"] == "signals-xgb" and env["SIGNALS_MODEL_VERSION"] == "1"
    cmd, _, _ = serve_command(settings, workers=4)
    assert cmd[-2:] == ["--workers", "4"]  # mlflow models serve's own flag
