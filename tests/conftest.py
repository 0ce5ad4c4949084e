"""Shared fixtures. Every test gets its own working directory, so MLflow's default
``./mlflow.db`` / ``./mlruns`` and the feature cache never touch the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SA_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("SA_") or key.startswith("MLFLOW_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings(workdir: Path):
    """Default settings pointed at a throwaway SQLite MLflow store and feature cache."""
    from signals.config import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        features={"cache_dir": str(workdir / "features"), "n_jobs": 1},
        redis={"enabled": False},
    )
