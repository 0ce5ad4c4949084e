"""The feature build on a real 2-worker Dask cluster (``compute.address``): bit for bit the local
build, and a worker killed in the middle of writing its cache segment costs a retry, never a
damaged cache."""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import pytest

from signals.adapters import dask_compute
from signals.core.digest import frame_digest
from signals.data.parquet import ParquetProvider, write_layout
from signals.data.synthetic import synthetic_universe
from signals.features import FeatureStore
from signals.features.cache import CacheIndex
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

N_SYMBOLS, N_DAYS = 8, 300


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    write_layout(root, synthetic_universe(N_SYMBOLS, N_DAYS, n_sectors=2))
    return root


@pytest.fixture(scope="module")
def local_digest(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    frame = FeatureStore(tmp_path_factory.mktemp("local-cache"), n_jobs=1).get_features(None, None, None, ParquetProvider(layout))
    return frame_digest(frame)


def _settings(workdir: Path, address: str, layout: Path):
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        data={"provider": "parquet", "path": str(layout)},
        features={"cache_dir": str(workdir / "cache")},
        compute={"address": address},
        redis={"enabled": False},
    )


def test_a_build_on_dask_equals_the_local_build_bit_for_bit(
    dask_cluster: str, layout: Path, local_digest: str, workdir: Path
) -> None:
    from signals.lifecycle.wiring import feature_store

    store = feature_store(_settings(workdir, dask_cluster, layout))
    assert isinstance(store.executor, dask_compute.DaskExecutor) and store.n_jobs == 2
    cold = store.get_features(None, None, None, ParquetProvider(layout))
    assert store.last_stats.built == N_SYMBOLS and store.last_stats.chunks == N_SYMBOLS  # 2 threads x 4 chunks
    assert frame_digest(cold) == local_digest
    warm = store.get_features(None, None, None, ParquetProvider(layout))
    assert store.last_stats.cache_hits == N_SYMBOLS
    assert frame_digest(warm) == local_digest


def test_local_compute_keeps_the_local_executor(workdir: Path, layout: Path) -> None:
    from signals.lifecycle.wiring import feature_store

    assert feature_store(_settings(workdir, "local", layout)).executor is None


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(dask_compute.ComputeError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 .*dask scheduler"):
        dask_compute.client_for("tcp://127.0.0.1:9", timeout=1)


class BuggyProvider(ParquetProvider):
    """Fails on S0003 with a bug, on whichever worker builds it."""

    def _load_bars(self, symbol):
        if symbol == "S0003":
            raise ZeroDivisionError("bug in the provider")
        return super()._load_bars(symbol)


def test_a_failing_chunk_reaches_the_caller_with_its_type_and_symbol(dask_cluster: str, layout: Path, tmp_path: Path) -> None:
    executor = dask_compute.DaskExecutor(dask_compute.client_for(dask_cluster), retries=0)
    store = FeatureStore(tmp_path / "cache", n_jobs=2, executor=executor)
    with pytest.raises(ZeroDivisionError, match="bug in the provider") as info:
        store.get_features(None, None, None, BuggyProvider(layout))
    assert any("S0003" in note and "none of the chunk was cached" in note for note in info.value.__notes__)


# ----------------------------------------------------------------------------- a worker killed mid-build
def die_while_publishing_once(marker: str, victim: str, fn, task):
    """Runs ``fn(task)``; the first time a chunk holding ``victim`` runs anywhere, its worker
    process dies while closing the chunk's segment (its rows written, the rename not done)."""
    if victim in task.symbols and not os.path.exists(marker):
        Path(marker).touch()
        from signals.features import cache

        cache._OpenSegment.close = lambda self: os._exit(9)  # this worker process only: it is about to die
    return fn(task)


class KillOnce:
    """The Dask executor, with the chunk of ``victim`` killing its worker on its first attempt."""

    def __init__(self, inner: dask_compute.DaskExecutor, marker: Path, victim: str) -> None:
        self.inner, self.marker, self.victim = inner, marker, victim
        self.parallelism = inner.parallelism

    def map(self, fn, tasks):
        return self.inner.map(partial(die_while_publishing_once, str(self.marker), self.victim, fn), tasks)


def test_a_worker_killed_mid_build_is_retried_and_the_cache_stays_whole(
    dask_cluster: str, layout: Path, local_digest: str, tmp_path: Path
) -> None:
    executor = dask_compute.DaskExecutor(dask_compute.client_for(dask_cluster), retries=0)
    marker, cache_dir = tmp_path / "killed-once", tmp_path / "cache"
    store = FeatureStore(cache_dir, n_jobs=2, executor=KillOnce(executor, marker, "S0003"))
    frame = store.get_features(None, None, None, ParquetProvider(layout))
    assert marker.exists(), "the victim's worker was never killed: the test proved nothing"
    assert list(cache_dir.glob(".features-*.tmp")), "the dead worker left no half-written segment"
    assert frame_digest(frame) == local_digest and store.last_stats.built == N_SYMBOLS

    index = CacheIndex.scan(cache_dir)
    assert index.problems == []  # no damaged or half-written segment is visible
    assert sorted(index.entries) == [f"S{i:04d}" for i in range(N_SYMBOLS)]
    # chunks rerun because their results died with the worker may have left superseded segments;
    # the next build serves every symbol from its newest entry and collects the rest
    warm_store = FeatureStore(cache_dir, n_jobs=2, executor=executor)
    assert frame_digest(warm_store.get_features(None, None, None, ParquetProvider(layout))) == local_digest
    assert warm_store.last_stats.cache_hits == N_SYMBOLS and warm_store.last_stats.invalid == 0
    after = CacheIndex.scan(cache_dir)
    assert after.problems == [] and all(len(entries) == 1 for entries in after.entries.values())
    shutil.rmtree(cache_dir)
