"""EventArrays and GroupedEvents: per-symbol event rows as numpy columns, and the calculators reading either form."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from signals.data.synthetic import synthetic_universe
from signals.features.compute import compute_symbol_features
from signals.features.events import EventArrays, GroupedEvents, column


@pytest.fixture(scope="module")
def universe() -> dict:
    return synthetic_universe(3, 400, n_sectors=1)


def test_grouped_events_match_groupby_rows_in_order_and_pickle_whole(universe: dict) -> None:
    table = universe["fundamentals"].sample(frac=1.0, random_state=3)  # symbols interleaved
    grouped = GroupedEvents(table)
    assert sorted(grouped.keys()) == sorted(table["symbol"].unique()) and len(grouped) == table["symbol"].nunique()
    for sym, group in table.groupby("symbol"):
        rows = grouped.get(sym)
        assert sym in grouped and len(rows) == len(group) and rows.columns == list(table.columns)
        for c in table.columns:
            np.testing.assert_array_equal(rows[c], group[c].to_numpy())
    default = EventArrays.from_frame(table.iloc[0:0])
    assert grouped.get("NOPE") is None and grouped.get("NOPE", default) is default
    assert len(GroupedEvents(table.iloc[0:0])) == 0
    again = pickle.loads(pickle.dumps(grouped))
    np.testing.assert_array_equal(again.get("S0001")["pe"], grouped.get("S0001")["pe"])
    with pytest.raises(ValueError, match="group by"):
        GroupedEvents(table.drop(columns="symbol"))


def test_column_reads_frames_and_arrays_alike(universe: dict) -> None:
    table = universe["short_interest"]
    arrays = EventArrays.from_frame(table)
    for name in ("published_at", "short_interest"):
        np.testing.assert_array_equal(column(arrays, name), column(table, name))
    assert column(arrays, "short_interest", np.float64).dtype == np.float64
    empty = arrays.empty_like()
    assert empty.empty and len(empty) == 0 and empty.columns == arrays.columns
    with pytest.raises(ValueError, match="length"):
        EventArrays({"a": np.zeros(2), "b": np.zeros(3)})


def test_features_are_identical_from_frames_and_from_event_arrays(universe: dict) -> None:
    sym = "S0001"
    bars = universe["bars"][sym].set_index("date") if "date" in universe["bars"][sym] else universe["bars"][sym]
    market = {k: (v.set_index("date") if "date" in v else v) for k, v in universe["market"].items()}
    etf = universe["universe"].set_index("symbol").at[sym, "sector_etf"]
    sector = universe["universe"].set_index("symbol").at[sym, "sector"]
    tables = {t: universe[t][universe[t]["symbol"] == sym] for t in ("fundamentals", "insider_transactions", "short_interest")}
    args = (sym, bars, market["SPY"], market["VIX"], market[etf])
    from_frames = compute_symbol_features(
        *args, tables["fundamentals"], universe["fundamentals"], tables["insider_transactions"], tables["short_interest"],
        sector=sector,
    )
    from_arrays = compute_symbol_features(
        *args, EventArrays.from_frame(tables["fundamentals"]), universe["fundamentals"],
        EventArrays.from_frame(tables["insider_transactions"]), EventArrays.from_frame(tables["short_interest"]),
        sector=sector,
    )
    pd.testing.assert_frame_equal(from_frames, from_arrays, check_exact=True)
    assert from_frames.notna().any().sum() > 50


def test_group_digests_equal_frame_digest_of_each_group(universe: dict) -> None:
    """The feature cache keys hash each symbol's event rows in one pass over the table; that
    must be byte for byte frame_digest of the symbol's group, or cache entries would churn."""
    from signals.core.digest import frame_digest
    from signals.features.inputs import group_digests as _group_digests

    for table in ("fundamentals", "insider_transactions", "short_interest"):
        frame = universe[table].sample(frac=1.0, random_state=5)  # symbols interleaved
        digests = _group_digests(frame)
        assert sorted(digests) == sorted(frame["symbol"].unique())
        for sym, group in frame.groupby("symbol", sort=False):
            assert digests[sym] == frame_digest(group, index=False), (table, sym)


def test_a_chunks_part_of_the_shared_inputs_keys_and_serves_its_symbols_alike(tmp_path) -> None:
    """A build task carries only its symbols' part of the shared inputs: same fingerprints,
    same event rows, nothing of the other symbols' rows or sectors."""
    from signals.data.parquet import ParquetProvider, write_layout
    from signals.features.inputs import EVENT_TABLES, prepare_shared

    provider = ParquetProvider(write_layout(tmp_path / "d", synthetic_universe(6, 300, n_sectors=3)))
    shared = prepare_shared(provider, provider.symbols())
    part = shared.for_symbols(["S0005", "S0001"])  # sectors 2 and 1 of 3
    assert sorted(part.labels) == ["S0001", "S0005"] and len(part.sector_medians) == 2
    assert shared.for_symbols(provider.symbols()) is shared
    grouped = shared.events["fundamentals"]
    assert grouped is not None and grouped.subset(["S0001", "NOPE"]).keys() == ["S0001"]
    for symbol in ("S0001", "S0005"):
        assert part.fingerprint(symbol, "bars") == shared.fingerprint(symbol, "bars")
        for table in EVENT_TABLES:
            mine, whole = part.events_of(table, symbol), shared.events_of(table, symbol)
            assert mine is not None and whole is not None and mine.columns == whole.columns
            for c in whole.columns:
                np.testing.assert_array_equal(mine[c], whole[c])
    assert part.events_of("fundamentals", "S0002").empty  # another chunk's symbol: not carried
