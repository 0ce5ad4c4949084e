"""Bad registry requests: an unknown version, nothing to promote or roll back, an unknown run.

Each is ``Error:`` naming the version, run or model, exit 1, and changes nothing: the same
versions and aliases as before, no RUNNING run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.bad_input.support import Workspace, invoke, model_versions, running_runs
from tests.registry.support import Store, registry_template, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]
    registered: tuple[str, ...] = ()  # template runs registered first (versions 1, 2, ...)
    champion: str | None = None  # promoted first
    code: int = 1


CASES = [
    # an empty MLflow store: no model at all
    Case("promote-no-model", ("promote", "1"), ("signals-xgb", "no model")),
    Case("promote-auto-no-model", ("promote", "--auto"), ("signals-xgb", "no model")),
    Case("rollback-no-model", ("rollback",), ("signals-xgb", "no model")),
    Case("serve-no-champion", ("serve",), ("no champion",)),
    Case("register-unknown-run", ("register", UNKNOWN_RUN), (UNKNOWN_RUN,)),
    # a model with versions
    Case("promote-unknown-version", ("promote", "99"), ("99",), registered=("base", "better")),
    Case("rollback-unknown-version", ("rollback", "99"), ("99",), registered=("base", "better"), champion="2"),
    Case("rollback-without-previous-champion", ("rollback",), ("previous",), registered=("base",), champion="1"),
    # nothing to decide is a no-op that says so (a scheduled `promote --auto` must not fail)
    Case("promote-auto-without-challenger", ("promote", "--auto"), ("no challenger", "unchanged"), registered=("base",),
         champion="1", code=0),
]


def _state(store: Store) -> tuple[Any, ...]:
    reg = store.registry(mirror=False)
    versions = reg.list_versions() if model_versions(store.workdir / "mlflow.db") else []
    return tuple(sorted((v.version_id, tuple(sorted(v.aliases))) for v in versions))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_registry_request(case: Case, store: Store, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    s = store.settings
    for key, value in {"SA_MLFLOW__TRACKING_URI": s.mlflow.tracking_uri, "SA_REDIS__URL": s.redis.url,
                       "SA_REDIS__PREFIX": s.redis.prefix, "SA_REDIS__EMBEDDED_PATH": s.redis.embedded_path}.items():
        monkeypatch.setenv(key, value)
    if case.registered:
        store.register(*case.registered)
    if case.champion:
        store.registry().promote(case.champion)
    before = _state(store)
    res = invoke(list(case.args), capsys)
    assert res.code == case.code, res.text
    assert "Traceback" not in res.text
    if case.code:
        assert res.err.startswith("Error:"), res.err
    for name in case.names:
        assert name in res.text, f"{name!r} not in {res.text}"
    assert _state(store) == before  # no version registered, no alias moved
    assert running_runs(store.workdir / "mlflow.db") == []


def test_unknown_symbol_never_reaches_the_registry(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    """``train`` on an unknown symbol fails before any run or version exists."""
    res = invoke(["train", "-s", "NOPE"], capsys)
    assert res.code == 1 and "unknown symbol 'NOPE'" in res.err
    assert running_runs(ws.mlflow_db) == [] and model_versions(ws.mlflow_db) == []
