"""Drift-monitor speed: the ModelMonitor's PSI check vs a plain numpy PSI, same data, same run.

Data (default 60 features x 10,000 rows, reference and current): a mix of normal, fat-tailed
(Student t, 1.5 dof), log-normal, binary and 5%-missing features; a quarter of the features
are shifted in the current sample so the check has something to find.

Measured (median of ``--repeat`` runs each, after one warm-up so Evidently's ~2 s import and
first-call costs are excluded and reported separately):

* monitor: ``ModelMonitor(reference)`` (reference quantile edges + bin codes) and
  ``check_drift(current)`` with the Evidently engine -- what ``signals monitor`` does per check,
  excluding the HTML report;
* numpy: :func:`signals.monitoring.psi.numpy_psi` -- the same quantile binning and the same PSI (same
  empty-bin rule) in plain numpy, from the raw frames;
* for context: the Evidently HTML report, and Evidently's own PSI on the raw numbers
  (equal-width Sturges bins), which the monitor deliberately does not use.

Prints a table, then as the LAST line one JSON object with ``monitor_s`` and
``monitor_over_numpy``.

    .venv/bin/python benchmarks/monitoring.py
    .venv/bin/python benchmarks/monitoring.py --features 20 --rows 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_data(n_features: int, n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i in range(n_features):
        kind = i % 5
        shift = 0.5 if i % 4 == 0 else 0.0
        if kind == 0:
            r, c = rng.normal(size=n_rows), rng.normal(shift, 1.0, size=n_rows)
        elif kind == 1:
            r, c = rng.standard_t(1.5, size=n_rows), rng.standard_t(1.5, size=n_rows) + shift
        elif kind == 2:
            r, c = rng.lognormal(size=n_rows), rng.lognormal(shift, 1.0, size=n_rows)
        elif kind == 3:
            r = (rng.random(n_rows) < 0.3).astype(float)
            c = (rng.random(n_rows) < 0.3 + shift / 2).astype(float)
        else:
            r, c = rng.normal(size=n_rows), rng.normal(shift, 1.0, size=n_rows)
            r[rng.random(n_rows) < 0.05] = np.nan
            c[rng.random(n_rows) < 0.05] = np.nan
        ref[f"feature_{i:02d}"], cur[f"feature_{i:02d}"] = r, c
    return pd.DataFrame(ref), pd.DataFrame(cur)


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=60)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    ref, cur = make_data(args.features, args.rows)

    t0 = time.perf_counter()
    import evidently  # noqa: F401 - import cost reported on its own
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    import_s = time.perf_counter() - t0

    from signals.monitoring.monitor import ModelMonitor
    from signals.monitoring.psi import numpy_psi

    def monitor_check():
        mon = ModelMonitor(ref, psi_bins=args.bins)
        return mon.check_drift(cur, engine="evidently")

    def numpy_check():
        return numpy_psi(ref, cur, n_bins=args.bins)

    monitor_check()  # warm-up: Evidently's first-call costs
    numpy_check()
    monitor_s, drift = timed(monitor_check, args.repeat)
    numpy_s, np_psi = timed(numpy_check, max(args.repeat, 5))
    max_diff = float(np.max(np.abs(drift.psi.to_numpy() - np_psi.to_numpy())))

    with tempfile.TemporaryDirectory() as tmp:
        html_s, _ = timed(lambda: drift.snapshot.save_html(str(Path(tmp) / "r.html")), 1)

    cols = list(ref.columns)
    definition = DataDefinition(numerical_columns=cols, categorical_columns=[])

    def raw_evidently():
        return Report([ValueDrift(column=c, method="psi") for c in cols]).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )

    raw_s, raw = timed(raw_evidently, 1)
    raw_psi = pd.Series({m["config"]["column"]: float(m["value"]) for m in raw.dict()["metrics"]})
    shifted = [c for i, c in enumerate(cols) if i % 4 == 0]
    caught_quantile = int((drift.psi[shifted] > 0.1).sum())
    caught_raw = int((raw_psi[shifted] > 0.1).sum())

    ratio = monitor_s / numpy_s
    print(f"drift check, {args.features} features x {args.rows:,} rows (reference and current), {args.bins} quantile bins")
    print(f"{'stage':<58}{'seconds':>10}")
    print("-" * 68)
    rows = [
        ("evidently import (once per process, excluded)", import_s),
        (f"monitor: ModelMonitor + check_drift (Evidently), median of {args.repeat}", monitor_s),
        (f"numpy PSI, same binning, median of {max(args.repeat, 5)}", numpy_s),
        ("Evidently HTML report (save_html, context)", html_s),
        ("Evidently PSI on raw numbers, Sturges bins (context)", raw_s),
    ]
    for name, secs in rows:
        print(f"{name:<58}{secs:>10.4f}")
    print("-" * 68)
    print(f"monitor / numpy: {ratio:.1f}x   max |PSI evidently - PSI numpy| = {max_diff:.2e}")
    print(
        f"shifted features seen (PSI > 0.1): quantile bins {caught_quantile}/{len(shifted)}, "
        f"Evidently raw Sturges bins {caught_raw}/{len(shifted)}"
    )
    print(json.dumps({"monitor_s": round(monitor_s, 4), "monitor_over_numpy": round(ratio, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
