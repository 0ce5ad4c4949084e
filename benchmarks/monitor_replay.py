"""Does the monitor alarm only when something changed? A replay of the drift check over history.

The drift check (:meth:`signals.monitoring.monitor.ModelMonitor.check_drift` with its in-sample
null, the same code ``signals monitor`` runs) is replayed every ``--step`` trading days over:

* ``sample``: the bundled sample data (4 symbols), a model trained to ``--sample-train-end``;
  checks inside the training period and after it (real market, nothing planted);
* ``synthetic``: the known-signal market (:mod:`signals.modeling.known_signal`, ``signal``
  variant: stationary by construction), trained on the first 60 % of its days;
* ``synthetic_vol``: the ``regime`` variant, daily volatility doubling at a known date after
  the training end (the generator's own planted change);
* ``synthetic_feature``: the ``synthetic`` market with one feature's distribution moving at the
  same date (``rsi_14`` shifted by ``--feature-shift`` of its training standard deviation);
* ``sample_feature`` (reported, not in the figures): the sample with ``rsi_14`` moved by
  ``--sample-feature-shift`` standard deviations. On 4 symbols a 60-day window of a feature
  swings widely even in sample, so a single feature has to move far to stand out.

Features are computed once per market (the feature store, as the product does) and binned
once per model (:class:`signals.monitoring.null.DateCounts`); no model is fitted (the drift
rule does not need one). Figures:

* ``false_alarm_rate``: alarms / checks whose window holds no planted change (every check of
  ``sample`` and ``synthetic``, and the checks before the change of the planted markets);
* ``detection_delay_checks``: the worst over the planted markets of the number of checks from
  the change to the first alarm (1 = the first check on or after the change date alarms);
* ``day0_alarm``: any alarm on a check dated at the training end (a model trained up to T,
  checked at T);
* ``monitor_s``: one whole check (``ModelMonitor`` built from the reference, binning, null,
  rule, Evidently's PSI for its report) on 60 features x 10,000 rows, next to a plain numpy PSI
  pass over the same window (the baseline, same run).

The same replay also scores the alternatives (Benjamini-Hochberg, the old fixed-level rules)
on the same checks, so the choice of the default rule is a measurement. A table first, then
one JSON line.

    python benchmarks/monitor_replay.py [--symbols 20] [--days 1260] [--step 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from signals.features.spec import names_for  # noqa: E402
from signals.monitoring.monitor import ModelMonitor  # noqa: E402
from signals.monitoring.null import DateCounts, drift_decision, min_windows  # noqa: E402
from signals.monitoring.psi import numpy_psi  # noqa: E402

#: the alternatives scored on the same checks: name -> ModelMonitor keyword arguments
RULES = {
    "maxstat@0.01 (default)": dict(drift_method="maxstat", drift_level=0.01),
    "maxstat@0.05": dict(drift_method="maxstat", drift_level=0.05),
    "bh@0.05, >=1 feature": dict(drift_method="bh", drift_level=0.05, drift_min_features=1),
    "bh@0.05, >=3 features": dict(drift_method="bh", drift_level=0.05, drift_min_features=3),
}
DEFAULT_RULE = "maxstat@0.01 (default)"


@dataclass
class Market:
    name: str
    history: pd.DataFrame  # features indexed by (symbol, date)
    train_end: pd.Timestamp
    change_date: pd.Timestamp | None = None
    scored: bool = True  # False: shown in the table, left out of the JSON figures


def replay(market: Market, *, window: int = 60, step: int = 5, reference_rows: int = 10_000, seed: int = 0,
           exclude: tuple[str, ...] = (), rules: dict | None = None, first_check: int | None = None) -> pd.DataFrame:
    """One row per (check, rule): the check date, whether it alarmed, and whether a change is planted in it."""
    hist = market.history
    dates = pd.DatetimeIndex(hist.index.get_level_values("date"))
    train = hist[dates <= market.train_end]
    ref = train.sample(min(reference_rows, len(train)), random_state=seed)
    cal = pd.DatetimeIndex(dates.unique()).sort_values()
    rows = []
    for rule, kw in (rules or RULES).items():
        mon = ModelMonitor(ref, exclude=exclude, **kw)
        counts = DateCounts(hist[mon.features], mon.binner, dates)
        # no check while the features still fill their lookbacks (the null leaves those dates out too)
        start = first_check if first_check is not None else mon.null_warmup_days + window
        positions = list(range(cal.searchsorted(market.train_end), start - 1, -step))[::-1]
        positions += list(range(positions[-1] + step, len(cal), step))
        for pos in positions:
            day = cal[pos]
            cur = hist[(dates > cal[max(pos - window, -1)] if pos >= window else dates >= cal[0]) & (dates <= day)]
            d = mon.check_drift(cur, engine="numpy", history=hist, baseline_end=market.train_end, counts=counts)
            rows.append({
                "market": market.name, "scored": market.scored, "rule": rule, "date": day, "alarm": bool(d.alarm),
                "judged": d.decision is not None and d.decision.judged,
                "in_training": day <= market.train_end, "day0": day == cal[cal.searchsorted(market.train_end)],
                "changed": market.change_date is not None and day >= market.change_date,
                "n_major": d.n_major, "top": d.decision.rejected[0] if d.decision and d.decision.rejected else "",
            })
    return pd.DataFrame(rows)


def figures(checks: pd.DataFrame, rule: str = DEFAULT_RULE) -> dict:
    """false_alarm_rate, detection_delay_checks (None if a planted change was never caught), day0_alarm."""
    c = checks[(checks["rule"] == rule) & checks["scored"]]
    quiet = c[~c["changed"]]
    delays = []
    for _, g in c[c["changed"]].groupby("market"):
        hits = np.flatnonzero(g.sort_values("date")["alarm"].to_numpy())
        delays.append(int(hits[0]) + 1 if len(hits) else None)
    delay = None if any(d is None for d in delays) else (max(delays) if delays else None)
    return {
        "false_alarm_rate": round(float(quiet["alarm"].mean()), 4) if len(quiet) else None,
        "detection_delay_checks": delay,
        "day0_alarm": bool(c.loc[c["day0"], "alarm"].any()),
        "n_quiet_checks": int(len(quiet)),
        "n_changed_checks": int(c["changed"].sum()),
    }


def old_rule_false_alarms(checks: pd.DataFrame, k: int = 5) -> float:
    """The fixed-level rule the monitor had: >= k counted features with PSI > 0.2 (same checks)."""
    c = checks[(checks["rule"] == DEFAULT_RULE) & ~checks["changed"] & checks["scored"]]
    return float((c["n_major"] >= k).mean())


# --------------------------------------------------------------------------- markets
def _features(settings_env: dict[str, str], root: Path) -> pd.DataFrame:
    from signals.data import get_provider
    from signals.features import FeatureStore
    from signals.settings.model import load_settings

    old = {k: os.environ.get(k) for k in settings_env}
    os.environ.update(settings_env)
    try:
        settings = load_settings(None)
        provider = get_provider(settings)
        syms = provider.resolve_symbols(None)
        return FeatureStore.from_settings(settings).get_features(syms, None, None, provider)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sample_markets(root: Path, train_end: str, change_at: float, shift: float, feature: str = "rsi_14") -> list[Market]:
    feats = _features({"SA_DATA__PROVIDER": "sample", "SA_FEATURES__CACHE_DIR": str(root / "fc-sample"),
                       "SA_REDIS__ENABLED": "false"}, root)
    te = pd.Timestamp(train_end)
    dates = pd.DatetimeIndex(feats.index.get_level_values("date"))
    post = pd.DatetimeIndex(dates.unique()).sort_values()
    post = post[post > te]
    change = post[int(len(post) * change_at)]
    base = Market("sample", feats, te)
    return [base, move_feature(base, "sample_feature", change, shift, feature, scored=False)]


def move_feature(market: Market, name: str, change: pd.Timestamp, shift: float, feature: str = "rsi_14",
                 scored: bool = True) -> Market:
    """A copy of ``market`` whose ``feature`` moves by ``shift`` training standard deviations from ``change``."""
    dates = pd.DatetimeIndex(market.history.index.get_level_values("date"))
    moved = market.history.copy()
    sd = float(moved.loc[dates <= market.train_end, feature].std())
    moved.loc[dates >= change, feature] += shift * sd
    return Market(name, moved, market.train_end, change, scored=scored)


def synthetic_markets(root: Path, symbols: int, days: int, seed: int, shift: float) -> list[Market]:
    from signals.modeling.known_signal import KnownSignalSpec, generate_market

    out = []
    train_pos, change_pos = int(days * 0.6), int(days * 0.8)
    for name, variant in (("synthetic", "signal"), ("synthetic_vol", "regime")):
        spec = KnownSignalSpec(variant=variant, n_symbols=symbols, n_days=days, seed=seed,
                               change_at=change_pos if variant == "regime" else None, events=False)
        market = generate_market(spec)
        layout = market.write(root / f"layout-{name}")
        feats = _features({"SA_DATA__PROVIDER": "parquet", "SA_DATA__PATH": str(layout),
                           "SA_FEATURES__CACHE_DIR": str(root / f"fc-{name}"), "SA_REDIS__ENABLED": "false"}, root)
        out.append(Market(name, feats, spec.dates[train_pos], market.change_date))
    out.append(move_feature(out[0], "synthetic_feature", out[1].change_date, shift))
    return out


# --------------------------------------------------------------------------- timing
def _position(market: Market, day: pd.Timestamp) -> int:
    cal = pd.DatetimeIndex(market.history.index.get_level_values("date").unique()).sort_values()
    return int(cal.searchsorted(day))


def timing(n_features: int = 60, n_rows: int = 10_000, repeat: int = 3, seed: int = 0) -> dict:
    """One whole monitor check vs a plain numpy PSI pass, 60 features x 10,000 rows of history."""
    rng = np.random.default_rng(seed)
    n_sym = 4
    dates = pd.bdate_range("2010-01-01", periods=n_rows // n_sym, name="date")
    idx = pd.MultiIndex.from_product([[f"S{i}" for i in range(n_sym)], dates], names=["symbol", "date"])
    x = rng.standard_t(4, size=(len(idx), n_features))
    x[:, ::5] = np.cumsum(x[:, ::5], axis=0) / 30  # some persistent features
    x[rng.random(x.shape) < 0.02] = np.nan
    hist = pd.DataFrame(x, index=idx, columns=[f"feature_{i:02d}" for i in range(n_features)])
    d = hist.index.get_level_values("date")
    train_end = dates[int(len(dates) * 0.8)]
    ref = hist[d <= train_end]
    cur = hist[d > dates[-61]]

    def check() -> object:
        mon = ModelMonitor(ref)
        return mon.check_drift(cur, engine="evidently", history=hist, baseline_end=train_end)

    def check_evidently_only() -> object:  # the check as it was: Evidently's PSI, no in-sample null
        return ModelMonitor(ref).check_drift(cur, engine="evidently")

    def check_numpy() -> object:
        return ModelMonitor(ref).check_drift(cur, engine="numpy", history=hist, baseline_end=train_end)

    check()  # warm-up: Evidently's import and first-call costs
    t = {}
    for name, fn in (("monitor", check), ("monitor_numpy", check_numpy), ("evidently_only", check_evidently_only),
                     ("numpy_psi", lambda: numpy_psi(ref, cur))):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        t[name] = statistics.median(times)
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=20, help="synthetic market size")
    ap.add_argument("--days", type=int, default=1260)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step", type=int, default=5, help="trading days between checks")
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--sample-train-end", default="2010-12-31")
    ap.add_argument("--feature-shift", type=float, default=1.0, help="planted move, in training standard deviations")
    ap.add_argument("--sample-feature-shift", type=float, default=4.0, help="the same on the sample (not scored)")
    ap.add_argument("--skip-sample", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("signals").setLevel(logging.WARNING)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="monitor-replay-") as tmp:
        root = Path(tmp)
        markets = synthetic_markets(root, args.symbols, args.days, args.seed, args.feature_shift)
        if not args.skip_sample:
            markets += sample_markets(root, args.sample_train_end, 0.5, args.sample_feature_shift)
        features_s = time.perf_counter() - t0
        exclude = tuple(names_for("temporal"))
        # a planted copy is the same market before its change: its checks start at the training end
        checks = pd.concat([
            replay(m, window=args.window, step=args.step, exclude=exclude,
                   first_check=_position(m, m.train_end) if m.change_date is not None else None)
            for m in markets
        ])
    replay_s = time.perf_counter() - t0 - features_s
    t = timing()

    print(f"monitor replay: a check every {args.step} trading days, {args.window}-day window; "
          f"synthetic {args.symbols} symbols x {args.days} days")
    print(f"{'market':<18}{'train end':<12}{'change':<12}{'checks':>7}{'in-train':>9}  scored")
    for m in markets:
        c = checks[(checks["market"] == m.name) & (checks["rule"] == DEFAULT_RULE)]
        print(f"{m.name:<18}{m.train_end.date()!s:<12}{str(m.change_date.date()) if m.change_date is not None else '-':<12}"
              f"{len(c):>7}{int(c['in_training'].sum()):>9}  {'yes' if m.scored else 'no (info)'}")
    print()
    print(f"{'rule':<26}{'false alarms':>13}{'in-train':>10}{'after':>8}{'delay':>7}{'day0':>6}")
    for rule in RULES:
        f = figures(checks, rule)
        c = checks[(checks["rule"] == rule) & ~checks["changed"] & checks["scored"]]
        print(f"{rule:<26}{f['false_alarm_rate']:>13.4f}{c.loc[c['in_training'], 'alarm'].mean():>10.4f}"
              f"{c.loc[~c['in_training'], 'alarm'].mean():>8.4f}{str(f['detection_delay_checks']):>7}"
              f"{str(f['day0_alarm']):>6}")
    old = old_rule_false_alarms(checks)
    print(f"{'old: >=5 features PSI>0.2':<26}{old:>13.4f}   (the fixed-level rule, same quiet checks)")
    print()
    print(f"default rule by market ({DEFAULT_RULE}); delay = checks from the change to the first alarm")
    for name, g in checks[checks["rule"] == DEFAULT_RULE].groupby("market", sort=False):
        quiet, changed = g[~g["changed"]], g[g["changed"]].sort_values("date")
        hits = np.flatnonzero(changed["alarm"].to_numpy())
        delay = (str(hits[0] + 1) if len(hits) else "never") if len(changed) else "-"
        print(f"  {name:<18} alarms on quiet checks {int(quiet['alarm'].sum())}/{len(quiet)}"
              f"   after the change {int(changed['alarm'].sum())}/{len(changed)}   delay {delay}")
    print()
    print(f"one check, 60 features x 10,000 rows: {t['monitor']:.3f} s with Evidently's PSI/report snapshot, "
          f"{t['monitor_numpy']:.3f} s numpy engine; plain numpy PSI pass {t['numpy_psi']:.4f} s "
          f"({t['monitor'] / t['numpy_psi']:.1f}x); the former check (Evidently's PSI, no null) "
          f"{t['evidently_only']:.3f} s in the same run ({t['monitor'] / t['evidently_only']:.2f}x)")
    print(f"features {features_s:.1f} s, replay {replay_s:.1f} s")
    f = figures(checks, DEFAULT_RULE)
    print(json.dumps({
        "false_alarm_rate": f["false_alarm_rate"], "detection_delay_checks": f["detection_delay_checks"],
        "day0_alarm": f["day0_alarm"], "monitor_s": round(t["monitor"], 4),
        "monitor_over_numpy_psi": round(t["monitor"] / t["numpy_psi"], 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
