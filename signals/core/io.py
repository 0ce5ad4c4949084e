"""Atomic file writes: write to a temporary file in the same directory, then rename.

A crash mid-write leaves the old file (or nothing), never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; it replaces ``path`` when the block ends
    normally and is removed when it raises.

    The file gets the permissions a plain ``open(path, "w")`` would give it (``mkstemp``
    makes it private), so a cache or log on a shared volume stays readable by its readers.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then atomically rename the temporary file onto ``path``
    (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_parquet(df: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    return atomic_write(path, lambda p: df.to_parquet(p, engine="pyarrow", **kwargs))


def atomic_write_text(text: str, path: str | os.PathLike[str]) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=True, default=str), path)
