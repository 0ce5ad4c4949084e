"""An installed wheel works without the checkout: default settings ship as package data, the
entry point runs, and `signals data check` reads the sample from another directory.

Offline: the wheel is built without build isolation and installed without dependencies into a
fresh virtual environment that borrows this environment's third-party packages (a path entry,
so this checkout's editable install is not among them)."""

from __future__ import annotations

import os

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def _clean_env() -> dict[str, str]:
    """No SA_ settings, no PYTHONPATH (pip would take the checkout on it for an installed copy)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SA_", "PYTHONPATH", "VIRTUAL_ENV"))}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", _clean_env())
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def test_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                  str(REPO_ROOT)])
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("signals-*.whl")

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    py = venv / "bin" / "python"
    installed = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-3000:]
    target = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # the dependencies come from this environment's site-packages, added as a plain path
    (target / "zz_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**_clean_env(), "SA_REDIS__ENABLED": "false"}
    where = _run([str(py), "-c", "import signals, signals.settings.model as m; print(signals.__file__); "
                  "print(m.DEFAULT_CONFIG_PATH)"], cwd=elsewhere, env=env)
    assert where.returncode == 0, where.stderr[-2000:]
    package_file, defaults = where.stdout.split()
    assert str(venv) in package_file and str(REPO_ROOT) not in package_file  # the wheel, not this checkout
    assert Path(defaults).is_file() and str(venv) in defaults

    check = _run([str(venv / "bin" / "signals"), "data", "check", "--json"], cwd=elsewhere, env=env)
    assert check.returncode == 0, check.stderr[-3000:]
    assert '"AAPL"' in check.stdout and '"provider": "sample"' in check.stdout
    assert not (elsewhere / "mlflow.db").exists()  # a data check touches no store

