"""The feature spec: the one ordered list of features that the calculators, the cache,
the docs (``signals features list --markdown``) and the model signature all read.

Every calculator returns exactly the columns registered for its category, in registry
order; :func:`signals.features.store.compute_symbol_features` checks that, so a feature
cannot be added in code without being named, categorised and described here.

``FEATURE_VERSION`` changes whenever the registry, the calculator source code or the TA-Lib
version changes. The cache keys entries on it and training logs it, so features computed by
different code are never mixed or served stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd
import talib

from signals.core.versions import source_parts, stamp

if TYPE_CHECKING:
    import pandas as pd

#: Bump when a calculation changes in a way the source hash below would not see
#: (e.g. a behaviour change in a dependency). The source hash covers ordinary edits.
FEATURE_CODE_VERSION = "1"

CATEGORIES: tuple[str, ...] = ("technical", "fundamental", "cross_asset", "alternative", "temporal")


#: What a feature can need, and how to say it when it is missing. Bar fields first: a
#: close-only source (adjusted closes alone) lacks open, high, low and volume.
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INPUTS: dict[str, str] = {
    "open": "the bar's open",
    "high": "the bar's high",
    "low": "the bar's low",
    "close": "the bar's close",
    "volume": "the bar's volume",
    "spy": "SPY bars",
    "vix": "VIX bars",
    "sector_etf": "the sector ETF's bars",
    "fundamentals": "the fundamentals table",
    "insider_transactions": "the insider transactions table",
    "short_interest": "the short interest table",
    "sector": "the symbol's sector label",
}


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its column name, category, a one-line description, and what it is
    computed from (``needs``: keys of :data:`INPUTS`), so a missing input can name the
    features it costs."""

    name: str
    category: str
    description: str
    needs: tuple[str, ...] = ()


# The 11 GICS sectors get one dummy each; anything unrecognised sets ``sector_other``.
GICS_SECTORS: tuple[str, ...] = (
    "communication_services",
    "consumer_discretionary",
    "consumer_staples",
    "energy",
    "financials",
    "health_care",
    "industrials",
    "information_technology",
    "materials",
    "real_estate",
    "utilities",
)
SECTOR_ALIASES: dict[str, str] = {
    "technology": "information_technology",
    "tech": "information_technology",
    "it": "information_technology",
    "healthcare": "health_care",
    "financial": "financials",
    "financial_services": "financials",
    "communications": "communication_services",
    "communication": "communication_services",
    "telecommunication_services": "communication_services",
    "telecom": "communication_services",
    "consumer_cyclical": "consumer_discretionary",
    "consumer_defensive": "consumer_staples",
    "basic_materials": "materials",
    "industrial": "industrials",
    "utility": "utilities",
    "realestate": "real_estate",
}


def canonical_sector(sector: str | None) -> str | None:
    """Map a provider's sector label to a GICS key, ``"other"`` if unknown, None if missing."""
    if sector is None:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", str(sector).strip().lower()).strip("_")
    if not key or key in {"nan", "none"}:
        return None
    key = SECTOR_ALIASES.get(key, key)
    return key if key in GICS_SECTORS else "other"


def _t(name: str, description: str, needs: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, "technical", description, needs)


def _f(name: str, description: str, needs: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, "fundamental", description, needs)


def _x(name: str, description: str, needs: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, "cross_asset", description, needs)


def _a(name: str, description: str, needs: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, "alternative", description, needs)


def _d(name: str, description: str) -> FeatureSpec:
    return FeatureSpec(name, "temporal", description, ())


# the bar fields the technical features read
_C = ("close",)
_HL = ("high", "low")
_HLC = ("high", "low", "close")


_TECHNICAL = [
    _t("rsi_14", "RSI(14), 0-100", _C),
    _t("macd_line", "MACD(12,26) line divided by close", _C),
    _t("macd_signal", "MACD signal line (EMA 9 of the MACD line) divided by close", _C),
    _t("macd_hist", "MACD histogram (line minus signal) divided by close", _C),
    _t("roc_10", "rate of change over 10 bars, as a fraction", _C),
    _t("stoch_k", "slow stochastic %K(14,3), 0-100", _HLC),
    _t("stoch_d", "slow stochastic %D (3-bar SMA of %K), 0-100", _HLC),
    _t("willr_14", "Williams %R(14), -100-0", _HLC),
    _t("cci_20", "commodity channel index(20)", _HLC),
    _t("mfi_14", "money flow index(14), 0-100", (*_HLC, "volume")),
    _t("price_vs_sma_20", "close / SMA(20) - 1", _C),
    _t("price_vs_sma_50", "close / SMA(50) - 1", _C),
    _t("price_vs_sma_200", "close / SMA(200) - 1", _C),
    _t("price_vs_ema_12", "close / EMA(12) - 1", _C),
    _t("price_vs_ema_26", "close / EMA(26) - 1", _C),
    _t("sma_20_vs_sma_50", "SMA(20) / SMA(50) - 1 (trend crossover)", _C),
    _t("adx_14", "average directional index(14), trend strength 0-100", _HLC),
    _t("plus_di_14", "+DI(14), upward directional indicator", _HLC),
    _t("minus_di_14", "-DI(14), downward directional indicator", _HLC),
    _t("atr_14_pct", "ATR(14) divided by close", _HLC),
    _t("bb_position", "position of close inside the Bollinger(20,2) bands, 0=lower 1=upper", _C),
    _t("bb_width", "Bollinger(20,2) band width divided by the middle band", _C),
    _t("hv_20", "20-bar historical volatility of log returns, annualised", _C),
    _t("hv_60", "60-bar historical volatility of log returns, annualised", _C),
    _t("obv_flow_20", "20-bar change in on-balance volume / 20-bar volume, -1..1 (scale-free OBV)", ("close", "volume")),
    _t("vwap_dist_20", "close / 20-bar volume-weighted average price - 1", (*_HLC, "volume")),
    _t("volume_ratio_20", "volume / SMA(20) of volume", ("volume",)),
    _t("dist_52w_high", "close / 252-bar high - 1", ("high", "close")),
    _t("dist_52w_low", "close / 252-bar low - 1", ("low", "close")),
    _t("range_pct", "(high - low) / close of the bar", _HLC),
    _t("range_vs_avg_20", "bar range / SMA(20) of the bar range", _HL),
    _t("close_location", "where the close sits in the bar's range, 0=low 1=high (0.5 if high=low)", _HLC),
    _t("gap", "open / previous close - 1", ("open", "close")),
    _t("ret_1", "1-bar return", _C),
    _t("ret_5", "5-bar return", _C),
    _t("ret_20", "20-bar return", _C),
    _t("ret_60", "60-bar return", _C),
]

_FUNDAMENTAL = [
    _f("pe", "price / earnings of the latest filing available before the bar", ("fundamentals",)),
    _f("pb", "price / book of the latest available filing", ("fundamentals",)),
    _f("ps", "price / sales of the latest available filing", ("fundamentals",)),
    _f("ev_ebitda", "enterprise value / EBITDA of the latest available filing", ("fundamentals",)),
    _f("pe_rel_sector", "P/E / sector median P/E, both as filed before the bar", ("fundamentals",)),
    _f("pb_rel_sector", "P/B / sector median P/B, both as filed before the bar", ("fundamentals",)),
    _f("ps_rel_sector", "P/S / sector median P/S, both as filed before the bar", ("fundamentals",)),
    _f("ev_ebitda_rel_sector", "EV/EBITDA / sector median EV/EBITDA, both as filed before the bar", ("fundamentals",)),
    _f("roe", "return on equity of the latest available filing", ("fundamentals",)),
    _f("current_ratio", "current assets / current liabilities of the latest available filing", ("fundamentals",)),
    _f("debt_to_equity", "debt / equity of the latest available filing", ("fundamentals",)),
    _f("revenue_growth", "revenue growth of the latest available filing", ("fundamentals",)),
    _f("earnings_growth", "earnings growth of the latest available filing", ("fundamentals",)),
    _f("dividend_yield", "dividend yield of the latest available filing", ("fundamentals",)),
    _f("fundamental_age_days", "calendar days since the filing in use was filed", ("fundamentals",)),
    *(_f(f"sector_{s}", f"1 if the symbol's sector is {s.replace('_', ' ')}", ("sector",)) for s in GICS_SECTORS),
    _f("sector_other", "1 if the symbol's sector is not one of the 11 GICS sectors", ("sector",)),
]

_CROSS_ASSET = [
    _x("spy_corr_60", "60-bar rolling correlation of daily returns with SPY", ("close", "spy")),
    _x("spy_beta_60", "60-bar rolling beta of daily returns to SPY", ("close", "spy")),
    _x("rs_spy_20", "20-bar growth relative to SPY: (1+r) / (1+r_spy) - 1", ("close", "spy")),
    _x("rs_spy_60", "60-bar growth relative to SPY: (1+r) / (1+r_spy) - 1", ("close", "spy")),
    _x("sector_corr_60", "60-bar rolling correlation of daily returns with the sector ETF", ("close", "sector_etf")),
    _x("rs_sector_20", "20-bar growth relative to the sector ETF", ("close", "sector_etf")),
    _x("rs_sector_60", "60-bar growth relative to the sector ETF", ("close", "sector_etf")),
    _x("vix_level", "VIX close (NaN where the data has no VIX)", ("vix",)),
    _x("vix_change_5", "5-bar relative change of VIX (NaN where the data has no VIX)", ("vix",)),
]

_ALTERNATIVE = [
    _a("insider_net_buys_90", "insider buy filings minus sell filings in the last 90 calendar days", ("insider_transactions",)),
    _a("insider_shares_bought_90", "shares bought by insiders in the last 90 days / 63-bar average volume", ("insider_transactions", "volume")),
    _a("insider_net_shares_90", "net insider shares (bought - sold) in the last 90 days / 63-bar average volume", ("insider_transactions", "volume")),
    _a("insider_net_value_90", "net insider value in the last 90 days / 63-bar average dollar volume", ("insider_transactions", "close", "volume")),
    _a("short_interest_ratio", "latest published short interest / 20-bar average volume", ("short_interest", "volume")),
    _a("days_to_cover", "latest published short interest / its published average daily volume", ("short_interest",)),
    _a("short_interest_change", "latest published short interest / the previous settlement's - 1", ("short_interest",)),
]

_TEMPORAL = [
    _d("day_of_week", "day of week, Monday=1 .. Friday=5"),
    _d("month", "month of year, 1-12"),
    _d("quarter", "calendar quarter, 1-4"),
    _d("day_of_year", "day of year, 1-366"),
    _d("is_month_end", "1 on the month's last weekday (calendar rule, no holiday lookahead)"),
]

FEATURES: list[FeatureSpec] = [*_TECHNICAL, *_FUNDAMENTAL, *_CROSS_ASSET, *_ALTERNATIVE, *_TEMPORAL]


def feature_names() -> list[str]:
    """All feature column names, in registry (= model input) order."""
    return [f.name for f in FEATURES]


def names_for(category: str) -> list[str]:
    """The registered feature names of one category, in registry order."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown feature category {category!r}; expected one of {CATEGORIES}")
    return [f.name for f in FEATURES if f.category == category]


def features_needing(missing: Iterable[str]) -> list[FeatureSpec]:
    """The features that need any of ``missing`` (keys of :data:`INPUTS`), in registry order."""
    gone = set(missing)
    return [f for f in FEATURES if gone.intersection(f.needs)]


def synthetic_features(synthetic_tables: Iterable[str]) -> list[str]:
    """Names of the features computed from generated data (a provider's ``synthetic_tables``)."""
    return [f.name for f in features_needing(synthetic_tables)]


@lru_cache(maxsize=None)
def unavailable_rows(missing: frozenset[str]) -> np.ndarray:
    """Registry positions of :func:`features_needing` ``missing`` (what compute blanks out)."""
    names = feature_names()
    return np.array([names.index(f.name) for f in features_needing(missing)], dtype=np.intp)


def unavailable_summary(missing: Iterable[str]) -> list[dict[str, Any]]:
    """Per missing input: what it is and the features it costs (for ``data check`` and build logs)."""
    gone = set(missing)
    out = []
    for key in INPUTS:
        if key in gone:
            lost = [f.name for f in FEATURES if key in f.needs]
            out.append({"input": key, "missing": INPUTS[key], "n_features": len(lost), "features": lost})
    return out


def category_frame(category: str, columns: dict[str, Any], index: "pd.Index") -> "pd.DataFrame":
    """A calculator's output frame: exactly the registered columns of ``category``, in order, float64.

    Raises if the calculator produced a column the registry does not know or missed one,
    so code and registry cannot drift apart.
    """

    expected = names_for(category)
    if set(columns) != set(expected):
        missing = [n for n in expected if n not in columns]
        extra = [n for n in columns if n not in expected]
        raise RuntimeError(f"{category} calculator does not match the registry: missing {missing}, unregistered {extra}")
    frame = pd.DataFrame({n: np.asarray(columns[n], dtype=np.float64) for n in expected}, index=index)
    return frame


def category_summary(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    """Per category: how many registered features ``frame`` has and their share of NaN cells."""
    out = []
    for cat in CATEGORIES:
        cols = [n for n in names_for(cat) if n in frame.columns]
        cells = frame[cols].to_numpy() if cols else np.empty((0, 0))
        share = float(np.isnan(cells).mean()) if cells.size else float("nan")
        out.append({"category": cat, "features": len(cols), "nan_share": share})
    return out


_MARKDOWN_INTRO = """# Features

Generated from the feature spec (`signals/features/spec.py`) by
`signals features list --markdown`; a test fails when this file and the spec disagree.

Conventions:

- Every feature is scale-free (ratios, returns, oscillators, counts, dummies) so one model can be
  pooled across symbols; no raw prices, raw OBV or raw volume levels.
- Point in time: fundamentals and insider trades are joined on `filed_at`, short interest on
  `published_at`, and an event available on day D is used from the first bar strictly after D.
  A restatement takes effect only from its own filing date; sector medians use only filings
  available before the bar.
- Warm-up rows (e.g. the first 199 bars of `price_vs_sma_200`) are NaN, never back-filled.
  VIX features are NaN wherever the data has no VIX.
- `needs` lists what a feature is computed from. Where an input is missing the feature is NaN:
  close-only bars (no open, high, low or volume) lose every feature needing one of those, and
  the features needing only closes are computed exactly as for full bars; a source without an
  event table, VIX or a sector ETF loses the features needing it.
- Cache: not a file per symbol but Parquet *segments* under `features.cache_dir` (default
  `data/features/`), `features-<time>-<pid>-<random>.parquet`, one per build chunk of up to 32
  symbols (row groups of 8), each symbol's full history as a long table (`symbol`, `date`, features);
  the footer records, per symbol, its rows and input fingerprint. An entry is served only when both
  `FEATURE_VERSION` (spec + calculator source + TA-Lib version) and that fingerprint match;
  `signals features build` fills it (README, "The feature cache").
"""


def registry_markdown() -> str:
    """The registry as a Markdown document (the content of ``docs/features.md``)."""
    lines = [_MARKDOWN_INTRO]
    counts = ", ".join(f"{cat} {len(names_for(cat))}" for cat in CATEGORIES)
    lines.append(f"{len(FEATURES)} features: {counts}.\n")
    lines.append("| # | name | category | description | needs |")
    lines.append("|---|------|----------|-------------|-------|")
    for i, f in enumerate(FEATURES, 1):
        needs = ", ".join(f.needs) or "the bar date"
        lines.append(f"| {i} | `{f.name}` | {f.category} | {f.description.replace('|', '/')} | {needs} |")
    return "\n".join(lines) + "\n"


def _check_registry() -> None:
    names = feature_names()
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RuntimeError(f"duplicate feature names in the registry: {sorted(dup)}")
    bad = [f.name for f in FEATURES if f.category not in CATEGORIES or not f.description]
    if bad:
        raise RuntimeError(f"features without a valid category or description: {bad}")
    unknown = [f.name for f in FEATURES if not set(f.needs) <= set(INPUTS)]
    if unknown:
        raise RuntimeError(f"features needing inputs not in INPUTS: {unknown}")


# The calculators whose source defines what the features mean.
_SOURCE_FILES = ("spec.py", "compute.py", "pit.py", "arrays.py", "events.py", "technical.py", "fundamental.py",
                 "cross_asset.py", "alternative.py", "temporal.py")


def _compute_version() -> str:
    """:func:`signals.core.versions.stamp` over the spec, the TA-Lib version and the calculators' source."""

    here = Path(__file__).resolve().parent
    return stamp(FEATURE_CODE_VERSION, json.dumps([asdict(f) for f in FEATURES]), str(talib.__version__),
                 *source_parts(here / name for name in _SOURCE_FILES))


_check_registry()
#: Identifies the feature definitions and the code computing them (cache key, logged by training).
FEATURE_VERSION: str = _compute_version()
