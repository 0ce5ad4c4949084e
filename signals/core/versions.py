"""One way to stamp a version on anything whose meaning can change: ``<declared>.<content hash>``.

The declared part is bumped by hand for a change the hash cannot see (a dependency behaving
differently, a format decision); the hash covers what can be read (source files, a spec, a
dependency's version), so an ordinary edit changes the stamp without anybody remembering to.
Used for the feature code (cache keys and logged models), the feature cache layout, the
tuning search space (Optuna study names) and the whole package (the lifecycle's step reuse).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def content_hash(parts: Iterable[str | bytes], length: int = 12) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:length]


def stamp(declared: str | int, *parts: str | bytes, length: int = 12) -> str:
    """``"<declared>.<hash of parts>"``; just ``"<declared>"`` when nothing is hashed."""
    return f"{declared}.{content_hash(parts, length)}" if parts else str(declared)


def source_parts(files: Iterable[Path], root: Path = PACKAGE_DIR) -> list[bytes]:
    """Each file's path (relative to ``root``) and bytes, in sorted order: what a source hash covers."""
    out: list[bytes] = []
    for path in sorted(Path(f).resolve() for f in files):
        out.append(str(path.relative_to(root)).encode())
        out.append(path.read_bytes())
    return out


def code_version() -> str:
    """The whole package's source (every ``.py`` under ``signals/``): a changed line anywhere
    means a different code version, so the lifecycle never reuses a step run by other code."""
    return stamp("code", *source_parts(PACKAGE_DIR.rglob("*.py")), length=16).split(".", 1)[1]
