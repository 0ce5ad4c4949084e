"""The feature store on the shipped sample (AAPL, GOOG, IBM, MSFT 2000-2013) and the
``signals features`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from signals.data.sample import SampleProvider
from signals.features import FEATURES, FeatureStore, feature_names
from signals.features.spec import names_for

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
VIX_FEATURES = {"vix_level", "vix_change_5"}
MAX_WARM_UP = 252  # the longest window (52-week high/low)


@pytest.fixture(scope="module")
def sample_features(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, FeatureStore]:
    store = FeatureStore(tmp_path_factory.mktemp("features"), n_jobs=1)
    return store.get_features(None, None, None, SampleProvider()), store


def test_all_four_symbols_with_every_registered_feature(sample_features) -> None:
    frame, store = sample_features
    assert len(FEATURES) >= 50
    assert list(frame.columns) == feature_names()
    assert (frame.dtypes == "float64").all()
    assert frame.index.names == ["symbol", "date"] and frame.index.is_monotonic_increasing
    rows = frame.groupby(level="symbol").size()
    assert rows.to_dict() == {"AAPL": 3270, "GOOG": 2148, "IBM": 3270, "MSFT": 3270}
    [segment] = store.cache_dir.glob("*.parquet")  # one cache segment holds all four
    assert {store.cache_file(s) for s in ("AAPL", "GOOG", "IBM", "MSFT")} == {segment}


def test_nan_only_in_warm_up_or_where_the_data_has_no_vix(sample_features) -> None:
    frame, _ = sample_features
    # the sample's VIX covers 2014-2019 and its stocks 2000-2013: no VIX value may be invented
    assert frame[sorted(VIX_FEATURES)].isna().all().all()
    for symbol, group in frame.groupby(level="symbol"):
        for name in feature_names():
            if name in VIX_FEATURES:
                continue
            isna = group[name].isna().to_numpy()
            first_valid = int(np.argmin(isna)) if not isna.all() else len(isna)
            assert first_valid <= MAX_WARM_UP, f"{symbol}.{name}: {first_valid} leading NaN rows"
            assert not isna[first_valid:].any(), f"{symbol}.{name}: NaN after the warm-up"


def test_values_are_plausible(sample_features) -> None:
    frame, _ = sample_features
    for name in ("rsi_14", "stoch_k", "stoch_d", "mfi_14", "adx_14"):
        assert frame[name].dropna().between(-1e-9, 100 + 1e-9).all(), name  # TA-Lib rounding: 100.00000000001
    assert frame["bb_width"].dropna().gt(0).all()
    assert frame["spy_corr_60"].dropna().between(-1, 1).all()
    assert (frame["sector_information_technology"] == 1).all()
    assert frame[[n for n in names_for("fundamental") if n.startswith("sector_") and n != "sector_information_technology"]].eq(0).all().all()
    # features see split-adjusted prices: AAPL's 2:1 split on 2005-02-28 is not a -50% return
    assert abs(frame.loc[("AAPL", pd.Timestamp("2005-02-28")), "ret_1"]) < 0.1
    # the temporal calendar is the bar's own date
    monday = frame.loc[("MSFT", pd.Timestamp("2010-01-04"))]
    assert monday["day_of_week"] == 1 and monday["month"] == 1 and monday["day_of_year"] == 4


def test_second_call_is_served_from_the_cache(sample_features) -> None:
    frame, store = sample_features
    again = store.get_features(["MSFT", "AAPL", "GOOG", "IBM"], None, None, SampleProvider())
    assert store.last_stats.cache_hits == 4 and store.last_stats.built == 0
    pd.testing.assert_frame_equal(again, frame)
    sliced = store.get_features(["IBM"], "2010-01-01", "2010-12-31", SampleProvider())
    pd.testing.assert_frame_equal(sliced, frame.loc[("IBM", slice("2010-01-01", "2010-12-31")), :])


# ----------------------------------------------------------------------------- CLI
def test_cli_list_and_markdown_docs() -> None:
    from signals.cli import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["features", "list"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["name", "category", "description"]
    assert len(lines) == 2 + len(FEATURES)
    assert any(line.startswith("rsi_14 ") and "technical" in line for line in lines)
    md = runner.invoke(cli, ["features", "list", "--markdown"])
    assert md.exit_code == 0
    assert md.output == (REPO_ROOT / "docs" / "features.md").read_text()
    only = runner.invoke(cli, ["features", "list", "--category", "temporal"])
    assert len(only.output.splitlines()) == 2 + len(names_for("temporal"))


def test_cli_build_prints_category_counts_and_nan_shares(workdir: Path) -> None:
    from signals.cli import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["features", "build", "--symbols", "AAPL,msft", "--start", "2012-01-01", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["symbols"] == 2 and summary["built"] == 2 and summary["first"] == "2012-01-03"
    cats = {c["category"]: c for c in summary["categories"]}
    assert cats["technical"]["features"] == len(names_for("technical")) and cats["technical"]["nan_share"] == 0
    assert cats["cross_asset"]["nan_share"] == pytest.approx(2 / 9)  # the two VIX features
    [segment] = (workdir / "data" / "features").glob("*.parquet")
    assert sorted(pd.read_parquet(segment, columns=["symbol"])["symbol"].astype(str).unique()) == ["AAPL", "MSFT"]
    table = runner.invoke(cli, ["features", "build", "-s", "AAPL"])
    assert table.exit_code == 0
    assert "1 from cache" in table.output and "nan_share" in table.output and "fundamental" in table.output


def test_cli_build_unknown_symbol_is_a_clean_error(workdir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "signals.cli", "features", "build", "-s", "NOPE"],
        capture_output=True, text=True, cwd=workdir, timeout=120,
    )
    assert out.returncode == 1
    assert "Error: unknown symbol 'NOPE'" in out.stderr and "Traceback" not in out.stderr
