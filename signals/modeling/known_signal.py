"""A synthetic market with a planted, known signal and its exact Bayes-optimal probabilities.

Why: a model's log-loss means little on its own. On this market the best achievable log-loss
is known exactly, so a pipeline run can be scored as the share of the *attainable* gain over
the class prior that it recovered, and a run on pure noise must show no skill at all.

The model (all in log prices, per trading day ``t``; parameters may change on a given day)::

    log M_t     = log M_{t-1} + mu_m + sigma_m * eps_t              market (SPY), a random walk
    w_t         = w_{t-1} + drift + sigma_w * e_t                   idiosyncratic random walk
    u_t         = phi * u_{t-1} + sigma_u * n_t                     the planted AR(1) deviation
    log close_t = beta * (log M_t - log M_0) + w_t + u_t

with independent standard normal shocks, ``w_0 ~ N(log 40, 0.5^2)`` (the symbol's price level)
and ``u_0`` drawn from the AR(1)'s stationary law. ``u`` mean-reverts, so a price that is above
its recent trend tends to fall back: a short-term reversal, which the project's own features
(price vs. EMA, 5-day return, Bollinger position, RSI ...) see because the best estimate of
``u_t`` is a linear filter of past prices. Every symbol shares the same parameters: otherwise a
symbol's volatility alone would predict FLAT vs. not FLAT, a second signal nobody planted.

Why the oracle is exact. ``y_t = log close_t - beta * (log M_t - log M_0)`` is observed without
error (SPY is observed), and the system is linear-Gaussian, so ``u_t`` given the history is
Gaussian, ``N(a_t, p_t)``, and a Kalman filter computes it exactly. Because ``w_t = y_t - u_t``
is then known too, the filter needs only the scalar ``u``: the next increment
``dy_{t+1} - drift = (phi - 1) u_t + sigma_w e + sigma_u n`` and ``u_{t+1}`` are jointly
Gaussian given the past, and conditioning one on the other is the whole update. The variance
and gain do not depend on the data, so they are computed once for all symbols. The h-day
forward log return ``L`` given the history is then Gaussian with (per-day parameters, so a
horizon that straddles a change date is exact too)::

    mean = sum_k (drift_{t+k} + beta mu_m_{t+k}) + (Phi_t - 1) a_t,      Phi_t = prod_k phi_{t+k}
    var  = sum_k (sigma_w^2 + beta^2 sigma_m^2)_{t+k} + (Phi_t - 1)^2 p_t
           + sum_k (prod_{j>k} phi_{t+j})^2 sigma_u_{t+k}^2

and the labels of :mod:`signals.dataset` (simple return over ``h`` rows, UP iff
``> up_threshold``, DOWN iff ``< down_threshold``) are events ``L > log1p(up)`` and
``L < log1p(down)``: the class probabilities are normal CDFs, no Monte Carlo. Nothing else in
the data carries information about the future: opens, highs/lows and volumes add independent
noise around the closes, and VIX, the sector ETFs and the event tables are independent of
the stocks (SPY too while ``beta = 0``).

Variants (defaults below; measured on the default 50 symbols x 2,520 days, seed 0, gains in
nats over the class frequencies of the same rows):

* ``noise``  -- ``sigma_u = 0`` and ``sigma_w`` set so the 5-day return variance (hence the
  class shares) equals ``signal``'s: the oracle is one constant distribution. Gain -0.0000
  (the in-sample frequencies are the best constant in hindsight); shares DOWN/FLAT/UP
  0.378/0.219/0.403; daily vol 1.62%.
* ``signal`` -- a weak reversal: phi 0.8 (half-life ~3 days), sigma_u 0.014, sigma_w 0.0107;
  daily vol 1.83%, lag-1 return autocorrelation -0.07, shares 0.378/0.219/0.403. Gain 0.0187
  (seeds 1-5: 0.0205-0.0212); the stationary expectation (:func:`expected_gain`) is 0.0201.
  ``u`` carries ~65% of the daily variance because one noisy path reveals little of it (the
  filter's posterior variance stays at 72% of ``u``'s own): the oracle's forecast explains
  5.2% of the 5-day log return's variance, 0.027 nats as a Gaussian, 0.020 after labelling.
* ``regime`` -- ``signal`` until the middle day (``KnownSignalMarket.change_date``,
  2014-11-03 by default), then no new planted shocks (``sigma_u = 0``: the deviation left
  decays with ``phi`` within days) and twice the daily volatility. Gain 0.0209 before,
  -0.0000 after; FLAT share 0.218 -> 0.096. Score the halves separately: over both, the
  oracle also gains from knowing the volatility changed (0.0248 pooled).

``beta`` defaults to 0. With ``beta = 0.5`` the stocks' features mix in market moves that say
nothing about ``u``; on a 70/30 time split (seed 0) the share of the oracle's gain recovered
out of sample fell from 98% to 78% for a logistic regression on 4 features (price vs. EMA 12
and 26, 5-day return, Bollinger position), from 90% to 63% on the 37 technical features, and
from 40% to 34% for an untuned XGBoost (depth 4, 300 trees) on all 85.
Any parameter can be overridden with :class:`Dynamics` through ``KnownSignalSpec(dynamics=...,
after=..., change_at=...)``, e.g. to plant a volatility doubling on a chosen date.

Pure numpy/pandas (scipy for the normal CDF); nothing is written except by
:meth:`KnownSignalMarket.write`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signals.data.parquet import write_layout
from signals.data.synthetic import synthetic_events
from signals.dataset import DOWN, FLAT, UP, make_target

NOISE, SIGNAL, REGIME = "noise", "signal", "regime"
VARIANTS: tuple[str, ...] = (NOISE, SIGNAL, REGIME)
CLASS_COLUMNS: tuple[str, str, str] = ("p_down", "p_flat", "p_up")  # column i = class i

#: Every table of a generated layout is synthetic (``write_layout`` records it, the parquet
#: provider reports it).
SYNTHETIC_TABLES: tuple[str, ...] = ("bars", "market", "fundamentals", "insider_transactions", "short_interest")

_LEVEL_MEAN = math.log(40.0)  # prior of a symbol's log price level w_0 (Gaussian: keeps the oracle exact)
_LEVEL_SD = 0.5


@dataclass(frozen=True)
class Dynamics:
    """Daily parameters of the price process (log units); see the module docstring.

    ``sigma_w > 0`` is required: the random walk is what keeps the observation informative
    without being exact about ``u``.
    """

    drift: float = 0.0002
    sigma_w: float = 0.0107
    phi: float = 0.8
    sigma_u: float = 0.014
    market_drift: float = 0.0003
    sigma_m: float = 0.01

    def __post_init__(self) -> None:
        if not self.sigma_w > 0:
            raise ValueError(f"sigma_w must be > 0, got {self.sigma_w}")
        if not -1 < self.phi < 1:
            raise ValueError(f"phi must be in (-1, 1) (stationary AR(1)), got {self.phi}")
        if self.sigma_u < 0 or self.sigma_m < 0:
            raise ValueError("sigma_u and sigma_m must be >= 0")

    @property
    def u_variance(self) -> float:
        """Stationary variance of the planted component."""
        return self.sigma_u**2 / (1.0 - self.phi**2)

    def daily_vol(self, beta: float = 0.0) -> float:
        """Standard deviation of a stationary daily log return of a stock."""
        return math.sqrt(self.sigma_w**2 + 2.0 * self.sigma_u**2 / (1.0 + self.phi) + beta**2 * self.sigma_m**2)
    def horizon_variance(self, horizon: int = 5, beta: float = 0.0) -> float:
        """Stationary variance of an h-day log return (mean reversion makes it < h x daily)."""
        mean_reverting = 2.0 * self.u_variance * (1.0 - self.phi**horizon)
        return horizon * (self.sigma_w**2 + beta**2 * self.sigma_m**2) + mean_reverting


SIGNAL_DYNAMICS = Dynamics()
#: Pure noise with the same 5-day return variance as ``signal``, hence the same class shares.
NOISE_DYNAMICS = replace(SIGNAL_DYNAMICS, sigma_u=0.0, sigma_w=math.sqrt(SIGNAL_DYNAMICS.horizon_variance(5) / 5))
#: After the regime change: no new planted shocks, and twice the daily volatility.
REGIME_AFTER_DYNAMICS = replace(SIGNAL_DYNAMICS, sigma_u=0.0, sigma_w=2.0 * SIGNAL_DYNAMICS.daily_vol())


@dataclass(frozen=True)
class KnownSignalSpec:
    """What to generate. ``dynamics``/``after`` default to the variant's; ``change_at`` is a
    row position or a date (the first day whose move uses ``after``), half-way by default
    whenever there is an ``after``."""

    variant: str = SIGNAL
    n_symbols: int = 50
    n_days: int = 2520
    start: str = "2010-01-04"
    seed: int = 0
    n_sectors: int = 5
    beta: float = 0.0
    horizon: int = 5
    up_threshold: float = 0.01
    down_threshold: float = -0.01
    dynamics: Dynamics | None = None
    after: Dynamics | None = None
    change_at: int | str | pd.Timestamp | None = None
    #: False skips the event tables (optional in a layout; their per-symbol loops dominate
    #: the generation time of very wide, short markets such as calibration checks).
    events: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.n_symbols < 1 or self.n_days <= self.horizon + 1:
            raise ValueError("need at least one symbol and more days than the horizon + 1")
        if self.horizon < 1 or self.up_threshold <= self.down_threshold or self.down_threshold <= -1:
            raise ValueError("horizon must be >= 1 and -1 < down_threshold < up_threshold")

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.bdate_range(self.start, periods=self.n_days, name="date")

    @property
    def symbols(self) -> list[str]:
        return [f"S{i:04d}" for i in range(self.n_symbols)]

    def regimes(self) -> tuple[Dynamics, Dynamics | None, int | None]:
        """(dynamics before, dynamics after or None, position of the first changed day or None)."""
        before = self.dynamics or {NOISE: NOISE_DYNAMICS, SIGNAL: SIGNAL_DYNAMICS, REGIME: SIGNAL_DYNAMICS}[self.variant]
        after = self.after if self.after is not None else (REGIME_AFTER_DYNAMICS if self.variant == REGIME else None)
        if after is None:
            return before, None, None
        if self.change_at is None:
            pos = self.n_days // 2
        elif isinstance(self.change_at, (int, np.integer)):
            pos = int(self.change_at)
        else:
            pos = int(self.dates.searchsorted(pd.Timestamp(self.change_at)))
        if not 1 <= pos < self.n_days:
            raise ValueError(f"change_at {self.change_at!r} is not inside the generated dates")
        return before, after, pos

    def daily_parameters(self) -> pd.DataFrame:
        """One row per date: the parameters of the move from the previous day to that day."""
        before, after, pos = self.regimes()
        names = list(before.__dataclass_fields__)
        values = {n: np.full(self.n_days, float(getattr(before, n))) for n in names}
        if after is not None:
            for n in names:
                values[n][pos:] = float(getattr(after, n))
        return pd.DataFrame(values, index=self.dates)


@dataclass
class KnownSignalMarket:
    """A generated market: ``tables`` in the :func:`signals.data.parquet.write_layout` shape,
    the ``oracle`` (one row per labelled (symbol, date), see :func:`oracle_frame`), the true
    planted component ``planted`` (date x symbol; for tests, never a feature) and the day the
    parameters change (None without a change)."""

    spec: KnownSignalSpec
    tables: dict[str, Any]
    oracle: pd.DataFrame
    planted: pd.DataFrame
    parameters: pd.DataFrame
    change_date: pd.Timestamp | None = None
    closes: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def write(self, root: str | os.PathLike[str]) -> Path:
        """Write the layout (readable by ``ParquetProvider``) plus ``known_signal.json`` (the spec)."""

        path = write_layout(root, self.tables)
        (path / "known_signal.json").write_text(json.dumps(spec_summary(self.spec, self.change_date), indent=2) + "\n")
        return path


def spec_summary(spec: KnownSignalSpec, change_date: pd.Timestamp | None = None) -> dict[str, Any]:
    """The spec with resolved dynamics, as plain JSON-able values (for files and run params)."""
    before, after, _ = spec.regimes()
    out: dict[str, Any] = {
        k: getattr(spec, k)
        for k in ("variant", "n_symbols", "n_days", "start", "seed", "n_sectors", "beta", "horizon", "up_threshold",
                  "down_threshold", "events")
    }
    out["dynamics"] = vars(before).copy()
    out["after"] = vars(after).copy() if after is not None else None
    out["change_date"] = change_date.date().isoformat() if change_date is not None else None
    return out


# --------------------------------------------------------------------------- generation
def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per (seed, component[, symbol]): a symbol's path does not depend
    on how many other symbols are generated."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _ohlcv(dates: pd.DatetimeIndex, close: np.ndarray, rng: np.random.Generator, volume: bool = True) -> pd.DataFrame:
    """Bars around ``close`` whose open/high/low/volume add only independent noise.

    open = previous close x lognormal noise (so the gap says nothing about the future),
    high/low = the open-close envelope widened by independent half-normal noise.
    """
    n = len(close)
    prev = np.concatenate([close[:1], close[:-1]])
    open_ = prev * np.exp(0.004 * rng.standard_normal(n))
    high = np.maximum(open_, close) * np.exp(np.abs(0.008 * rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.008 * rng.standard_normal(n)))
    vol = np.maximum(1.0, np.round(rng.lognormal(13.0, 0.5, n))) if volume else np.zeros(n)
    return pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": vol})


def _random_walk(rng: np.random.Generator, n: int, start: float, drift: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    steps = drift + sigma * rng.standard_normal(n)
    steps = np.asarray(steps, dtype=np.float64).copy()
    steps[0] = 0.0
    return math.log(start) + np.cumsum(steps)


def generate_market(spec: KnownSignalSpec | None = None) -> KnownSignalMarket:
    """Generate the market of ``spec`` (default: the weak-signal variant, 50 x 2,520) and its oracle."""

    spec = spec or KnownSignalSpec()
    dates, symbols = spec.dates, spec.symbols
    T, S = spec.n_days, spec.n_symbols
    par = spec.daily_parameters()
    drift, sigma_w, phi, sigma_u = (par[c].to_numpy() for c in ("drift", "sigma_w", "phi", "sigma_u"))

    # The market: its day-0 step is unused (log M_0 is the start).
    log_m = _random_walk(_rng(spec.seed, 0, 0), T, 300.0, par["market_drift"].to_numpy(), par["sigma_m"].to_numpy())

    # Stocks: shocks drawn per symbol (own stream), the AR(1) run across symbols at once.
    shocks = np.empty((2, T, S))
    level = np.empty(S)
    extra_rngs = []
    for i in range(S):
        rng = _rng(spec.seed, 1, i)
        level[i] = _LEVEL_MEAN + _LEVEL_SD * rng.standard_normal()
        shocks[:, :, i] = rng.standard_normal((2, T))
        extra_rngs.append(rng)  # continues with the symbol's bar noise
    e, n = shocks
    u = np.empty((T, S))
    u[0] = math.sqrt(spec.regimes()[0].u_variance) * n[0]
    for t in range(1, T):
        u[t] = phi[t] * u[t - 1] + sigma_u[t] * n[t]
    w_steps = drift[:, None] + sigma_w[:, None] * e
    w_steps[0] = level
    w = np.cumsum(w_steps, axis=0)
    log_close = spec.beta * (log_m - log_m[0])[:, None] + w + u
    close = np.exp(log_close)

    bars = {sym: _ohlcv(dates, close[:, i], extra_rngs[i]) for i, sym in enumerate(symbols)}
    etfs = [f"XS{k}" for k in range(min(spec.n_sectors, S))]  # only sectors with a member
    market = {"SPY": _ohlcv(dates, np.exp(log_m), _rng(spec.seed, 0, 1))}
    for k, etf in enumerate(etfs):
        rng = _rng(spec.seed, 2, k)
        market[etf] = _ohlcv(dates, np.exp(_random_walk(rng, T, 50.0, 0.0002, 0.012)), rng)
    vix_rng = _rng(spec.seed, 3, 0)
    log_vix = np.empty(T)
    log_vix[0] = math.log(18.0)
    for t, z in enumerate(0.06 * vix_rng.standard_normal(T)[1:], start=1):
        log_vix[t] = log_vix[t - 1] + 0.03 * (math.log(18.0) - log_vix[t - 1]) + z
    market["VIX"] = _ohlcv(dates, np.exp(log_vix), vix_rng, volume=False)
    universe = pd.DataFrame(
        {"symbol": symbols, "sector": [f"Sector{i % len(etfs)}" for i in range(S)],
         "sector_etf": [etfs[i % len(etfs)] for i in range(S)]}
    )
    events = synthetic_events({s: b.set_index("date") for s, b in bars.items()}) if spec.events else {}
    tables: dict[str, Any] = {"universe": universe, "bars": bars, "market": market, **events}
    tables["synthetic_tables"] = [t for t in SYNTHETIC_TABLES if t in tables]

    closes = pd.DataFrame(close, index=dates, columns=symbols)
    y = np.log(close) - spec.beta * (log_m - log_m[0])[:, None]
    oracle = oracle_frame(spec, closes, y, par)
    _, _, pos = spec.regimes()
    return KnownSignalMarket(
        spec=spec,
        tables=tables,
        oracle=oracle,
        planted=pd.DataFrame(u, index=dates, columns=symbols),
        parameters=par,
        change_date=dates[pos] if pos is not None else None,
        closes=closes,
    )


# --------------------------------------------------------------------------- the oracle
def filter_planted(y: np.ndarray, par: pd.DataFrame, first_variance: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior of ``u_t`` given ``y_0..y_t``: means ``a`` (T x S) and variances ``p`` (T).

    ``y`` is T x S (columns = symbols sharing ``par``); ``first_variance`` is the prior
    variance of ``u_0``. The level prior ``w_0 ~ N(log 40, 0.5^2)`` makes the first update
    a (tiny) regression of ``u_0`` on ``y_0``.
    """
    drift, sigma_w, phi, sigma_u = (par[c].to_numpy() for c in ("drift", "sigma_w", "phi", "sigma_u"))
    T = y.shape[0]
    p = np.empty(T)
    gain = np.empty(T)
    v0, s2 = first_variance, _LEVEL_SD**2
    p[0] = v0 * s2 / (v0 + s2)
    gain[0] = v0 / (v0 + s2)
    for t in range(1, T):  # data-free: variances and gains, shared by every symbol
        var_u = phi[t] ** 2 * p[t - 1] + sigma_u[t] ** 2
        var_dy = (phi[t] - 1.0) ** 2 * p[t - 1] + sigma_w[t] ** 2 + sigma_u[t] ** 2
        cov = phi[t] * (phi[t] - 1.0) * p[t - 1] + sigma_u[t] ** 2
        gain[t] = cov / var_dy
        p[t] = var_u - cov * cov / var_dy
    a = np.empty_like(y)
    a[0] = gain[0] * (y[0] - _LEVEL_MEAN)
    dy = np.diff(y, axis=0)
    for t in range(1, T):
        a[t] = phi[t] * a[t - 1] + gain[t] * (dy[t - 1] - drift[t] - (phi[t] - 1.0) * a[t - 1])
    return a, np.maximum(p, 0.0)


def forward_moments(par: pd.DataFrame, horizon: int, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each day t with t + horizon inside the data: the known part of the forward log
    return's mean, ``Phi_t - 1`` (the loading on ``u_t``) and the variance of new shocks."""
    drift, sigma_w, phi, sigma_u, mu_m, sigma_m = (
        par[c].to_numpy() for c in ("drift", "sigma_w", "phi", "sigma_u", "market_drift", "sigma_m")
    )
    T = len(par) - horizon
    mean = np.zeros(T)
    shock_var = np.zeros(T)
    loading = np.ones(T)
    for k in range(horizon, 0, -1):  # k = horizon .. 1; `loading` is prod_{j>k} phi_{t+j}
        sl = slice(k, k + T)
        mean += drift[sl] + beta * mu_m[sl]
        shock_var += sigma_w[sl] ** 2 + beta**2 * sigma_m[sl] ** 2 + loading**2 * sigma_u[sl] ** 2
        loading = loading * phi[sl]
    return mean, loading - 1.0, shock_var


def class_probabilities(
    mean: np.ndarray, sd: np.ndarray, up_threshold: float, down_threshold: float
) -> np.ndarray:
    """(n, 3) P(DOWN), P(FLAT), P(UP) of a Gaussian log return with the project's label rule."""
    from scipy.special import ndtr

    hi = (math.log1p(up_threshold) - mean) / sd
    lo = (math.log1p(down_threshold) - mean) / sd
    p_down, p_up = ndtr(lo), ndtr(-hi)
    p_flat = ndtr(hi) - p_down
    out = np.stack([p_down, p_flat, p_up], axis=-1)
    return out / out.sum(axis=-1, keepdims=True)


def oracle_frame(spec: KnownSignalSpec, closes: pd.DataFrame, y: np.ndarray, par: pd.DataFrame) -> pd.DataFrame:
    """The oracle, indexed (symbol, date) over rows with a label: ``p_down, p_flat, p_up``,
    the forward log return's conditional ``mean`` and ``sd``, the planted component's
    posterior ``u_mean`` and ``u_sd``, the realised ``forward_return`` and ``label`` (from
    :func:`signals.dataset.make_target` on the same closes)."""
    before, _, _ = spec.regimes()
    h = spec.horizon
    a, p = filter_planted(y, par, before.u_variance)
    known_mean, load, shock_var = forward_moments(par, h, spec.beta)
    T, S = closes.shape
    keep = T - h
    mean = known_mean[:, None] + load[:, None] * a[:keep]
    var = shock_var + load**2 * p[:keep]
    sd = np.broadcast_to(np.sqrt(var)[:, None], mean.shape)
    probs = class_probabilities(mean, sd, spec.up_threshold, spec.down_threshold)  # (keep, S, 3)

    stacked = closes.stack().swaplevel().sort_index()  # (symbol, date), symbol-major like below
    stacked.index = stacked.index.set_names(["symbol", "date"])
    fwd = (stacked.groupby(level="symbol", sort=False).shift(-h) / stacked - 1.0).to_numpy().reshape(S, T)[:, :keep]
    target = make_target(stacked, horizon=h, up_threshold=spec.up_threshold, down_threshold=spec.down_threshold)
    labels = target.to_numpy().reshape(S, T)[:, :keep]
    if np.isnan(labels).any():
        raise RuntimeError("a labelled row has no label: the oracle and make_target disagree on the horizon")

    index = pd.MultiIndex.from_product([list(closes.columns), closes.index[:keep]], names=["symbol", "date"])

    def sym_major(arr: np.ndarray) -> np.ndarray:  # (date, symbol, ...) -> rows in index order
        return np.ascontiguousarray(np.swapaxes(arr, 0, 1)).reshape(S * keep, *arr.shape[2:])

    pr = sym_major(probs)
    return pd.DataFrame(
        {
            "p_down": pr[:, DOWN],
            "p_flat": pr[:, FLAT],
            "p_up": pr[:, UP],
            "mean": sym_major(mean),
            "sd": sym_major(sd),
            "u_mean": sym_major(a[:keep]),
            "u_sd": sym_major(np.broadcast_to(np.sqrt(p[:keep])[:, None], mean.shape)),
            "forward_return": fwd.reshape(-1),
            "label": labels.reshape(-1).astype(np.int64),
        },
        index=index,
    )


# --------------------------------------------------------------------------- scoring
def _select(oracle: pd.DataFrame, rows: Any) -> pd.DataFrame:
    """``rows``: None (all), a boolean mask aligned to ``oracle``, or (symbol, date) labels."""
    if rows is None:
        return oracle
    if isinstance(rows, (pd.Series, np.ndarray)) and np.asarray(rows).dtype == bool:
        return oracle[np.asarray(rows)]
    picked = oracle.reindex(pd.Index(rows))
    if picked["label"].isna().any():
        raise KeyError("some requested rows have no oracle row (unknown, or within `horizon` of the end)")
    return picked


def class_prior(labels: np.ndarray | pd.Series) -> np.ndarray:
    """Class frequencies (DOWN, FLAT, UP) of integer labels."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=3)[:3]
    return counts / counts.sum()


def oracle_log_loss(oracle: pd.DataFrame, rows: Any = None) -> float:
    """Mean negative log-likelihood (nats) of the realised labels under the oracle."""
    sel = _select(oracle, rows)
    probs = sel[list(CLASS_COLUMNS)].to_numpy()
    lab = sel["label"].to_numpy(dtype=np.int64)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(lab)), lab], 1e-15, 1.0))))


def prior_log_loss(oracle: pd.DataFrame, rows: Any = None, prior: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the labels under a constant distribution: ``prior``, or
    the class frequencies of the same rows (the best constant in hindsight)."""
    sel = _select(oracle, rows)
    lab = sel["label"].to_numpy(dtype=np.int64)
    q = class_prior(lab) if prior is None else np.asarray(prior, dtype=np.float64)
    return float(-np.mean(np.log(np.clip(q[lab], 1e-15, 1.0))))


def oracle_gain(oracle: pd.DataFrame, rows: Any = None) -> float:
    """``prior_log_loss - oracle_log_loss`` on the same rows (nats): the attainable gain."""
    return prior_log_loss(oracle, rows) - oracle_log_loss(oracle, rows)


def expected_gain(
    dynamics: Dynamics, *, beta: float = 0.0, horizon: int = 5, up_threshold: float = 0.01, down_threshold: float = -0.01
) -> float:
    """The oracle's expected gain (nats) over the true marginal class distribution, in the
    stationary state of constant ``dynamics`` (the filter's steady state, a long history).

    ``a_t`` is then N(0, Var u - p) (total variance), so the gain is the mutual information
    between the label and ``a_t``: computed by Gauss-Hermite quadrature over ``a_t``.
    """
    par = pd.DataFrame({k: np.full(400 + horizon, float(v)) for k, v in vars(dynamics).items()})
    a_dummy = np.zeros((len(par), 1))
    _, p = filter_planted(a_dummy, par, dynamics.u_variance)
    known, load, shock = forward_moments(par, horizon, beta)
    p_ss, known, load, shock = p[-horizon - 1], known[-1], load[-1], shock[-1]
    var_a = max(dynamics.u_variance - p_ss, 0.0)
    sd = math.sqrt(shock + load**2 * p_ss)
    x, wts = np.polynomial.hermite_e.hermegauss(81)
    wts = wts / wts.sum()
    means = known + load * math.sqrt(var_a) * x
    cond = class_probabilities(means, np.full_like(means, sd), up_threshold, down_threshold)
    marginal = wts @ cond
    return float(_entropy(marginal) - wts @ _entropy(cond))


def _entropy(q: np.ndarray) -> np.ndarray:
    return -np.sum(q * np.log(np.clip(q, 1e-300, 1.0)), axis=-1)
