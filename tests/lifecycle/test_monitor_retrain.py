"""The retrain orchestration: tune -> train(tune params) -> register -> gated promote."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from signals.core.errors import SignalsError


@pytest.fixture
def steps(monkeypatch):
    import signals.lifecycle.promote as promote
    import signals.lifecycle.register as register
    import signals.lifecycle.train as train
    import signals.lifecycle.tune as tune

    calls: list[tuple] = []
    monkeypatch.setattr(tune, "run_tune", lambda s: calls.append(("tune",)) or SimpleNamespace(run_id="T1"))
    monkeypatch.setattr(
        train, "run_train", lambda s, tune_run_id=None: calls.append(("train", tune_run_id)) or SimpleNamespace(run_id="R1")
    )
    monkeypatch.setattr(
        register, "register_training_run", lambda s, res: calls.append(("register", res.run_id)) or SimpleNamespace(version_id="5")
    )
    monkeypatch.setattr(
        promote,
        "run_promote",
        lambda s, auto=False: calls.append(("promote", auto))
        or SimpleNamespace(promoted=True, decision="promoted", message="version 5 is the champion"),
    )
    return calls


def test_retrain_runs_the_steps_in_order(settings, steps):
    from signals.lifecycle.monitor import run_retrain

    out = run_retrain(settings, ["staleness: old"])
    assert steps == [("tune",), ("train", "T1"), ("register", "R1"), ("promote", True)]
    assert out == {
        "reasons": ["staleness: old"], "tune_run_id": "T1", "train_run_id": "R1", "registered_version": "5",
        "promoted": True, "decision": "promoted", "promotion": "version 5 is the champion",
    }


def test_a_failing_step_is_named_and_stops_the_retrain(settings, steps, monkeypatch):
    import signals.lifecycle.train as train
    from signals.lifecycle.monitor import RetrainError, run_retrain

    def boom(s, tune_run_id=None):
        raise SignalsError("not enough rows")

    monkeypatch.setattr(train, "run_train", boom)
    with pytest.raises(RetrainError, match="retrain failed in train: not enough rows"):
        run_retrain(settings)
    assert steps == [("tune",)]
