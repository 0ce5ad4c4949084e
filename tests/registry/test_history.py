"""Champion history on a real SQLite registry: promote -> promote -> rollback -> rollback -> manual
promote over the gate's verdict. After every step: the champion, the append-only event log, and
"which version was champion at time T"."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import pytest

from tests.registry.support import Store, registry_template, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys, store: Store, *args: str) -> tuple[int, str, str]:
    from signals.cli import main

    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", store.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    monkeypatch.setattr(sys, "argv", ["signals", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_promote_promote_rollback_rollback_manual_override(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                           capsys) -> None:
    from signals.lifecycle.promote import run_promote
    from signals.lifecycle.rollback import run_rollback

    reg = store.registry(mirror=False)
    store.register("better")  # v1 beats its class prior
    t0 = _now()
    steps: list[tuple[datetime, str]] = []  # (a time just after the step, the champion then)

    def check(expected_chain: list[tuple[str, str | None, str]]) -> None:
        events = reg.history()
        assert [(e.champion, e.previous, e.action) for e in events] == expected_chain
        assert reg.get_active().version_id == expected_chain[-1][0]
        rm = reg.client.get_registered_model(reg.name)
        stored = sorted(k for k in rm.tags if k.startswith("champion_event."))
        assert len(stored) == len(events), "one tag per change, none rewritten"
        steps.append((_now(), expected_chain[-1][0]))
        assert reg.champion_at(t0) is None
        for when, champion in steps:  # every earlier answer still holds: nothing was rewritten
            assert reg.champion_at(when) == champion

    # 1. the gate promotes v1 (no champion yet: it must beat its class prior)
    assert run_promote(store.settings, auto=True).champion_after == "1"
    check([("1", None, "auto-promote")])
    store.register("base")  # v2: weaker
    # 2. an explicit promotion of v2 (the gate never judged it: not an override)
    r2 = run_promote(store.settings, version="2", reason="try the new features")
    assert r2.warning is None
    check([("1", None, "auto-promote"), ("2", "1", "promote")])
    reason_v1 = reg.get("1").tags["promotion_reason"]
    # 3. rollback -> 1; 4. rollback again -> 2 (the undo of the undo)
    assert run_rollback(store.settings).champion_after == "1"
    assert reg.previous_champion() == "2"
    check([("1", None, "auto-promote"), ("2", "1", "promote"), ("1", "2", "rollback")])
    assert reg.get("1").tags["promotion_reason"] == reason_v1, "the earlier promotion's reason survives"
    assert run_rollback(store.settings, reason="false alarm").champion_after == "2"
    check([("1", None, "auto-promote"), ("2", "1", "promote"), ("1", "2", "rollback"), ("2", "1", "rollback")])
    assert reg.get("2").tags["rollback_reason"] == "false alarm"
    # 5. v3 (no skill) is kept by the gate; promoting it by hand overrides that verdict: warned and recorded
    store.register("worse")
    assert run_promote(store.settings, auto=True).decision == "kept"
    assert reg.get("3").tags["gate.decision"] == "keep"
    code, out, err = _cli(monkeypatch, capsys, store, "promote", "3", "--reason", "desk wants to see it live")
    assert code == 0 and "version 3 is now the champion" in out
    assert "Warning: version 3 overrides the gate's last verdict (keep vs champion v2)" in err
    v3 = reg.get("3")
    assert v3.tags["gate.overridden_by"] == v3.tags["promoted_by"] and "@" in v3.tags["promoted_by"]
    assert v3.tags["promotion_reason"] == "desk wants to see it live"
    assert "OVER THE GATE'S VERDICT" in reg.client.get_model_version(reg.name, "3").description
    chain = [("1", None, "auto-promote"), ("2", "1", "promote"), ("1", "2", "rollback"), ("2", "1", "rollback"),
             ("3", "2", "override")]
    check(chain)
    assert reg.history()[-1].reason == "desk wants to see it live"

    # the CLI answers the same questions
    code, out, _ = _cli(monkeypatch, capsys, store, "registry", "history", "--json")
    assert code == 0
    assert [(e["champion"], e["previous"], e["action"]) for e in json.loads(out)["events"]] == chain
    for when, champion in steps:
        code, out, _ = _cli(monkeypatch, capsys, store, "registry", "history", "--at", when.isoformat())
        assert code == 0 and out.strip().endswith(f"version {champion}"), out
    code, out, _ = _cli(monkeypatch, capsys, store, "registry", "history", "--at", "2000-01-01T00:00Z")
    assert code == 0 and "none (no champion yet)" in out
    code, _, err = _cli(monkeypatch, capsys, store, "registry", "history", "--at", "yesterday-ish")
    assert code == 2 and "ISO-8601" in err
    code, out, _ = _cli(monkeypatch, capsys, store, "registry", "list")
    assert code == 0 and "keep vs champion v2 (overridden)" in out
