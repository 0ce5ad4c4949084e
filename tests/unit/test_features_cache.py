"""FeatureStore: the get_features contract, cache keys, invalidation, corrupt files, atomic
writes and the process pool, on a small synthetic Parquet layout."""

from __future__ import annotations

import dataclasses
import json
import logging
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
    with pytest.raises(FeatureError, match="registry"):
        store.save("XYZ", frame.iloc[:, :-1])
    store.save("BRK/B", frame)  # any symbol: names live in the data, not in file names
    pd.testing.assert_frame_equal(store.load("brk/b"), frame, check_freq=False)


def test_use_cache_false_writes_nothing(tmp_path: Path, layout: Path) -> None:
    store = FeatureStore(tmp_path / "nocache", use_cache=False)
    build(store, layout, ["S0000"])
    assert not (tmp_path / "nocache").exists()


# ----------------------------------------------------------------------------- processes
def test_process_pool_matches_serial_and_reports_progress(tmp_path: Path, layout: Path) -> None:
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    seen: list[str] = []
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    parallel = pool.get_features(None, None, None, ParquetProvider(layout), progress=seen.append)
    assert pool.last_stats.workers == 2
    assert sorted(seen) == sorted(serial.index.get_level_values("symbol").unique())
    pd.testing.assert_frame_equal(parallel, serial)
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


def test_a_shared_input_error_in_the_pool_reaches_the_caller(tmp_path: Path, layout: Path) -> None:
    """The parent prepares the shared inputs while the workers scan: its errors are raised as they are."""
    fundamentals = pd.read_parquet(layout / "fundamentals.parquet").drop(columns="filed_at")
    fundamentals.to_parquet(layout / "fundamentals.parquet")
    pool = FeatureStore(tmp_path / "c", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(DataValidationError, match="filed_at"):
        pool.get_features(None, None, None, ParquetProvider(layout))


def test_process_pool_slices_like_serial_and_serves_hits_into_the_block(tmp_path: Path, layout: Path) -> None:
    """A date slice through the pool equals the serial slice, cold and warm (cache hits are
    copied straight into the shared block)."""
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout, None, "2010-06-01", "2010-09-30")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    cold = build(pool, layout, None, "2010-06-01", "2010-09-30")
    pd.testing.assert_frame_equal(cold, serial)
    warm = build(pool, layout, None, "2010-06-01", "2010-09-30")
    assert pool.last_stats.cache_hits == N_SYMBOLS
    pd.testing.assert_frame_equal(warm, serial)


def test_process_pool_without_memfd_sends_values_through_pipes(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where memfd_create does not exist (macOS) the values travel through the pipes: same frame."""
    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    monkeypatch.delattr(store_mod.os, "memfd_create", raising=False)
    from signals.features import workers

    monkeypatch.delattr(workers.os, "memfd_create", raising=False)
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    pd.testing.assert_frame_equal(build(pool, layout), serial)


def test_process_pool_when_a_sandbox_forbids_memfd(tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """memfd_create failing (EPERM under a seccomp profile) falls back to pipes, not to an error."""
    from signals.features import workers

    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)

    def forbidden(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(workers.os, "memfd_create", forbidden)
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    pd.testing.assert_frame_equal(build(pool, layout), serial)


def test_process_pool_uses_forkserver_when_the_caller_runs_threads(tmp_path: Path, layout: Path) -> None:
    """With another thread alive, fork is unsafe: the pool starts workers by forkserver
    (the job is pickled) and still produces the serial frame."""
    import threading

    from signals.features import workers

    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert workers.start_method() in ("forkserver", "spawn")
        pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
        pd.testing.assert_frame_equal(build(pool, layout), serial)
    finally:
        stop.set()
        thread.join()


def test_a_crashing_worker_is_reported_not_hung(tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a worker (not a user-facing error) surfaces with the worker's traceback."""
    from signals.features import workers

    def boom(self, symbol, out):  # inherited by the forked workers
        raise ZeroDivisionError("bug in fill")

    monkeypatch.setattr(store_mod._BuildJob, "fill", boom)
    monkeypatch.setattr(workers, "start_method", lambda: "fork")  # the patch must reach the workers
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(workers.WorkerFailure, match="ZeroDivisionError: bug in fill"):
        build(pool, layout)


def _cannot_rebuild() -> None:
    raise ValueError("cannot rebuild this object")


class _Unreadable:
    def __reduce__(self):
        return (_cannot_rebuild, ())


def test_a_message_a_worker_cannot_read_is_reported_not_hung(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages are read by a thread of the worker; if one cannot be unpickled the worker
    reports it (instead of its main loop waiting forever)."""
    from signals.features import workers

    monkeypatch.setattr(store_mod._BuildJob, "context", lambda self: _Unreadable())
    monkeypatch.setattr(workers, "start_method", lambda: "fork")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(workers.WorkerFailure, match="could not read a message(.|\n)*cannot rebuild this object"):
        build(pool, layout)


def test_a_worker_that_dies_is_reported_not_hung(tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from signals.features import workers

    def die(self, symbol, out):
        os._exit(3)  # as if killed by the OOM killer

    monkeypatch.setattr(store_mod._BuildJob, "fill", die)
    monkeypatch.setattr(workers, "start_method", lambda: "fork")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    with pytest.raises(workers.WorkerFailure, match="died"):
        build(pool, layout)


def test_balance_moves_even_out_rows_without_flipping_the_gap() -> None:
    from signals.features.workers import balance_moves

    rows = {f"S{i}": 100 for i in range(10)} | {"BIG": 450, "EMPTY": 0}
    owner = {f"S{i}": 0 for i in range(8)} | {"S8": 1, "S9": 1, "BIG": 0, "EMPTY": 0}  # 1250 vs 200
    moves = balance_moves(rows, owner, 2)
    load = [0, 0]
    for s, w in owner.items():
        load[w] += rows[s]
    for symbol, src, dst in moves:
        assert owner[symbol] == src and symbol != "EMPTY"
        load[src] -= rows[symbol]
        load[dst] += rows[symbol]
    assert abs(load[0] - load[1]) <= 2 * 100
    assert [m[0] for m in moves][:1] == ["BIG"]  # the largest symbol that fits half the gap goes first
    assert balance_moves({"A": 5, "B": 5}, {"A": 0, "B": 1}, 2) == []
    three = balance_moves({f"S{i}": 10 for i in range(9)}, {f"S{i}": 0 for i in range(9)}, 3)
    assert sorted(dst for _, _, dst in three) == [1, 1, 1, 2, 2, 2]


def test_symbols_moved_between_workers_give_the_serial_frame(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the scan's split, the fill is evened out by moving symbols (the receiver
    re-reads them); a symbol whose bars changed between the two reads stays where it was."""
    from signals.features import workers

    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    seen: list[tuple[str, int, int]] = []

    def everything_moves(rows, owner, n_workers):
        moves = [(s, w, 1 - w) for s, w in sorted(owner.items())]
        seen.extend(moves)
        return moves

    marks = tmp_path / "scans"
    marks.mkdir()
    original_scan = store_mod._BuildJob.scan

    def scan_changing_s0001(self, symbol):  # runs in the forked workers
        reads = len(list(marks.glob(f"{symbol}-*")))
        (marks / f"{symbol}-{reads}").touch()
        result = original_scan(self, symbol)
        if symbol == "S0001" and reads:  # as if its file lost a bar between the two reads
            p = self.pending[symbol]
            self.pending[symbol] = dataclasses.replace(p, bars=p.bars.iloc[1:], dates=p.dates[1:], span=(0, len(p.dates) - 1))
            result.dates = result.dates[1:]
        return result

    monkeypatch.setattr(workers, "balance_moves", everything_moves)
    monkeypatch.setattr(store_mod._BuildJob, "scan", scan_changing_s0001)
    monkeypatch.setattr(workers, "start_method", lambda: "fork")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    pd.testing.assert_frame_equal(build(pool, layout), serial)
    assert len(seen) == N_SYMBOLS and pool.last_stats.built == N_SYMBOLS
    assert len(list(marks.iterdir())) >= 2 * N_SYMBOLS  # every symbol was read by both workers


def test_a_slow_worker_has_symbols_stolen_and_the_frame_is_unchanged(
    tmp_path: Path, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that runs out fills the slow worker's remaining symbols (reading them
    again); a symbol whose inputs changed between the reads goes back to its owner."""
    import os
    import time

    from signals.features import workers

    serial = build(FeatureStore(tmp_path / "a", n_jobs=1), layout)
    marks = tmp_path / "marks"
    marks.mkdir()
    original_scan, original_fill = store_mod._BuildJob.scan, store_mod._BuildJob.fill

    original_slots = workers._Slots.__init__

    def slots(self, *args):  # the block arrives before any fill or steal
        (marks / f"block-{os.getpid()}").touch()
        original_slots(self, *args)

    def scan(self, symbol):
        result = original_scan(self, symbol)
        if (marks / f"block-{os.getpid()}").exists():  # a steal
            steals = len(list(marks.glob(f"steal-{symbol}-*")))
            (marks / f"steal-{symbol}-{steals}").touch()
            (marks / f"thief-{os.getpid()}").touch()
            if not (marks / "changed").exists():  # the first steal finds one bar fewer
                (marks / "changed").touch()
                p = self.pending[symbol]
                self.pending[symbol] = dataclasses.replace(p, bars=p.bars.iloc[1:], dates=p.dates[1:], span=(0, len(p.dates) - 1))
                result.dates = result.dates[1:]
        return result

    def fill(self, symbol, out):
        if not (marks / f"thief-{os.getpid()}").exists():
            time.sleep(0.25)  # the owner is slow
        return original_fill(self, symbol, out)

    # worker 0 owns every symbol, so worker 1 can only steal
    monkeypatch.setattr(workers, "balance_moves", lambda rows, owner, n: [(s, 1, 0) for s, w in owner.items() if w == 1])
    monkeypatch.setattr(store_mod._BuildJob, "scan", scan)
    monkeypatch.setattr(store_mod._BuildJob, "fill", fill)
    monkeypatch.setattr(workers._Slots, "__init__", slots)
    monkeypatch.setattr(workers, "start_method", lambda: "fork")
    pool = FeatureStore(tmp_path / "b", n_jobs=2, min_parallel_symbols=2)
    pd.testing.assert_frame_equal(build(pool, layout), serial)
    steals: dict[str, int] = {}
    for m in marks.glob("steal-*"):
        steals[m.name.split("-")[1]] = steals.get(m.name.split("-")[1], 0) + 1
    # 2 symbols were in flight at the owner; the thief took the rest, one of them twice:
    # its first re-read saw a changed file, so it went back to the owner's queue
    assert sorted(steals.values()) == [1] * (N_SYMBOLS - 3) + [2], steals


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
