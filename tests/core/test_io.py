"""Atomic writes: all or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from signals.core.io import atomic_write, atomic_write_text


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write_text("one", target)
    assert target.read_text() == "one"

    def half_then_fail(p: Path) -> None:
        p.write_text("tw")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "one"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_atomic_write_gives_the_permissions_open_would(tmp_path: Path) -> None:
    """mkstemp makes private files; a cache on a shared volume must stay readable by others."""
    old = os.umask(0o027)
    try:
        path = atomic_write_text("x", tmp_path / "a.txt")
        with open(tmp_path / "b.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640
