"""FeatureStore: the get_features contract, cache keys, invalidation, corrupt files, atomic
writes, and the chunk tasks in-process, in loky workers and through injected executors, on a
small synthetic Parquet layout."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from signals.data.errors import DataValidationError, UnknownSymbolError
from signals.data.parquet import ParquetProvider, write_layout
from signals.data.synthetic import synthetic_universe
from signals.features import FEATURE_VERSION, FeatureError, FeatureStore, feature_names
from signals.features import build as build_mod
from signals.features import cache as cache_mod
from signals.features import store as store_mod

N_SYMBOLS, N_DAYS = 6, 300


@pytest.fixture(scope="module")
def layout_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    write_layout(root, synthetic_universe(N_SYMBOLS, N_DAYS, n_sectors=2))
    return root


@pytest.fixture
def layout(layout_template: Path, tmp_path: Path) -> Path:
    """A private copy, so tests may edit the data."""
    return Path(shutil.copytree(layout_template, tmp_path / "data"))


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "cache", n_jobs=1)


def build(store: FeatureStore, layout: Path, symbols=None, start=None, end=None) -> pd.DataFrame:
    return store.get_features(symbols, start, end, ParquetProvider(layout))


# ----------------------------------------------------------------------------- contract
def test_get_features_contract(store: FeatureStore, layout: Path) -> None:
    frame = build(store, layout)
    assert list(frame.columns) == feature_names()
    assert (frame.dtypes == "float64").all()
    assert frame.index.names == ["symbol", "date"]
    assert frame.index.is_monotonic_increasing and not frame.index.has_duplicates
    assert sorted(frame.index.get_level_values("symbol").unique()) == [f"S{i:04d}" for i in range(N_SYMBOLS)]
    assert len(frame) == N_SYMBOLS * N_DAYS
    assert store.last_stats.built == N_SYMBOLS and store.last_stats.cache_hits == 0


def test_slicing_never_changes_values_and_warm_up_uses_earlier_data(store: FeatureStore, layout: Path) -> None:
    full = build(store, layout, ["S0001", "s0000"])
    start, end = "2010-11-01", "2010-11-30"
    part = FeatureStore(store.cache_dir, use_cache=False).get_features(["S0000", "S0001"], start, end, ParquetProvider(layout))
    dates = full.index.get_level_values("date")
    expected = full[(dates >= start) & (dates <= end)]
    pd.testing.assert_frame_equal(part, expected)
    # 2010-11 is ~230 bars in: SMA(200) is already valid because history before `start` was used
    assert part["price_vs_sma_200"].notna().all()


def test_request_errors(store: FeatureStore, layout: Path) -> None:
    provider = ParquetProvider(layout)
    with pytest.raises(UnknownSymbolError, match="NOPE"):
        store.get_features(["S0000", "NOPE"], None, None, provider)
    with pytest.raises(FeatureError, match="after end"):
        store.get_features(["S0000"], "2011-01-01", "2010-01-01", provider)
    with pytest.raises(FeatureError, match="no feature rows"):
        store.get_features(["S0000"], "2030-01-01", None, provider)
    with pytest.raises(FeatureError, match="invalid start"):
        store.get_features(["S0000"], "not-a-date", None, provider)
    with pytest.raises(FeatureError, match="data provider"):
        store.get_features(["S0000"], None, None, None)
    assert len(store.get_features("S0002", None, "2010-02-01", provider)) > 0  # a bare string is one symbol


def test_from_settings(settings) -> None:
    store = FeatureStore.from_settings(settings)
    assert store.cache_dir == Path(settings.features.cache_dir) and store.n_jobs == settings.features.n_jobs
    assert FeatureStore.from_settings(settings, use_cache=False).use_cache is False


# ----------------------------------------------------------------------------- cache
def segments(store: FeatureStore) -> list[Path]:
    return sorted(store.cache_dir.glob("features-*.parquet"))


def test_warm_cache_serves_identical_features(store: FeatureStore, layout: Path) -> None:
    cold = build(store, layout)
    warm = build(store, layout)
    assert store.last_stats.cache_hits == N_SYMBOLS and store.last_stats.built == 0
    pd.testing.assert_frame_equal(cold, warm)
    # one segment, readable by anyone as a long (symbol, date, features...) panel
    [segment] = segments(store)
    assert sorted(p.name for p in store.cache_dir.iterdir()) == [segment.name]
    panel = pd.read_parquet(segment).set_index(["symbol", "date"])
    panel.index = panel.index.set_levels(panel.index.levels[0].astype(object), level="symbol")
    pd.testing.assert_frame_equal(panel.sort_index(), cold, check_index_type=False)


def test_changed_bars_are_rebuilt_not_served_stale(store: FeatureStore, layout: Path) -> None:
    before = build(store, layout)
    path = layout / "bars" / "S0003.parquet"
    bars = pd.read_parquet(path)
    bars.loc[bars.index[-1], "volume"] *= 3
    bars.to_parquet(path)
    after = build(store, layout)
    assert store.last_stats.stale == 1 and store.last_stats.cache_hits == N_SYMBOLS - 1
    assert after.loc[("S0003", slice(None)), "volume_ratio_20"].iloc[-1] != before.loc[("S0003", slice(None)), "volume_ratio_20"].iloc[-1]
    pd.testing.assert_frame_equal(after.drop(index="S0003", level="symbol"), before.drop(index="S0003", level="symbol"))
    # the new entry lives in a new segment; the old one still holds the other five symbols
    assert len(segments(store)) == 2
    pd.testing.assert_frame_equal(build(store, layout), after)
    assert store.last_stats.cache_hits == N_SYMBOLS


def test_a_peer_filing_invalidates_its_sector_only(store: FeatureStore, layout: Path) -> None:
    build(store, layout)
    fund = pd.read_parquet(layout / "fundamentals.parquet")
    peer = fund.index[fund["symbol"] == "S0000"][-1]  # sector 0 holds S0000, S0002, S0004
    fund.loc[peer, "pe"] *= 2
    fund.to_parquet(layout / "fundamentals.parquet")
    build(store, layout)
    assert store.last_stats.built == 3 and store.last_stats.cache_hits == 3


def test_new_feature_version_rebuilds_everything_and_drops_the_old_segments(
    store: FeatureStore, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(store, layout)
    [old] = segments(store)
    monkeypatch.setattr(cache_mod, "FEATURE_VERSION", FEATURE_VERSION + "-next")
    build(store, layout)
    assert store.last_stats.built == N_SYMBOLS and store.last_stats.stale == N_SYMBOLS
    [new] = segments(store)  # every entry of the old segment was superseded: it is gone
    assert new != old and not old.exists()
    assert pq.read_metadata(new).metadata[b"signals.features"].decode().count("-next") == 1


def test_garbage_collection_keeps_every_newest_entry(store: FeatureStore) -> None:
    """A segment goes only when each of its symbols has a newer entry elsewhere."""
    idx = pd.bdate_range("2020-01-01", periods=5, name="date")
    frame = pd.DataFrame(np.ones((5, len(feature_names()))), index=idx, columns=feature_names())
    first = cache_mod.write_segment(
        store.cache_dir, [cache_mod.CacheItem(s, idx.asi8, frame.to_numpy().T.copy(), "fp") for s in ("A", "B")]
    )
    store.save("A", frame * 2)  # newer A; B's newest entry is still in `first`
    assert first.exists() and store.cache_file("B") == first and store.cache_file("A") != first
    store.save("B", frame * 3)
    assert not first.exists()
    assert store.load("A").iloc[0, 0] == 2.0 and store.load("B").iloc[0, 0] == 3.0
    assert len(segments(store)) == 2


def test_other_cache_formats_are_removed_quietly(
    store: FeatureStore, layout: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries of another store layout are stale (like changed code), not reported as damaged:
    segments of another format and the per-symbol files of cache format 2."""
    build(store, layout)
    legacy = store.cache_dir / "S0000.parquet"  # what cache format 2 wrote
    table = pa.table({"date": pd.to_datetime(["2020-01-02"]), "rsi_14": [50.0]})
    meta = {b"signals.features": json.dumps({"format": 2, "symbol": "S0000", "feature_version": "x"}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), legacy)
    unrelated = store.cache_dir / "notes.parquet"  # not ours: left alone
    pq.write_table(pa.table({"a": [1]}), unrelated)
    monkeypatch.setattr(cache_mod, "CACHE_FORMAT", cache_mod.CACHE_FORMAT + 1)
    with caplog.at_level(logging.WARNING, logger="signals.features"):
        build(store, layout)
    assert store.last_stats.built == N_SYMBOLS and store.last_stats.invalid == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not legacy.exists() and unrelated.exists() and len(segments(store)) == 1


@pytest.mark.parametrize("kind", ["garbage", "foreign", "truncated"])
def test_damaged_or_foreign_segment_is_reported_removed_and_rebuilt(
    store: FeatureStore, layout: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    good = build(store, layout, ["S0001"])
    [path] = segments(store)
    if kind == "garbage":
        path.write_bytes(b"not a parquet file")
    elif kind == "foreign":
        pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        again = build(store, layout, ["S0001"])
    assert any(path.name in r.getMessage() and "rebuilt" in r.getMessage() for r in caplog.records)
    assert store.last_stats.invalid == 1 and store.last_stats.built == 1
    pd.testing.assert_frame_equal(again, good)
    [new] = segments(store)
    assert new != path and store.load("S0001") is not None  # the rebuilt entry is valid


def test_corrupt_bytes_inside_a_segment_are_caught_by_page_checksums(
    store: FeatureStore, layout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Damage that leaves the footer readable: the entry fails its CRC and is rebuilt."""
    good = build(store, layout, ["S0001"])
    [path] = segments(store)
    data = bytearray(path.read_bytes())
    at = len(data) // 3  # inside the column chunks, far from the footer
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        again = build(store, layout, ["S0001"])
    assert any("S0001" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert store.last_stats.invalid == 1
    pd.testing.assert_frame_equal(again, good)
    assert not path.exists()  # superseded by the rebuilt entry, then collected


def test_segment_write_is_atomic(store: FeatureStore, layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(store, layout, ["S0001"])
    [path] = segments(store)
    original = path.read_bytes()
    real = cache_mod._group_table
    calls = []

    def crash(group, schema):  # the first row group reached the file, then the disk filled up
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        return real(group, schema)

    monkeypatch.setattr(cache_mod, "SYMBOLS_PER_ROW_GROUP", 1)
    monkeypatch.setattr(cache_mod, "_group_table", crash)
    items = [cache_mod.CacheItem(s, np.arange(3) * 86_400_000_000_000, np.zeros((len(feature_names()), 3)), "x") for s in "AB"]
    with pytest.raises(OSError, match="disk full"):
        cache_mod.write_segment(store.cache_dir, items)
    assert len(calls) == 2 and path.read_bytes() == original
    assert [p.name for p in store.cache_dir.iterdir()] == [path.name]  # no temp file left behind


def test_segment_writer_streams_row_groups_and_publishes_only_whole_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod, "SYMBOLS_PER_ROW_GROUP", 2)
    writer = cache_mod.SegmentWriter(tmp_path, per_segment=4)
    dates = np.arange(3) * 86_400_000_000_000
    values = {f"S{k}": np.full((len(feature_names()), 3), float(k)) for k in range(5)}
    for symbol in ("S0", "S1", "S2"):
        writer.add(symbol, dates, values[symbol], "fp")
    # the first row group is on disk, in a temporary file: no segment is visible yet
    assert not list(tmp_path.glob("features-*.parquet")) and len(list(tmp_path.glob(".*.tmp"))) == 1
    writer.add("S3", dates, values["S3"], "fp")  # the segment is full: it is published
    assert len(list(tmp_path.glob("features-*.parquet"))) == 1 and not list(tmp_path.glob(".*.tmp"))
    writer.add("S4", dates, values["S4"], "fp")
    assert writer.flush() is not None and writer.flush() is None
    index = cache_mod.CacheIndex.scan(tmp_path)
    assert sorted(index.entries) == sorted(values) and len(index.segments) == 2
    reader = cache_mod.SegmentReader()
    for symbol, expected in values.items():
        got_dates, table, offset = reader.read(index.find(symbol, "fp"))
        out = np.empty_like(expected)
        cache_mod.copy_rows(table, offset, out)
        np.testing.assert_array_equal(got_dates, dates)
        np.testing.assert_array_equal(out, expected)
    reader.close()


def test_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    import os
    import time

    stale = tmp_path / ".features-00000000000000000001-7-abcdef.parquet.x1y2.tmp"
    live = tmp_path / ".features-00000000000000000002-8-abcdef.parquet.z3w4.tmp"
    other = tmp_path / ".notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    old = time.time() - cache_mod.ABANDONED_AFTER_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    cache_mod.CacheIndex.scan(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()


def test_a_cache_write_failure_warns_and_still_returns_the_features(
    store: FeatureStore, layout: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = FeatureStore(store.cache_dir.parent / "other", use_cache=False).get_features(None, None, None, ParquetProvider(layout))

    def full(self, group):  # a row group's write fails with the temporary file open
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod._OpenSegment, "write", full)
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        frame = build(store, layout)
    pd.testing.assert_frame_equal(frame, expected)
    assert any("could not write the feature cache" in r.getMessage() and "No space" in r.getMessage() for r in caplog.records)
    assert not segments(store) and not list(store.cache_dir.glob(".*.tmp"))  # nothing half-written left


def test_save_load_roundtrip_and_keys(store: FeatureStore) -> None:
    idx = pd.bdate_range("2020-01-01", periods=10, name="date")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(10, len(feature_names()))), index=idx, columns=feature_names())
    frame.iloc[0, 3] = np.nan
    path = store.save("XYZ", frame, fingerprint="abc")
    assert store.cache_file("xyz") == path
    pd.testing.assert_frame_equal(store.load("XYZ"), frame, check_freq=False)
    pd.testing.assert_frame_equal(store.load("XYZ", "2020-01-03", "2020-01-07"), frame.loc["2020-01-03":"2020-01-07"], check_freq=False)
    assert store.load("XYZ", fingerprint="abc") is not None
    assert store.load("XYZ", fingerprint="other") is None
    assert store.load("NOPE") is None and store.cache_file("NOPE") is None
    with pytest.raises(FeatureError, match="feature spec"):  # the feature list (was "feature registry")
        store.save("XYZ", frame.iloc[:, :-1])
    store.save("BRK/B", frame)  # any symbol: names live in the data, not in file names
    pd.testing.assert_frame_equal(store.load("brk/b"), frame, check_freq=False)


def test_use_cache_false_writes_nothing(tmp_path: Path, layout: Path) -> None:
    store = FeatureStore(tmp_path / "nocache", use_cache=False)
    build(store, layout, ["S0000"])
    assert not (tmp_path / "nocache").exists()


# ----------------------------------------------------------------------------- chunks and executors
class _InProcess:
    """An executor that runs every task here, each pickled and unpickled first as if it were
    sent to another process: the out-of-process transport (values read back from the cache),
    where monkeypatches still apply."""

    def __init__(self) -> None:
        self.tasks: list = []

    def map(self, fn, tasks):
        self.tasks = [pickle.loads(pickle.dumps(t)) for t in tasks]
        self.bars_on_arrival = [len(t.provider._bars_cache) for t in self.tasks]
        return [fn(t) for t in self.tasks]


class _BuggyProvider(ParquetProvider):
    """Fails on S0003 with a bug (not a data error), in whichever process builds it."""

    def _load_bars(self, symbol):
        if symbol == "S0003":
            raise ZeroDivisionError("bug in the provider")
        return super()._load_bars(symbol)


class _DyingProvider(ParquetProvider):
    """Kills the process that loads S0003, as the OOM killer would."""

    def _load_bars(self, symbol):
        if symbol == "S0003":
            os._exit(3)
        return super()._load_bars(symbol)


def test_split_chunks_keeps_order_and_evens_out_sizes() -> None:
    symbols = [f"S{i}" for i in range(10)]
    chunks = build_mod.split_chunks(symbols, 4)
    assert [len(c) for c in chunks] == [3, 3, 2, 2] and [s for c in chunks for s in c] == symbols
    assert build_mod.split_chunks(symbols[:2], 8) == [("S0",), ("S1",)]
    assert build_mod.split_chunks([], 3) == []


def test_process_pool_matches_serial_and_reports_progress(tmp_path: Path, layout: Path) -> None:
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    seen: list[str] = []
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    parallel = pool.get_features(None, None, None, ParquetProvider(layout), progress=seen.append)
    assert pool.last_stats.workers == 2 and pool.last_stats.chunks == N_SYMBOLS  # 2 x 4 chunks wanted, one per symbol
    assert sorted(seen) == sorted(serial.index.get_level_values("symbol").unique())
    pd.testing.assert_frame_equal(parallel, serial)
    assert len(segments(pool)) == N_SYMBOLS  # one segment per chunk
    warm = pool.get_features(None, None, None, ParquetProvider(layout))
    assert pool.last_stats.cache_hits == N_SYMBOLS
    pd.testing.assert_frame_equal(warm, serial)


def test_worker_errors_reach_the_caller_with_their_type(tmp_path: Path, layout: Path) -> None:
    path = layout / "bars" / "S0004.parquet"
    bars = pd.read_parquet(path)
    bars.loc[bars.index[10], "close"] = -1.0
    bars.to_parquet(path)
    pool = FeatureStore(tmp_path / "c", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(DataValidationError, match="S0004") as info:
        pool.get_features(None, None, None, ParquetProvider(layout))
    assert info.value.column == "close"
    assert any("S0004" in note for note in info.value.__notes__)


def test_a_shared_input_error_in_the_pool_reaches_the_caller(tmp_path: Path, layout: Path) -> None:
    """The shared inputs are prepared before any chunk runs: their errors are raised as they are."""
    fundamentals = pd.read_parquet(layout / "fundamentals.parquet").drop(columns="filed_at")
    fundamentals.to_parquet(layout / "fundamentals.parquet")
    pool = FeatureStore(tmp_path / "c", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(DataValidationError, match="filed_at"):
        pool.get_features(None, None, None, ParquetProvider(layout))


def test_process_pool_slices_like_serial_and_serves_hits_from_the_cache(tmp_path: Path, layout: Path) -> None:
    """A date slice through the pool equals the serial slice, cold and warm (the parent reads
    each symbol's requested rows from the entry its chunk named)."""
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout, None, "2010-06-01", "2010-09-30")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    cold = build(pool, layout, None, "2010-06-01", "2010-09-30")
    pd.testing.assert_frame_equal(cold, serial)
    warm = build(pool, layout, None, "2010-06-01", "2010-09-30")
    assert pool.last_stats.cache_hits == N_SYMBOLS
    pd.testing.assert_frame_equal(warm, serial)


def test_an_injected_executor_runs_the_chunks(tmp_path: Path, layout: Path) -> None:
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    executor = _InProcess()
    store = FeatureStore(tmp_path / "b", n_jobs=1, executor=executor)
    pd.testing.assert_frame_equal(build(store, layout), serial)
    assert len(executor.tasks) == 4 and store.last_stats.chunks == 4  # n_jobs x CHUNKS_PER_WORKER
    assert not any(t.ship_values for t in executor.tasks)  # the values are read back from the cache
    assert executor.bars_on_arrival == [0] * 4  # the provider travels without what it has read
    pd.testing.assert_frame_equal(build(store, layout, ["S0001"], "2010-03-01", "2010-05-31"), serial.loc[["S0001"]].loc[
        (slice(None), slice("2010-03-01", "2010-05-31")), :])
    assert store.last_stats.cache_hits == 1 and len(executor.tasks) == 1


def test_a_standard_library_process_pool_needs_no_fork(tmp_path: Path, layout: Path) -> None:
    """Nothing in a task depends on fork, shared memory or pipes of ours: spawned processes build it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        store = FeatureStore(tmp_path / "b", n_jobs=2, executor=pool)
        pd.testing.assert_frame_equal(build(store, layout), serial)
        pd.testing.assert_frame_equal(build(store, layout), serial)
    assert store.last_stats.cache_hits == N_SYMBOLS


def test_an_entry_that_fails_in_the_parent_is_rebuilt_there(
    store: FeatureStore, layout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The chunks name the entries; the parent's read finds the damage (page checksums),
    reports it and builds the symbol again in-process."""
    good = build(store, layout, ["S0001"])
    [path] = segments(store)
    data = bytearray(path.read_bytes())
    at = len(data) // 3
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    path.write_bytes(bytes(data))
    store.executor = _InProcess()
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        again = build(store, layout, ["S0001"])
    assert store.executor.tasks[0].index.has("S0001")  # the chunk saw the entry and named it
    assert any("S0001" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert store.last_stats.invalid == 1 and store.last_stats.built == 1
    pd.testing.assert_frame_equal(again, good)
    assert not path.exists() and store.load("S0001") is not None


def test_an_entry_removed_by_another_build_meanwhile_is_built_again(store: FeatureStore, layout: Path) -> None:
    good = build(store, layout, ["S0001", "S0002"])
    [path] = segments(store)

    class RemovesTheSegment(_InProcess):  # another build's clean-up runs while the chunks do
        def map(self, fn, tasks):
            results = super().map(fn, tasks)
            path.unlink()
            return results

    store.executor = RemovesTheSegment()
    pd.testing.assert_frame_equal(build(store, layout, ["S0001", "S0002"]), good)
    assert store.last_stats.built == 2 and store.last_stats.invalid == 0
    store.executor = None
    build(store, layout, ["S0001", "S0002"])
    assert store.last_stats.cache_hits == 2  # what was built again was cached


def test_a_cache_write_failure_in_a_chunk_ships_its_values(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With a full disk the chunks return their values instead of naming entries."""
    expected = FeatureStore(tmp_path / "a", use_cache=False).get_features(None, None, None, ParquetProvider(layout))
    store = FeatureStore(tmp_path / "b", n_jobs=2, executor=_InProcess())
    build(store, layout, ["S0000"])  # one cached symbol: the others are computed

    def full(self, group):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod._OpenSegment, "write", full)
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        frame = build(store, layout)
    pd.testing.assert_frame_equal(frame, expected)
    assert store.last_stats.cache_hits == 1 and store.last_stats.built == N_SYMBOLS - 1
    assert any("could not write the feature cache" in r.getMessage() and "No space" in r.getMessage() for r in caplog.records)
    assert len(segments(store)) == 1 and not list(store.cache_dir.glob(".*.tmp"))


def test_a_failed_chunk_names_the_symbol_and_leaves_no_cache_file(
    store: FeatureStore, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row groups of the chunk's first symbols reached the temporary file: it is removed."""
    real = build_mod.symbol_feature_matrix

    def bug_in_s0003(symbol, *args, **kwargs):
        if symbol == "S0003":
            raise ZeroDivisionError("bug in a calculator")
        return real(symbol, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "SYMBOLS_PER_ROW_GROUP", 1)
    monkeypatch.setattr(build_mod, "symbol_feature_matrix", bug_in_s0003)
    with pytest.raises(ZeroDivisionError, match="bug in a calculator") as info:
        build(store, layout)
    [note] = info.value.__notes__
    assert "S0003" in note and "S0000, S0001" in note and "none of the chunk was cached" in note
    assert not store.cache_dir.exists() or not list(store.cache_dir.iterdir())


def test_a_bug_in_a_worker_reaches_the_caller_with_its_type_and_chunk(tmp_path: Path, layout: Path) -> None:
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(ZeroDivisionError, match="bug in the provider") as info:
        pool.get_features(None, None, None, _BuggyProvider(layout))
    assert any("S0003" in note for note in info.value.__notes__)


def test_workers_started_elsewhere_read_and_write_the_callers_paths(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loky workers outlive a build and keep the directory they started in: relative cache
    and data paths still mean the caller's."""
    first, second = tmp_path / "one", tmp_path / "two"
    for where in (first, second):
        shutil.copytree(layout, where / "data")
    monkeypatch.chdir(first)
    build(FeatureStore("cache", n_jobs=2, min_parallel_symbols=2), Path("data"))
    monkeypatch.chdir(second)
    store = FeatureStore("cache", n_jobs=2, min_parallel_symbols=2)
    frame = build(store, Path("data"))
    assert store.last_stats.built == N_SYMBOLS and store.last_stats.invalid == 0
    assert len(list((second / "cache").glob("features-*.parquet"))) == N_SYMBOLS  # one per chunk, here
    assert len(list((first / "cache").glob("features-*.parquet"))) == N_SYMBOLS  # the first build's only
    pd.testing.assert_frame_equal(build(store, Path("data")), frame)
    assert store.last_stats.cache_hits == N_SYMBOLS


def test_a_worker_that_dies_is_reported_not_hung(tmp_path: Path, layout: Path) -> None:
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(Exception, match="terminated|died|exit") as info:
        pool.get_features(None, None, None, _DyingProvider(layout))
    [note] = info.value.__notes__
    assert "chunks still running or queued" in note and "S0003" in note
    # the executor recovers: the next build works
    pd.testing.assert_frame_equal(build(pool, layout), build(FeatureStore(tmp_path / "c", n_jobs=1), layout))


def test_date_codes_match_a_global_unique() -> None:
    """The assembled index's date level and codes equal np.unique over all rows, including
    calendars that share length, first and last date but differ inside."""
    base = np.arange(0, 4_000, 10, dtype=np.int64)
    twin = base.copy()
    twin[200] += 3  # same length, first and last date as base
    calendars = [base, base[50:], np.empty(0, dtype=np.int64), twin, base, base[:10], np.array([99_999], dtype=np.int64)]
    level, codes = store_mod._date_codes(calendars)
    expected_level, expected_codes = np.unique(np.concatenate(calendars), return_inverse=True)
    np.testing.assert_array_equal(level, expected_level)
    np.testing.assert_array_equal(codes, expected_codes.ravel())
    assert store_mod._date_codes([])[1].size == 0


def test_a_segment_with_a_damaged_index_is_reported_and_removed(store: FeatureStore, caplog: pytest.LogCaptureFixture) -> None:
    idx = pd.bdate_range("2020-01-01", periods=3, name="date")
    frame = pd.DataFrame(np.zeros((3, len(feature_names()))), index=idx, columns=feature_names())
    path = store.save("XYZ", frame)
    meta = {b"signals.features": json.dumps(
        {"format": cache_mod.CACHE_FORMAT, "feature_version": FEATURE_VERSION, "entries": {"XYZ": ["zero", 0, 3, None]}}
    ).encode()}
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), path)
    with caplog.at_level(logging.WARNING, logger="signals.features.store"):
        assert store.load("XYZ") is None
    assert any("damaged index" in r.getMessage() for r in caplog.records) and not path.exists()
