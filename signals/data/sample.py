"""The default provider: real daily prices shipped inside installed packages.

* Stocks: ``bokeh_sampledata.stocks`` (public-domain Quandl WIKI, 2000-2013) for AAPL,
  GOOG, IBM and MSFT. Prices are unadjusted; ``adj_close`` carries splits and dividends.
* SPY: the S&P 500 index from ``arch.data.sp500``; the technology sector ETF ("XLK") is
  proxied by the NASDAQ Composite from ``arch.data.nasdaq``; VIX from ``arch.data.vix``
  (which only covers 2014-2019, so VIX features are NaN for the sample's years).
* Fundamentals, insider transactions, short interest: deterministic synthetic tables
  (see :mod:`signals.data.synthetic`), labelled synthetic.
"""

from __future__ import annotations

import importlib

import pandas as pd

from signals.data.base import DataProvider
from signals.data.synthetic import synthetic_events
from signals.data.validation import validate_bars

SAMPLE_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")
SECTOR = "Technology"
SECTOR_ETF = "XLK"


def _arch_frame(module: str) -> pd.DataFrame:

    df = importlib.import_module(f"arch.data.{module}").load()
    df = df.rename(columns=lambda c: str(c).lower().replace(" ", "_"))
    df.index.name = "date"
    return df.reset_index()


class SampleProvider(DataProvider):
    name = "sample"
    synthetic_tables = frozenset({"fundamentals", "insider_transactions", "short_interest"})

    def _raw_universe(self) -> pd.DataFrame:
        return pd.DataFrame({"symbol": list(SAMPLE_SYMBOLS), "sector": SECTOR, "sector_etf": SECTOR_ETF})

    def _raw_bars(self, symbol: str) -> pd.DataFrame:
        from bokeh_sampledata import stocks

        return pd.DataFrame(getattr(stocks, symbol))

    def _raw_market(self, symbol: str) -> pd.DataFrame | None:
        if symbol == "SPY":
            return _arch_frame("sp500")
        if symbol == SECTOR_ETF:
            return _arch_frame("nasdaq")
        if symbol == "VIX":
            vix = _arch_frame("vix")  # holidays are NaN rows: the base class drops and counts them
            return pd.DataFrame(
                {"date": vix["date"], "open": vix["vix"], "high": vix["vix"], "low": vix["vix"], "close": vix["vix"]}
            )
        return None

    def _raw_events(self, table: str) -> pd.DataFrame | None:
        if not hasattr(self, "_synthetic"):
            bars = {s: validate_bars(self._raw_bars(s), s)[0] for s in SAMPLE_SYMBOLS}
            self._synthetic = synthetic_events(bars)
        return self._synthetic[table]

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "bars": "bokeh_sampledata.stocks (Quandl WIKI, public domain)",
            "market": "arch.data sp500 (SPY), nasdaq (XLK proxy), vix",
        }
