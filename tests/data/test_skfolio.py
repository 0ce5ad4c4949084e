"""The skfolio provider on the real data shipped in the installed skfolio package, and the
features built from it (close-only bars, no sector ETF, no event tables)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from signals.data.parquet import ParquetProvider, export_provider
from signals.data.skfolio_sp500 import SKFOLIO_SECTORS, SkfolioProvider
from signals.features.spec import canonical_sector, features_needing, names_for

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
           "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM"]
FIRST, LAST = pd.Timestamp("1990-01-02"), pd.Timestamp("2022-12-28")


@pytest.fixture(scope="module")
def provider() -> SkfolioProvider:
    return SkfolioProvider()


def test_twenty_close_only_symbols_over_33_years(provider: SkfolioProvider) -> None:
    assert provider.symbols() == SYMBOLS
    for report in provider.check():
        assert report.close_only, report.symbol
        assert (report.first, report.last, report.rows) == (FIRST, LAST, 8313), report.symbol
    bars = provider.bars("XOM")
    assert (bars["close"] > 0).all() and np.isfinite(bars["close"]).all()
    assert bars[["open", "high", "low", "volume"]].isna().all().all()


def test_spy_is_the_index_and_vix_only_2014_to_2019(provider: SkfolioProvider) -> None:
    spy = provider.market_bars("SPY")
    assert (spy.index[0], spy.index[-1], len(spy)) == (FIRST, LAST, 8313)
    assert (spy["close"] > 0).all() and 300 < spy["close"].iloc[0] < 400  # the S&P 500 level on 1990-01-02
    vix = provider.market_bars("VIX")
    assert vix.index[0].year == 2014 and vix.index[-1].year == 2019 and vix["close"].notna().all()


def test_static_gics_sectors_and_no_sector_etf(provider: SkfolioProvider) -> None:
    uni = provider.universe().set_index("symbol")
    keys = {s: canonical_sector(uni.at[s, "sector"]) for s in SYMBOLS}
    assert "other" not in keys.values() and None not in keys.values()
    assert keys["AAPL"] == keys["AMD"] == keys["MSFT"] == "information_technology"
    assert keys["RRC"] == keys["CVX"] == keys["XOM"] == "energy"
    assert {s for s, k in keys.items() if k == "health_care"} == {"JNJ", "LLY", "MRK", "PFE", "UNH"}
    assert {s for s, k in keys.items() if k == "consumer_staples"} == {"KO", "PEP", "PG", "WMT"}
    assert (uni["sector_etf"] == "").all()
    assert provider.market_bars(provider.sector_of("GE")[1]) is None


def test_real_data_only_and_described(provider: SkfolioProvider) -> None:
    assert provider.synthetic_tables == frozenset()
    assert provider.fundamentals().empty and provider.insider_transactions().empty and provider.short_interest().empty
    desc = provider.describe()
    assert desc["provider"] == "skfolio" and desc["synthetic_tables"] == []
    assert "skfolio" in desc["bars"] and "real" in desc["bars"] and desc["skfolio_version"] != "not installed"


def test_reads_the_files_without_importing_skfolio_or_arch() -> None:
    """Both packages' imports are slow (cvxpy, scipy.stats) and only their data files are needed."""
    code = ("import sys; from signals.data.skfolio_sp500 import SkfolioProvider; p = SkfolioProvider(); "
            "p.bars('AAPL'); p.market_bars('SPY'); p.market_bars('VIX'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'skfolio', 'arch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_vix_is_what_arch_loads() -> None:
    from arch.data import vix

    want = vix.load()["vix"].dropna()
    got = SkfolioProvider().market_bars("VIX")["close"]
    assert got.index.equals(pd.DatetimeIndex(want.index, name="date")) and np.array_equal(got.to_numpy(), want.to_numpy())


def test_selected_by_settings(settings) -> None:
    from signals.data.sources import PROVIDERS, get_provider

    assert "skfolio" in PROVIDERS
    chosen = get_provider(settings.model_copy(update={"data": settings.data.model_copy(update={"provider": "skfolio"})}))
    assert isinstance(chosen, SkfolioProvider)


def test_parquet_export_keeps_close_only_and_blank_etf(tmp_path, provider: SkfolioProvider) -> None:
    root = export_provider(provider, tmp_path / "layout", ["AAPL", "KO"])
    parquet = ParquetProvider(root)
    got, report = parquet.bars_with_report("KO")
    pd.testing.assert_frame_equal(got, provider.bars("KO"), check_freq=False)
    assert report.close_only
    assert parquet.sector_of("AAPL") == ("Information Technology", "")
    pd.testing.assert_frame_equal(parquet.market_bars("SPY"), provider.market_bars("SPY"), check_freq=False)


def test_features_build_on_three_symbols(workdir: Path) -> None:
    from signals.cli import cli

    out = CliRunner().invoke(
        cli,
        ["--config", str(REPO_ROOT / "config" / "skfolio.yaml"), "features", "build",
         "-s", "AAPL,XOM,KO", "--start", "2005-01-01", "--end", "2007-12-31", "--json"],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output[out.output.index("{"):])
    assert summary["symbols"] == 3 and summary["first"] == "2005-01-03" and summary["last"] == "2007-12-31"
    cats = {c["category"]: c["nan_share"] for c in summary["categories"]}
    lost = features_needing(("open", "high", "low", "volume"))
    n_lost_technical = sum(f.category == "technical" for f in lost)
    assert n_lost_technical == 18
    # 15 years of history before 2005: no warm-up rows, only what the source lacks is NaN
    assert cats["technical"] == pytest.approx(n_lost_technical / len(names_for("technical")))
    assert cats["fundamental"] == pytest.approx(15 / 27)  # no filings; the sector dummies are there
    assert cats["cross_asset"] == pytest.approx(5 / 9)  # sector ETF (3) and VIX (2; none before 2014)
    assert cats["alternative"] == 1.0 and cats["temporal"] == 0.0
    [item] = summary["unavailable"]
    assert item["symbols"] == ["AAPL", "KO", "XOM"] and item["why"] == "close-only bars"
    assert item["n_features"] == len(lost) == 22


def test_every_sector_is_a_known_gics_label() -> None:
    assert set(SKFOLIO_SECTORS) == set(SYMBOLS)
