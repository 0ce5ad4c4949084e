"""``registry.lock_url``: promotions from different hosts are serialised whatever the tracking URI.

"Different hosts" is two spawned processes that share nothing but the servers: each has its own
temp directory (where the default lock of an HTTP registry lives, so that lock cannot see the
other process) and its own working directory. Each records when it held the lock; the
intervals must not overlap, and the champion chain must come out whole.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path

import mlflow
import pytest

from signals.adapters import tracking as T
from signals.registry.locks import FileRegistryLock, PostgresAdvisoryLock, RedisRegistryLock, registry_lock
from tests.conftest import REPO_ROOT, fresh_pg_database
from tests.registry.support import settings_for


def _settings(tracking_uri: str, model_name: str, artifacts: str, lock_url: str):
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": tracking_uri, "model_name": model_name, "artifact_location": artifacts},
        registry={"lock_url": lock_url},
        redis={"enabled": False},
    )

HTTP_REGISTRY = "https://mlflow.example.com:5000"


# ----------------------------------------------------------------------------- choosing the lock
@pytest.mark.parametrize("registry_uri", [HTTP_REGISTRY, "sqlite:////tmp/x/mlflow.db", "postgresql://u@db:5432/mlflow"])
def test_a_configured_lock_url_wins_whatever_the_registry(registry_uri: str) -> None:
    pg = registry_lock(registry_uri, "m", lock_url="postgresql://u@coord:5432/locks")
    assert isinstance(pg, PostgresAdvisoryLock) and pg.uri == "postgresql://u@coord:5432/locks"
    assert isinstance(registry_lock(registry_uri, "m", lock_url="redis://coord:6379/0"), RedisRegistryLock)


def test_an_http_registry_without_a_lock_url_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    uri = f"https://mlflow-{uuid.uuid4().hex[:6]}.example.com"
    with caplog.at_level(logging.WARNING, logger="signals.registry"):
        assert isinstance(registry_lock(uri, "m"), FileRegistryLock)
        registry_lock(uri, "m")
    warnings = [r for r in caplog.records if "this machine only" in r.getMessage()]
    assert len(warnings) == 1 and "registry.lock_url" in warnings[0].getMessage()


def test_settings_pass_the_lock_url_to_the_registry(workdir: Path) -> None:
    from signals.registry.client import ModelRegistry

    settings = settings_for(workdir, enabled=False, registry={"lock_url": "redis://coord:6379/0", "lock_timeout_s": 7})
    reg = ModelRegistry.from_settings(settings)
    assert isinstance(reg.lock, RedisRegistryLock) and reg.lock.timeout == 7


# ----------------------------------------------------------------------------- two "hosts"
def _own_host(root: str) -> None:
    """This process's private temp and working directories (what another machine would have)."""
    import os

    Path(root).mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = root
    os.chdir(root)


def _hold(root: str, lock_url: str | None, barrier, results) -> None:
    _own_host(root)
    lock = registry_lock(HTTP_REGISTRY, "m", timeout=30, lock_url=lock_url)
    barrier.wait(timeout=60)
    spans = []
    for _ in range(3):
        with lock:
            start = time.time()
            time.sleep(0.15)
            spans.append((start, time.time()))
    results.put(spans)


def _run_two(target, args_of) -> list[tuple[float, float]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(k), barrier, results)) for k in range(2)]
    for p in procs:
        p.start()
    spans = [s for _ in procs for s in results.get(timeout=240)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return sorted(spans)


def _overlaps(spans: list[tuple[float, float]]) -> int:
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:]) if start < end)


@pytest.fixture(scope="module")
def coordination_db():
    with fresh_pg_database("sig_locks") as url:
        yield url


@pytest.mark.integration
def test_without_a_lock_url_two_hosts_interleave(tmp_path: Path) -> None:
    """The control: the default lock of an HTTP registry is a local file, so "hosts" overlap."""
    spans = _run_two(_hold, lambda k: (str(tmp_path / f"host{k}"), None))
    assert _overlaps(spans) > 0, "the two processes never overlapped: the lock tests below would prove nothing"


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_a_lock_url_serialises_two_hosts(kind: str, tmp_path: Path, coordination_db: str, redis_server_url: str) -> None:
    if kind == "redis" and not redis_server_url.startswith("redis://"):
        pytest.skip("the Redis lock needs a Redis reachable by URL")
    lock_url = coordination_db if kind == "postgresql" else redis_server_url
    spans = _run_two(_hold, lambda k: (str(tmp_path / f"host{k}"), lock_url))
    assert len(spans) == 6 and _overlaps(spans) == 0, spans


# ----------------------------------------------------------------------------- promotions
class _Recording:
    """The registry's lock, noting when this process held it."""

    def __init__(self, inner, spans: list) -> None:
        self.inner, self.spans = inner, spans

    def __enter__(self):
        self.inner.__enter__()
        self.start = time.time()
        time.sleep(0.05)  # widen the window a lost update would need
        return self

    def __exit__(self, *exc):
        self.spans.append((self.start, time.time()))
        return self.inner.__exit__(*exc)


def _promoter(root: str, settings_kwargs: dict, versions: list[str], barrier, results) -> None:
    from signals.lifecycle.wiring import open_registry

    _own_host(root)
    reg = open_registry(_settings(**settings_kwargs), mirror=False)
    spans: list = []
    reg.lock = _Recording(reg.lock, spans)
    barrier.wait(timeout=120)
    for v in versions:
        reg.promote(v, reason="race across hosts")
    results.put(spans)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["postgresql", pytest.param("redis", marks=pytest.mark.slow)])
def test_promotions_from_two_hosts_are_serialised(
    kind: str, tmp_path: Path, coordination_db: str, redis_server_url: str, postgres_registry: str
) -> None:
    from signals.lifecycle.wiring import open_registry
    from signals.registry.types import CHAMPION

    if kind == "redis" and not redis_server_url.startswith("redis://"):
        pytest.skip("the Redis lock needs a Redis reachable by URL")
    lock_url = coordination_db if kind == "postgresql" else redis_server_url
    kwargs = dict(tracking_uri=postgres_registry, model_name=f"race-{kind}",
                  artifacts=(tmp_path / "artifacts").as_uri(), lock_url=lock_url)
    settings = _settings(**kwargs)
    reg = open_registry(settings, mirror=False)
    try:  # the direct-database mode creates experiments where the settings say, not in ./mlruns
        exp_id = T.configure_mlflow(settings, experiment=f"race-{kind}")
        assert reg.client.get_experiment(exp_id).artifact_location == kwargs["artifacts"]
    finally:
        mlflow.set_tracking_uri(None)
    n = 7
    for i in range(n):
        reg.register(None, f"file:///nonexistent/model-{i}", {"holdout_log_loss": 1.0 - i / 100})
    reg.promote("1")
    shares = [[str(v) for v in range(2, n + 1, 2)], [str(v) for v in range(3, n + 1, 2)]]
    spans = _run_two(_promoter, lambda k: (str(tmp_path / f"host{k}"), kwargs, shares[k]))
    assert len(spans) == n - 1 and _overlaps(spans) == 0, spans

    rm = reg.client.get_registered_model(reg.name)
    events = reg.history()  # the append-only champion events
    chain = [e.champion for e in events]
    assert sorted(chain, key=int) == [str(v) for v in range(1, n + 1)], f"lost update: chain {chain}"
    assert str(rm.aliases[CHAMPION]) == chain[-1]
    for before, event in zip(chain, events[1:]):
        assert event.previous == before, chain


@pytest.fixture(scope="module")
def postgres_registry():
    with fresh_pg_database("sig_registry") as url:
        yield url
