"""Two real processes promoting at once against one registry (SQLite, and PostgreSQL when up).

Each round both processes pass a barrier and promote different versions at the same moment.
Afterwards the promotions must form one unbroken chain: the champion alias is single and
points at a live version, the ``champion_event.*`` log lists every promoted version exactly
once, each version's ``previous_champion`` tag names its predecessor in that chain, and the
Redis mirror agrees. Without the registry lock, lost updates break the chain.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import uuid
from pathlib import Path

import pytest

from tests.registry.support import Template, registry_template, settings_for  # noqa: F401

pytestmark = pytest.mark.integration

ROUNDS = 4


def _promoter(settings_kwargs: dict, versions: list[str], barrier, results) -> None:
    from signals.lifecycle.wiring import open_registry

    settings = settings_for(**settings_kwargs)
    reg = open_registry(settings)
    out = []
    for v in versions:
        barrier.wait(timeout=120)
        try:
            reg.promote(v, reason="race")
            out.append((v, "ok"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            out.append((v, repr(exc)))
    results.put(out)


def _race(settings_kwargs: dict, n_versions: int) -> None:
    """Register versions, promote 1, then race two processes over the rest; check the invariants."""
    import redis

    from signals.adapters.mirror import Keys
    from signals.lifecycle.wiring import open_registry
    from signals.registry.types import CHAMPION

    settings = settings_for(**settings_kwargs)
    setup = open_registry(settings, mirror=False)
    for i in range(n_versions):
        setup.register(None, f"file:///nonexistent/model-{i}", {"holdout_log_loss": 1.0 - i / 100})
    reg = open_registry(settings)
    reg.promote("1")
    a = [str(v) for v in range(2, n_versions + 1, 2)]
    b = [str(v) for v in range(3, n_versions + 1, 2)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_promoter, args=(settings_kwargs, vs, barrier, results)) for vs in (a, b)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert all(status == "ok" for out in outcomes for _, status in out), outcomes

    rm = reg.client.get_registered_model(reg.name)
    assert list(rm.aliases) == [CHAMPION] or set(rm.aliases) == {CHAMPION, "challenger"}
    champion = str(rm.aliases[CHAMPION])
    assert reg.client.get_model_version(reg.name, champion).current_stage == "Production"
    events = [json.loads(v) for k, v in sorted(rm.tags.items()) if k.startswith("champion_event.")]
    chain = [e["champion"] for e in events]
    assert chain[-1] == champion and [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["previous"] for e in events[1:]] == chain[:-1], "each event names the champion it replaced"
    assert sorted(chain, key=int) == [str(v) for v in range(1, n_versions + 1)], f"lost update: chain {chain}"
    assert rm.tags["previous_champion"] == chain[-2]
    for before, after in zip(chain, chain[1:]):
        assert reg.get(after).tags["previous_champion"] == before, chain
    production = [v.version_id for v in reg.list_versions() if v.stage == "Production"]
    assert production == [champion]

    r = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    k = Keys(settings.redis.prefix)
    assert r.get(k.active) == champion
    assert r.hget(k.meta, "previous_champion") == chain[-2]
    assert [vid for vid in r.zrange(k.models_index, 0, -1) if r.hget(k.model(vid), "is_active") == "true"] == [champion]


def test_two_processes_promoting_on_sqlite(
    registry_template: Template, workdir: Path, redis_server_url: str, redis_prefix: str
) -> None:
    shutil.copy(registry_template.db, workdir / "mlflow.db")  # an already-migrated store
    _race(dict(workdir=workdir, redis_url=redis_server_url, prefix=redis_prefix), 1 + 2 * ROUNDS)


def _postgres_admin_url() -> str | None:
    import sqlalchemy as sa

    url = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return url
    except Exception:  # noqa: BLE001 - no PostgreSQL here
        return None


@pytest.fixture
def postgres_uri():
    """A throwaway PostgreSQL database (dropped afterwards); skips when PostgreSQL is not up."""
    import sqlalchemy as sa

    admin = _postgres_admin_url()
    if admin is None:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"signals_registry_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        try:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"cannot create a PostgreSQL database: {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def test_two_processes_promoting_on_postgresql(
    postgres_uri: str, workdir: Path, redis_server_url: str, redis_prefix: str
) -> None:
    from signals.registry.locks import PostgresAdvisoryLock, registry_lock

    assert isinstance(registry_lock(postgres_uri, "signals-xgb"), PostgresAdvisoryLock)
    _race(dict(workdir=workdir, redis_url=redis_server_url, prefix=redis_prefix, tracking_uri=postgres_uri), 1 + 2 * ROUNDS)


def test_postgres_advisory_lock_excludes_other_sessions(postgres_uri: str) -> None:
    import time

    from signals.registry.locks import PostgresAdvisoryLock
    from signals.registry.types import RegistryBusyError

    holder = PostgresAdvisoryLock(postgres_uri, "m")
    other = PostgresAdvisoryLock(postgres_uri, "m", timeout=0.3)
    with holder:
        with holder:  # reentrant in one session
            pass
        t0 = time.monotonic()
        with pytest.raises(RegistryBusyError, match="advisory lock"):
            with other:
                pass
        assert time.monotonic() - t0 >= 0.3
    with other:  # released on exit
        pass
