"""Bad configuration: ``Error:`` naming the variable or file and key, exit 1, before anything is
written (no MLflow store appears, no run, no partial file)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.bad_input.support import Workspace, assert_nothing_left_behind, invoke


@dataclass(frozen=True)
class Case:
    id: str
    names: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    yaml: str | None = None  # written to bad.yaml and passed with --config
    config: str | None = None  # --config path as given (e.g. a file that does not exist)


CASES = [
    Case("nan-threshold", ("SA_ML__UP_THRESHOLD", "finite"), env={"SA_ML__UP_THRESHOLD": "nan"}),
    Case("minus-inf-threshold", ("SA_ML__DOWN_THRESHOLD", "finite"), env={"SA_ML__DOWN_THRESHOLD": "-inf"}),
    Case("huge-float-is-inf", ("SA_ML__CONFIDENCE_THRESHOLD",), env={"SA_ML__CONFIDENCE_THRESHOLD": "1e400"}),
    Case("bool-for-int-env", ("SA_ML__PREDICTION_HORIZON", "boolean"), env={"SA_ML__PREDICTION_HORIZON": "true"}),
    Case("bool-for-int-yaml", ("bad.yaml", "ml.prediction_horizon", "boolean"), yaml="ml:\n  prediction_horizon: true\n"),
    Case("unknown-sa-variable", ("SA_MLFLOW_TRACKING_URI", "did you mean SA_MLFLOW__TRACKING_URI"),
         env={"SA_MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"}),
    Case("unknown-yaml-key", ("bad.yaml", "ml.up_treshold", "did you mean ml.up_threshold"), yaml="ml:\n  up_treshold: 0.02\n"),
    Case("unparsable-yaml", ("bad.yaml", "line 2"), yaml="ml: [unclosed\n"),
    Case("missing-config-file", ("nope.yaml", "not found"), config="nope.yaml"),
    Case("positive-down-threshold", ("ml.down_threshold", "SA_ML__DOWN_THRESHOLD", "(-1, 0)"),
         env={"SA_ML__DOWN_THRESHOLD": "0.02"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config(case: Case, ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    config: list[str] = []
    if case.yaml is not None:
        (ws.root / "bad.yaml").write_text(case.yaml)
        config = ["--config", "bad.yaml"]
    elif case.config is not None:
        config = ["--config", case.config]
    res = invoke([*config, "train", "-s", "S0000"], capsys)
    assert res.code == 1, res.text
    assert res.err.startswith("Error:") and "Traceback" not in res.text, res.err
    for name in case.names:
        assert name in res.err, f"{name!r} not in {res.err}"
    assert sorted(p.name for p in ws.root.iterdir()) == sorted(["lay", *(["bad.yaml"] if case.yaml else [])])
    assert_nothing_left_behind(ws)
