"""A broader real universe: the daily closes that ship inside the ``skfolio`` package.

* Stocks: the 20 S&P 500 constituents of skfolio's bundled ``sp500_dataset`` (adjusted
  closes, 1990-01-02 to 2022-12-28, rounded to 0.001). Closes only, so every symbol is
  close-only: the features needing open, high, low or volume are NaN.
* SPY: the S&P 500 index level from the bundled ``sp500_index`` (same dates, close only).
  It is a price index while the stocks' closes include dividends, so relative strength to
  SPY carries the dividend yield (about 2 % a year).
* Sector ETFs: none exists offline for these years, so ``sector_etf`` is blank and the
  sector-relative features are NaN. SPY as a stand-in would only repeat the SPY features
  under sector names, and the universe is too small for a sector index of its own (GE is
  alone in industrials).
* VIX: the ``vix.csv.gz`` that ships in ``arch.data.vix`` (2014-2019 only), as in the sample provider.
* Fundamentals, insider transactions, short interest: none (those features are NaN). Nothing
  here is synthetic.

The files are read where their packages installed them, without importing the packages:
importing skfolio pulls in cvxpy, scipy and plotly, importing arch pulls in scipy.stats
(together 2-3 s of a 3 s feature build here) for three small CSV files.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pandas as pd

from signals.data.base import SPY, VIX, DataProvider
from signals.data.errors import DataError
from signals.data.reading import read_csv

STOCKS_FILE = "sp500_dataset.csv.gz"
INDEX_FILE = "sp500_index.csv.gz"

#: GICS sectors of the 20 names (static labels: the dataset has no classification history).
SKFOLIO_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}
NO_SECTOR_ETF = ""


def package_data_file(package: str, relative: str) -> Path:
    """Where ``package`` installed its data file ``relative`` (found without importing the package:
    ``find_spec`` of a top-level name only locates it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.provider 'skfolio' needs the {package} package, which is not installed (pip install {package})")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / relative
    if not path.is_file():
        raise DataError(f"the installed {package} at {root} has no data file {relative}")
    return path


def _read_wide(name: str) -> pd.DataFrame:
    """One of skfolio's bundled CSVs: a date column, then one column of closes per series."""
    path = package_data_file("skfolio", f"datasets/data/{name}")
    frame = read_csv(path, f"skfolio data file {name}", index_col=0, parse_dates=True)
    frame.index.name = "date"
    return frame


def _closes(frame: pd.DataFrame, column: str, path_name: str) -> pd.DataFrame:
    """``date, close`` of one column of a wide table; an empty cell means no bar that day."""
    if column not in frame.columns:
        raise DataError(f"skfolio data file {path_name} has no column {column!r} (has {list(frame.columns)})")
    series = frame[column].dropna()
    return pd.DataFrame({"date": series.index, "close": series.to_numpy()})


def _arch_vix() -> pd.DataFrame:
    """``date, close`` of arch's bundled VIX, as ``arch.data.vix.load()`` reads it (holidays are empty rows)."""
    path = package_data_file("arch", "data/vix/vix.csv.gz")
    raw = read_csv(path, "market series 'VIX'", na_values=["."])  # FRED marks holidays "."
    raw.columns = [str(c).lower() for c in raw.columns]
    if not {"date", "vix"} <= set(raw.columns):
        raise DataError(f"arch's VIX file {path} has columns {list(raw.columns)}, expected date and vix")
    # holidays are empty rows: the base class drops and counts them (one policy for every provider)
    return pd.DataFrame({"date": raw["date"], "close": raw["vix"]})


class SkfolioProvider(DataProvider):
    """20 S&P 500 stocks, 1990-2022, close-only; SPY = the S&P 500 index; VIX 2014-2019; no events."""

    name = "skfolio"
    adjusted_closes = True

    def __init__(self) -> None:
        super().__init__()
        self._stocks: pd.DataFrame | None = None

    def _stock_table(self) -> pd.DataFrame:
        if self._stocks is None:
            self._stocks = _read_wide(STOCKS_FILE)
        return self._stocks

    def _raw_universe(self) -> pd.DataFrame:
        missing = sorted(set(SKFOLIO_SECTORS) - set(self._stock_table().columns))
        if missing:
            raise DataError(f"skfolio data file {STOCKS_FILE} lacks the expected symbol(s) {missing}")
        symbols = list(SKFOLIO_SECTORS)
        return pd.DataFrame(
            {"symbol": symbols, "sector": [SKFOLIO_SECTORS[s] for s in symbols], "sector_etf": NO_SECTOR_ETF}
        )

    def _raw_bars(self, symbol: str) -> pd.DataFrame:
        return _closes(self._stock_table(), symbol, STOCKS_FILE)

    def _raw_market(self, symbol: str) -> pd.DataFrame | None:
        if symbol == SPY:
            index = _read_wide(INDEX_FILE)
            return _closes(index, str(index.columns[0]), INDEX_FILE)
        if symbol == VIX:
            return _arch_vix()
        return None

    def _raw_events(self, table: str) -> pd.DataFrame | None:
        return None

    def describe(self) -> dict[str, object]:
        try:
            version = importlib.metadata.version("skfolio")
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        return {
            **super().describe(),
            "bars": "skfolio.datasets sp500_dataset (real): 20 S&P 500 stocks, adjusted closes only, 1990-2022",
            "market": "skfolio.datasets sp500_index (SPY = S&P 500 index level), arch.data vix (VIX, 2014-2019)",
            "close_only": "yes: no open/high/low/volume, features needing them are NaN",
            "sector_etf": "none: sector-relative features are NaN",
            "event_tables": "none: fundamental, insider and short-interest features are NaN",
            "skfolio_version": version,
        }
