"""The MLproject file: every lifecycle step is an entry point, defaults match config/settings.yaml,
and each command runs a module whose parser accepts exactly the parameters MLflow passes."""

from __future__ import annotations

import pytest
import yaml

from signals.settings.model import load_settings
from tests.conftest import REPO_ROOT

PROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
ENTRY_POINTS = PROJECT["entry_points"]


def test_every_step_is_an_entry_point() -> None:
    assert set(ENTRY_POINTS) >= {"features", "tune", "train", "promote", "rollback", "monitor", "generate", "main"}
    for name in ("MLproject", "conda.yaml", "python_env.yaml", "pyproject.toml"):
        assert (REPO_ROOT / name).is_file()


def test_defaults_match_the_settings_file() -> None:
    s = load_settings(REPO_ROOT / "config" / "settings.yaml")
    for name, ep in ENTRY_POINTS.items():
        params = ep.get("parameters", {})
        assert params["config"]["default"] == "config/settings.yaml", name
        if "n_trials" in params:
            assert float(params["n_trials"]["default"]) == s.tuning.n_trials, name
        if "n_jobs" in params:
            assert float(params["n_jobs"]["default"]) == s.tuning.n_jobs, name
        if "workers" in params:
            assert float(params["workers"]["default"]) == s.tuning.workers, name
        for key in ("symbols", "start", "end"):
            if key in params:  # empty -> data.symbols / data.start / data.end from the config
                assert params[key]["default"] == "", (name, key)
    assert s.data.symbols == [] and s.data.start is None and s.data.end is None


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_command_accepts_its_default_parameters(name: str, tmp_path) -> None:
    """Render the command with the defaults (as `mlflow run` does) and run it against a missing config:
    argparse must accept every parameter (exit 2 would mean it did not) and the step must then stop
    with the clear configuration error (exit 1) before touching anything."""
    import shlex
    import subprocess
    import sys

    ep = ENTRY_POINTS[name]
    cmd = ep["command"]
    for key, spec in ep.get("parameters", {}).items():
        value = str(tmp_path / "missing.yaml") if key == "config" else str(spec["default"])
        if key == "reason":
            value = "it's a reason with spaces"  # free text survives the shell
        cmd = cmd.replace("{" + key + "}", shlex.quote(value))  # MLflow shell-quotes every value itself
    assert "{" not in cmd, cmd
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("entrypoints."), cmd
    out = subprocess.run([sys.executable, *argv[1:]], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert "configuration file not found" in out.stderr
