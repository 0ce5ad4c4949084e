"""The README's "Python API" example runs as printed (on the shipped sample)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def _example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_example_runs(workdir: Path) -> None:
    import os

    env = {**os.environ, "SA_FEATURES__CACHE_DIR": str(workdir / "features"), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", _example()], cwd=workdir, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4, out.stdout  # 2009-2012, 24 months to train, 6-month steps
    assert all(re.match(r"\d{4}-\d\d-\d\d \d{4}-\d\d-\d\d accuracy 0\.\d{3} \(always UP 0\.\d{3}\)", line) for line in lines)
