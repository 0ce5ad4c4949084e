"""The bad-input corpus' workspace: a tiny parquet layout, the real CLI, and the "nothing left
behind" checks every case runs after the command."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from signals.data.parquet import write_layout
from signals.data.synthetic import synthetic_universe

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("S0000", "S0001")
N_DAYS = 260  # about a year of business days: enough for every feature window, cheap to build


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Workspace:
    """A directory with a tiny parquet layout (``lay/``) and settings pointing at it (``SA_`` variables)."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def layout(self) -> Path:
        return self.root / "lay"

    @property
    def cache(self) -> Path:
        return self.root / "features"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    # ------------------------------------------------------------------ editing the layout
    def bars_file(self, symbol: str = SYMBOLS[0]) -> Path:
        return self.layout / "bars" / f"{symbol}.parquet"

    def market_file(self, symbol: str) -> Path:
        return self.layout / "market" / f"{symbol}.parquet"

    def read(self, path: Path) -> pd.DataFrame:
        return pd.read_parquet(path)

    def write(self, path: Path, frame: pd.DataFrame) -> None:
        frame.to_parquet(path, index=False, write_page_checksum=True)

    def edit(self, path: Path, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
        frame = self.read(path)
        out = change(frame)
        self.write(path, frame if out is None else out)


def make_env(ws: Workspace) -> dict[str, str]:
    return {
        "SA_DATA__PROVIDER": "parquet",
        "SA_DATA__PATH": str(ws.layout),
        "SA_MLFLOW__TRACKING_URI": f"sqlite:///{ws.mlflow_db}",
        "SA_FEATURES__CACHE_DIR": str(ws.cache),
        "SA_FEATURES__N_JOBS": "1",
        "SA_REDIS__ENABLED": "false",
    }


_TEMPLATE: dict[str, Path] = {}


def _template(factory: pytest.TempPathFactory) -> Path:
    """The tiny layout, generated once per session and copied for each case."""
    if "lay" not in _TEMPLATE:
        root = factory.mktemp("bad-input-template") / "lay"
        write_layout(root, synthetic_universe(len(SYMBOLS), N_DAYS, start="2012-01-02", n_sectors=1))
        _TEMPLATE["lay"] = root
    return _TEMPLATE["lay"]


@pytest.fixture
def ws(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A fresh copy of the tiny layout in this test's directory, its settings in the environment."""
    shutil.copytree(_template(tmp_path_factory), tmp_path / "lay")
    ws = Workspace(tmp_path)
    ws.env = make_env(ws)
    for key, value in ws.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return ws


# ----------------------------------------------------------------------------- running the CLI
def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """The real ``signals`` entry point in this process (argument parsing, error handler, exit code)."""
    from signals.cli import main

    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["signals", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_subprocess(args: list[str], ws: Workspace, *, prefix: list[str] | None = None, timeout: float = 120) -> Result:
    """``python -m signals.cli ARGS`` in a child process (the worktree first on its path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SA_", "MLFLOW_"))}
    env.update(ws.env, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "signals.cli", *args],
        capture_output=True, text=True, cwd=ws.root, env=env, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# ----------------------------------------------------------------------------- nothing left behind
def partial_files(root: Path) -> list[Path]:
    """Temporary files of atomic writes (``.<name>.<random>.tmp``) anywhere under ``root``."""
    return [p for p in root.rglob("*.tmp")]


def running_runs(db: Path) -> list[str]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]
        except sqlite3.OperationalError:  # no tables yet
            return []


def model_versions(db: Path) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return [(r[0], int(r[1])) for r in conn.execute("SELECT name, version FROM model_versions")]
        except sqlite3.OperationalError:
            return []


def assert_nothing_left_behind(ws: Workspace, *, versions: int = 0) -> None:
    assert partial_files(ws.root) == []
    assert running_runs(ws.mlflow_db) == []
    assert len(model_versions(ws.mlflow_db)) == versions


def flip_byte(path: Path, at: float = 0.5) -> None:
    """Invert one byte ``at`` (a fraction of the length) of ``path``: a bit rot that keeps its size."""
    data = bytearray(path.read_bytes())
    pos = int(len(data) * at)
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])

