"""Settings that only matter once several hosts share the servers: the artifact location of the
direct-database tracking mode, and the warning for a host mirroring into its own embedded Redis."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from signals.adapters import tracking as T
from signals.adapters.mirror import Mirror
from signals.settings.model import ConfigError, load_settings
from tests.conftest import REPO_ROOT


def _settings(tracking_uri: str, **sections):
    return load_settings(REPO_ROOT / "config" / "settings.yaml", mlflow={"tracking_uri": tracking_uri, **sections.pop("mlflow", {})},
                         **sections)


@pytest.mark.parametrize("uri", ["postgresql://u@db:5432/mlflow", "postgresql+psycopg://u@db/mlflow", "mysql://u@db/mlflow"])
def test_a_database_tracking_uri_needs_an_artifact_location(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"mlflow.artifact_location is not set.*own ./mlruns"):
        T.artifact_location(_settings(uri))
    assert T.artifact_location(_settings(uri, mlflow={"artifact_location": "s3://bucket/mlruns"})) == "s3://bucket/mlruns"


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "http://mlflow:5000", "file:///tmp/mlruns"])
def test_other_tracking_uris_keep_mlflows_default(uri: str) -> None:
    assert T.artifact_location(_settings(uri)) is None  # the server, or this machine's store, decides


def _embedded_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "embedded Redis" in r.getMessage()]


@pytest.mark.parametrize("uri", ["https://mlflow.example.com", "postgresql://u@db:5432/mlflow"])
def test_a_remote_registry_with_an_embedded_redis_warns_once(uri: str, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(uri, redis={"embedded_path": str(workdir / ".redis" / "x.rdb")})
    with caplog.at_level(logging.WARNING, logger="signals.redis"):
        Mirror.from_settings(settings, snapshot_provider=lambda: None)
        Mirror.from_settings(settings, snapshot_provider=lambda: None)
    [message] = _embedded_warnings(caplog)
    assert "SA_REDIS__URL" in message and "no other host reads" in message


@pytest.mark.parametrize(("uri", "redis"), [
    ("sqlite:///mlflow.db", {}),  # one machine: the embedded Redis is the right default
    ("https://mlflow.example.org", {"url": "redis://10.0.0.7:6379/0"}),
    ("https://mlflow.example.net", {"enabled": False}),
])
def test_no_warning_when_the_mirror_is_shared_or_local(uri: str, redis: dict, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="signals.redis"):
        Mirror.from_settings(_settings(uri, redis=redis), snapshot_provider=lambda: None)
    assert _embedded_warnings(caplog) == []
