"""ModelRegistry on a real MLflow SQLite store: register, promote, rollback, errors, the gate, the CLI."""

from __future__ import annotations

import json
import sys

import pytest

from signals.registry.client import ModelRegistry
from signals.registry.types import (
    CHALLENGER,
    CHAMPION,
    AlreadyChampionError,
    EmptyRegistryError,
    NoPreviousChampionError,
    UnknownVersionError,
    VersionIdMismatchError,
)
from tests.registry.support import Store, registry_template, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def _state(reg: ModelRegistry) -> dict:
    """Everything a failed operation must leave unchanged."""
    rm = reg.client.get_registered_model(reg.name)
    return {
        "aliases": dict(rm.aliases),
        "tags": dict(rm.tags),
        "versions": [(v.version_id, v.stage, tuple(sorted(v.tags.items()))) for v in reg.list_versions()],
    }


def test_register_numbers_versions_tags_them_and_sets_challenger(store: Store) -> None:
    reg = store.registry(mirror=False)
    base = store.runs["base"]
    v1 = reg.register(None, base.model_uri, base.metrics, run_id=base.run_id, tags={"train_start": "2020-01-01"})
    v2 = reg.register(None, f"runs:/{store.runs['better'].run_id}/model", {"holdout_log_loss": 0.9})
    assert (v1.version_id, v2.version_id) == ("1", "2")
    assert v2.run_id == store.runs["better"].run_id
    logged = reg.client.get_logged_model(store.runs["better"].model_uri.split("/")[-1])
    assert v2.path == logged.artifact_location and v2.path.startswith("file:///")
    assert v2.tags["logged_model_id"] == logged.model_id
    assert v1.metrics == pytest.approx(base.metrics, abs=5e-5) and v1.tags["train_start"] == "2020-01-01"
    assert all(len(v.split(".")[-1]) == 4 for k, v in v1.tags.items() if k.startswith("metric.")), "rounded for reading"
    assert "@" in v1.tags["registered_by"] and v1.tags["registered_at"].endswith("+00:00")
    assert reg.get_challenger().version_id == "2"
    assert reg.get_active() is None
    assert [v.version_id for v in reg.list_versions()] == ["2", "1"]
    assert reg.get("2").aliases == (CHALLENGER,) and reg.get("1").aliases == ()
    assert reg.get("1").model_uri == f"models:/{reg.name}/1"


def test_register_does_not_depend_on_the_global_tracking_uri(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow resolves ``models:/m-...`` sources through the global URI; the registry must not."""
    elsewhere = store.workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the default global URI is now sqlite:///mlflow.db in another directory
    run = store.runs["base"]
    assert store.registry(mirror=False).register(None, run.model_uri, {}).run_id == run.run_id


def test_register_with_an_explicit_version_id(store: Store) -> None:
    reg = store.registry(mirror=False)
    run = store.runs["base"]
    assert reg.register("1", run.model_uri, {}).version_id == "1"
    with pytest.raises(VersionIdMismatchError, match="already exists"):
        reg.register("1", run.model_uri, {})
    with pytest.raises(VersionIdMismatchError, match="next one is 2"):
        reg.register("7", run.model_uri, {})
    assert [v.version_id for v in reg.list_versions()] == ["1"]
    with pytest.raises(UnknownVersionError):
        reg.register("20240315_120000", run.model_uri, {})


def test_promote_moves_champion_sets_stages_and_records_who(store: Store) -> None:
    reg = store.registry(mirror=False)
    store.register("base", "better")
    first = reg.promote("1", reason="first")
    assert first.is_active and first.aliases == (CHAMPION,) and first.stage == "Production"
    assert first.tags["promoted_by"] == reg.get("1").tags["promoted_by"] and "@" in first.tags["promoted_by"]
    assert first.tags["promotion_reason"] == "first" and first.tags["promoted_at"].endswith("+00:00")
    second = reg.promote("2", promoted_by="ops@desk")
    assert second.tags["promoted_by"] == "ops@desk" and second.tags["previous_champion"] == "1"
    assert reg.get_challenger() is None, "promoting the challenger consumes the alias"
    old = reg.get("1")
    assert old.stage == "Archived" and not old.is_active and old.tags["replaced_by"] == "2"
    assert [v.version_id for v in reg.list_versions() if v.is_active] == ["2"]
    rm = reg.client.get_registered_model(reg.name)
    assert rm.tags["previous_champion"] == "1"
    events = [json.loads(v) for k, v in sorted(rm.tags.items()) if k.startswith("champion_event.")]
    assert [(e["champion"], e["previous"], e["action"]) for e in events] == [("1", None, "promote"), ("2", "1", "promote")]
    assert events[1]["by"] == "ops@desk" and "Champion: promoted at" in reg.client.get_model_version(reg.name, "2").description


def test_bare_rollback_undoes_the_last_change_and_named_rollback_goes_further(store: Store) -> None:
    reg = store.registry(mirror=False)
    store.register("base", "better", "worse")
    with pytest.raises(NoPreviousChampionError, match="promote a version explicitly"):
        reg.rollback()
    reg.promote("1")
    with pytest.raises(NoPreviousChampionError, match="signals rollback VERSION"):
        reg.rollback()
    for v in ("2", "3"):
        reg.promote(v, reason=f"promote {v}")
    assert reg.champion_history() == ["1", "2"]
    assert reg.rollback().version_id == "2"
    assert reg.previous_champion() == "3"
    assert reg.rollback().version_id == "3", "a second bare rollback undoes the first"
    back = reg.rollback("1", reason="ops")
    assert back.version_id == "1" and back.tags["rollback_reason"] == "ops"
    assert reg.get("3").tags["promotion_reason"] == "promote 3", "a rollback never rewrites a promotion's record"
    assert reg.rollback().version_id == "3", "a bare rollback undoes a named one"


def test_rollback_skips_deleted_versions(store: Store) -> None:
    reg = store.registry(mirror=False)
    store.register("base", "better", "worse")
    for v in ("1", "2", "3"):
        reg.promote(v)
    reg.client.delete_model_version(reg.name, "2")
    assert reg.rollback().version_id == "1"


def test_history_heals_when_the_alias_moved_outside_signals(store: Store) -> None:
    """E.g. someone moved the alias in the MLflow UI, or a promoter died after moving it."""
    reg = store.registry(mirror=False)
    store.register("base", "better", "worse")
    reg.promote("1")
    reg.promote("2")
    reg.client.set_registered_model_alias(reg.name, CHAMPION, "3")
    assert reg.champion_history() == ["1", "2"]
    assert reg.rollback().version_id == "2"


def test_user_errors_change_nothing(store: Store) -> None:
    reg = store.registry(mirror=False)
    with pytest.raises(EmptyRegistryError, match="no model named"):
        reg.promote("1")
    with pytest.raises(EmptyRegistryError):
        reg.rollback()
    assert reg.list_versions() == [] and reg.get_active() is None
    store.register("base", "better")
    with pytest.raises(NoPreviousChampionError, match="no champion"):
        reg.rollback()
    reg.promote("1")
    before = _state(reg)
    with pytest.raises(UnknownVersionError, match=r"no version 9 \(existing versions: 1, 2\)"):
        reg.promote("9")
    with pytest.raises(UnknownVersionError):
        reg.rollback("abc")
    with pytest.raises(AlreadyChampionError, match="already the champion"):
        reg.promote("1")
    with pytest.raises(AlreadyChampionError):
        reg.rollback("1")
    with pytest.raises(NoPreviousChampionError, match="champion is version 1"):
        reg.rollback()
    assert _state(reg) == before


def test_stage_failures_are_logged_not_fatal(store: Store, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    reg = store.registry(mirror=False)
    store.register("base")

    def gone(*a, **k):
        raise RuntimeError("stages were removed")

    monkeypatch.setattr(reg.client, "transition_model_version_stage", gone)
    with caplog.at_level("WARNING", logger="signals.registry"):
        assert reg.promote("1").is_active
    assert "could not set deprecated stage" in caplog.text


# ---------------------------------------------------------------------------- the gate through run_promote
def test_auto_promotes_a_significantly_better_challenger_and_records_it(store: Store) -> None:
    from mlflow import MlflowClient

    from signals.lifecycle.promote import run_promote

    store.register("better")
    first = run_promote(store.settings, auto=True)
    assert first.decision == "promoted" and first.gate.baseline == "class_prior" and first.champion_after == "1"
    assert "beats the class prior" in first.message and first.gate.p_value < 0.05
    store.register("base")
    store.registry(mirror=False).promote("2")  # a weaker champion, for the champion-vs-challenger gate
    store.register("better")
    res = run_promote(store.settings, auto="true")
    assert res.promoted and res.champion_before == "2" and res.champion_after == "3"
    assert res.gate.p_value < 0.05 and res.gate.n_rows == 300 and res.gate.baseline == "champion"
    v3 = store.registry(mirror=False).get("3")
    assert v3.is_active and v3.tags["promoted_by"] == "auto-gate"
    assert float(v3.tags["gate.p_value"]) == pytest.approx(res.gate.p_value, abs=5e-5)
    assert v3.tags["gate.compared_with"] == "champion v2" and v3.tags["gate.forced"] == "false"
    assert float(v3.tags["gate.log_loss_delta"]) == pytest.approx(-res.gate.improvement, abs=5e-5)
    assert float(v3.tags["gate.log_loss_delta"]) < 0
    assert len(v3.tags) <= 20, sorted(v3.tags)
    described = store.registry(mirror=False).client.get_model_version(store.settings.mlflow.model_name, "3").description
    assert "Gate: PROMOTE" in described and "compared with champion v2" in described
    assert f"p = {res.gate.p_value:.4f}" in described and f"delta {-res.gate.improvement:+.4f}" in described
    assert "Class prior on the same rows: log-loss" in described and res.gate.prior_log_loss is not None
    run = MlflowClient(tracking_uri=store.settings.mlflow.tracking_uri).get_run(res.mlflow_run_id)
    assert run.data.tags["signals.step"] == "promote"
    assert run.data.params["promote.decision"] == "promoted" and run.data.params["promote.champion_before"] == "2"
    assert run.data.metrics["promote.p_value"] == pytest.approx(res.gate.p_value)


def test_no_champion_and_no_skill_stays_challenger_unless_forced(store: Store) -> None:
    from signals.core.errors import SignalsError
    from signals.lifecycle.promote import run_promote

    store.register("worse")  # noise: loses to the class prior
    res = run_promote(store.settings, auto=True)
    assert res.decision == "kept" and not res.promoted and res.champion_after is None
    assert "does not beat the class prior" in res.message and res.gate.baseline == "class_prior"
    reg = store.registry(mirror=False)
    assert reg.get_active() is None and reg.get("1").tags["gate.decision"] == "keep"
    with pytest.raises(SignalsError, match="--force only applies to --auto"):
        run_promote(store.settings, version="1", force=True)
    forced = run_promote(store.settings, auto=True, force=True, reason="demo: inspect it anyway")
    assert forced.promoted and forced.champion_after == "1" and "FORCED" in forced.message
    v1 = store.registry(mirror=False).get("1")
    assert v1.is_active and v1.tags["gate.forced"] == "true" and v1.tags["promoted_by"] != "auto-gate"
    assert "forced over the gate" in v1.tags["promotion_reason"] and "demo: inspect it anyway" in v1.tags["promotion_reason"]
    described = reg.client.get_model_version(reg.name, "1").description
    assert "Gate: KEEP (not promoted)" in described and "compared with class prior" in described
    assert "Champion: promoted, forced over the gate's verdict" in described


def test_auto_keeps_the_champion_when_the_challenger_is_worse(store: Store) -> None:
    from signals.lifecycle.promote import run_promote

    store.register("better", "worse")
    reg = store.registry(mirror=False)
    reg.promote("1")
    before = _state(reg)
    res = run_promote(store.settings, auto=True)
    assert res.decision == "kept" and not res.promoted and res.champion_after == "1"
    assert "not lower" in res.message and res.gate.p_value > 0.5
    after = _state(reg)
    assert after["aliases"] == before["aliases"] == {CHAMPION: 1, CHALLENGER: 2}
    assert after["tags"] == before["tags"]
    assert reg.get("2").tags["gate.decision"] == "keep", "the gate result is kept as an audit trail"


def test_auto_refuses_with_too_few_common_rows_but_explicit_promotion_works(store: Store) -> None:
    from signals.lifecycle.promote import run_promote

    store.register("base", "short")
    store.registry(mirror=False).promote("1")
    res = run_promote(store.settings, auto=True)
    assert res.decision == "insufficient_data" and res.champion_after == "1"
    assert "only 95" in res.message and "at least 100" in res.message
    assert run_promote(store.settings, version="2").champion_after == "2"


def test_auto_without_holdout_or_challenger(store: Store) -> None:
    from signals.lifecycle.promote import run_promote
    from signals.registry.gate import GateError

    store.register("base", "noholdout")
    store.registry(mirror=False).promote("1")
    with pytest.raises(GateError, match="has no holdout_predictions.parquet"):
        run_promote(store.settings, auto=True)
    store.registry(mirror=False).promote("2")
    res = run_promote(store.settings, auto=True)
    assert res.decision == "no_challenger" and res.champion_after == "2"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "say which version"),
        ({"version": "2", "auto": True}, "not both"),
        ({"auto": "maybe"}, "true or false"),
        ({"version": "v2"}, "version number"),
    ],
)
def test_run_promote_validates_parameters(store: Store, kwargs: dict, message: str) -> None:
    from signals.lifecycle.params import ParameterError
    from signals.lifecycle.promote import run_promote

    with pytest.raises(ParameterError, match=message):
        run_promote(store.settings, **kwargs)


# ---------------------------------------------------------------------------- CLI
def _signals(monkeypatch: pytest.MonkeyPatch, capsys, store: Store, *args: str) -> tuple[int, str, str]:
    from signals.cli import main

    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", store.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_REDIS__URL", store.settings.redis.url)
    monkeypatch.setenv("SA_REDIS__PREFIX", store.settings.redis.prefix)
    monkeypatch.setenv("SA_REDIS__EMBEDDED_PATH", store.settings.redis.embedded_path)
    monkeypatch.setattr(sys, "argv", ["signals", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_promote_rollback_list_and_errors(store: Store, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, out, err = _signals(monkeypatch, capsys, store, "promote", "1")
    assert code == 1 and "Error: the registry has no model named" in err
    store.register("base", "better")
    code, out, err = _signals(monkeypatch, capsys, store, "register", store.runs["base"].run_id)
    assert code == 0 and "version 1" in out, "registering a run twice returns its version"
    code, out, _ = _signals(monkeypatch, capsys, store, "promote", "1")
    assert code == 0 and "version 1 is now the champion" in out
    code, out, _ = _signals(monkeypatch, capsys, store, "promote", "--auto")
    assert code == 0 and "promoted to champion" in out and "p_value=" in out
    code, out, _ = _signals(monkeypatch, capsys, store, "registry", "list")
    lines = out.splitlines()
    assert "previous champion: 1" in lines[0]
    assert lines[1].split()[:2] == ["version", "aliases"] and "log_loss_baseline" in lines[1] and "gate" in lines[1]
    assert "promote vs champion v1" in lines[3]
    assert lines[3].split()[:2] == ["2", "champion"] and lines[4].split()[0] == "1"
    for args, message in [
        (("promote", "2"), "already the champion"),
        (("promote", "42"), "no version 42"),
        (("rollback", "7"), "no version 7"),
    ]:
        code, _, err = _signals(monkeypatch, capsys, store, *args)
        assert code == 1 and message in err, (args, err)
    code, out, _ = _signals(monkeypatch, capsys, store, "rollback")
    assert code == 0 and "champion is now version 1" in out
    code, out, _ = _signals(monkeypatch, capsys, store, "rollback")
    assert code == 0 and "champion is now version 2" in out
    code, out, _ = _signals(monkeypatch, capsys, store, "registry", "list", "--json")
    assert json.loads(out)["versions"][0]["aliases"] == ["champion"]


def test_entrypoint_mains_parse_string_parameters(store: Store, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from entrypoints import promote, register, rollback

    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", store.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    assert register.main(["--run-id", store.runs["base"].run_id]) == 0
    assert register.main(["--run-id", store.runs["better"].run_id]) == 0
    assert register.main(["--run-id", "no-such-run"]) == 1
    v1 = store.registry(mirror=False).get("1")
    assert v1.data_window == {
        "train_start": "2020-01-01", "train_end": "2023-12-29", "holdout_start": "2024-01-02", "holdout_end": "2024-03-25"
    }  # fmt: skip
    assert v1.metrics == pytest.approx(store.runs["base"].metrics, abs=5e-5) and v1.tags["source_run_id"] == store.runs["base"].run_id
    assert promote.main(["--auto", "true", "--version", ""]) == 0
    assert promote.main(["--auto", "yes please"]) == 1
    assert "must be true or false" in capsys.readouterr().err
    assert store.registry(mirror=False).get_active().version_id == "2", "no champion: the challenger wins"
    assert promote.main(["--auto", "false", "--version", "1"]) == 0
    assert rollback.main(["--version", "None"]) == 0
    assert store.registry(mirror=False).get_active().version_id == "2"
    assert rollback.main([]) == 0, "rollback works repeatedly"
    assert store.registry(mirror=False).get_active().version_id == "1"


def test_a_version_deleted_mid_promotion_never_becomes_champion(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deletion does not take the registry lock: simulate it landing on either side of the alias write."""
    reg = store.registry(mirror=False)
    store.register("base", "better", "worse")
    reg.promote("1")
    real_set = reg.client.set_registered_model_alias
    before = reg.champion_history()

    def delete_then_set(name: str, alias: str, version: str) -> None:
        reg.client.delete_model_version(name, version)
        real_set(name, alias, version)

    monkeypatch.setattr(reg.client, "set_registered_model_alias", delete_then_set)
    with pytest.raises(UnknownVersionError, match="deleted while being promoted"):
        reg.promote("2")
    monkeypatch.setattr(reg.client, "set_registered_model_alias", real_set)

    def set_then_delete(name: str, alias: str, version: str) -> None:
        real_set(name, alias, version)
        if version == "3":
            reg.client.delete_model_version(name, version)

    monkeypatch.setattr(reg.client, "set_registered_model_alias", set_then_delete)
    with pytest.raises(UnknownVersionError, match="champion stays 1"):
        reg.promote("3")
    assert reg.get_active().version_id == "1"
    assert reg.champion_history() == before
    assert [v.version_id for v in reg.list_versions()] == ["1"]
