"""A damaged feature cache on a read-only directory never fails a build whose features were computed."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.bad_input.support import SYMBOLS, Workspace, assert_nothing_left_behind, flip_byte, invoke, run_subprocess, truncate

pytestmark = pytest.mark.e2e


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: root ignores them unless it drops
    CAP_DAC_OVERRIDE (and friends), which ``setpriv`` does for the child alone."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be made read-only for root")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.parametrize("damage", ["truncated-segment", "bit-flipped-segment"])
def test_read_only_damaged_cache(ws: Workspace, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    prefix = _unprivileged()
    assert invoke(["features", "build", "-s", SYMBOLS[0]], capsys).code == 0
    assert invoke(["features", "build"], capsys).code == 0  # a second segment, for the other symbol
    segments = sorted(ws.cache.glob("features-*.parquet"))
    assert len(segments) == 2
    (truncate if damage == "truncated-segment" else flip_byte)(segments[0])
    _set_writable(ws.cache, False)
    try:
        res = run_subprocess(["features", "build"], ws, prefix=prefix)
    finally:
        _set_writable(ws.cache, True)
    assert res.code == 0, res.err
    assert "Traceback" not in res.err
    assert f"{len(SYMBOLS)} symbol(s)" in res.out
    assert str(segments[0]) in res.err  # the damaged file is named
    assert "were computed but not cached" in res.err
    assert sorted(ws.cache.glob("features-*.parquet")) == segments  # nothing removed, nothing added
    assert_nothing_left_behind(ws)
