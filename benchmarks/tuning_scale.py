"""What the tuning cost controls buy at universe scale, and what they cost in out-of-sample loss.

On a synthetic market with a planted signal (:mod:`signals.modeling.known_signal`, ``signal``
variant: a weak short-term reversal, same dynamics for every symbol) of ``--symbols`` symbols,
features from the real feature store, the most recent ``--windows`` walk-forward windows (24/6/3
months) are tuned by the same walk-forward loop ``signals tune`` runs
(:func:`signals.modeling.tuning.walk_forward.run_walk_forward`, no MLflow), once per variant:

    naive       the tuning before the cost controls: each trial rebuilds its matrices, median
                pruner, every window a cold full TPE study of ``--trials`` trials
    +reuse      matrices built once per window (QuantileDMatrix), reused by every trial
    +asha       successive halving over boosting rounds instead of the median rule
    +warm       warm start from the previous window's best 5, a full study every 4th window, 2
                warm-started trials in between
    project     the defaults: + full studies ranked on a 25% symbol subsample, the best 3 re-run
                on every row

Same data, seed, windows and ``--trials`` for every variant. Figures:

    cost       CPU seconds of tuning (every window's studies + the choice of the deployable
               params), this process, all threads; ``cost_ratio`` = variant / naive
    loss       mean over the windows of the raw out-of-sample log-loss of each window's model
               (the booster refitted with the window's best params, scored on its test rows);
               ``loss_gap`` = variant - naive. The class prior's log-loss on the same rows is
               printed next to it: a gap is small or large relative to the skill above the prior.

A table first; the last line is one JSON object: ``cost_ratio`` and ``loss_gap`` of the project's
defaults, ``naive_cpu_s``, ``project_cpu_s``, and ``variants`` (each variant's ratio and gap).

    python benchmarks/tuning_scale.py [--symbols 200] [--days 1008] [--trials 40] [--windows 4]
                                      [--only naive,project]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does

#: variant -> TuneConfig overrides (on top of the shared ones); each adds one control to the previous
VARIANTS: dict[str, dict] = {
    "naive": dict(reuse_matrix=False, pruner="median", warm_start_trials=0, full_every=1, fidelity_rows=1.0),
    "+reuse": dict(reuse_matrix=True, pruner="median", warm_start_trials=0, full_every=1, fidelity_rows=1.0),
    "+asha": dict(reuse_matrix=True, pruner="asha", warm_start_trials=0, full_every=1, fidelity_rows=1.0),
    "+warm": dict(reuse_matrix=True, pruner="asha", warm_start_trials=5, full_every=4, short_trials=2,
                  fidelity_rows=1.0),
    "project": dict(),  # the defaults of TuneConfig (= tuning.* in defaults.yaml)
}


def load_panel(args: argparse.Namespace, root: Path):
    from signals.dataset import load_training_data
    from signals.modeling.known_signal import KnownSignalSpec, generate_market
    from signals.settings.model import load_settings

    market = generate_market(KnownSignalSpec(variant="signal", n_symbols=args.symbols, n_days=args.days,
                                             seed=args.seed))
    layout = market.write(root / "layout")
    os.environ.update({"SA_DATA__PROVIDER": "parquet", "SA_DATA__PATH": str(layout),
                       "SA_FEATURES__CACHE_DIR": str(root / "features"), "SA_REDIS__ENABLED": "false",
                       "SA_MLFLOW__TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    settings = load_settings(None)
    return settings, load_training_data(settings)


def run_variant(name: str, data, settings, args: argparse.Namespace, root: Path) -> dict:
    import numpy as np

    from signals.modeling.tuning.objective import TuneConfig
    from signals.modeling.tuning.walk_forward import run_walk_forward

    db = root / f"optuna-{name.strip('+')}.db"
    config = TuneConfig.from_settings(
        settings, n_trials=args.trials, storage=f"sqlite:///{db}",
        seed=args.seed, **VARIANTS[name])
    t0 = time.perf_counter()
    res = run_walk_forward(data.features, data.y, data.forward_return, config=config, max_windows=args.windows)
    wall = time.perf_counter() - t0
    tuning_cpu = sum(w.tuning.cpu_seconds for w in res.windows)
    choice_cpu = float(res.final_params_report.get("cpu_seconds", 0.0))
    per_window = [w.metrics for w in res.windows]
    return {
        "variant": name,
        "cpu_s": tuning_cpu + choice_cpu,
        "studies_cpu_s": tuning_cpu,
        "choice_cpu_s": choice_cpu,
        "wall_s": wall,
        "trials": int(sum(w.tuning.n_trials_total for w in res.windows)),
        "full_rows_trials": int(sum(w.tuning.n_trials_total - w.tuning.n_low_fidelity for w in res.windows)),
        "pruned": int(sum(w.tuning.n_pruned for w in res.windows)),
        "loss": float(np.mean([m["log_loss_raw"] for m in per_window])),
        "loss_calibrated": float(np.mean([m["log_loss"] for m in per_window])),
        "prior": float(np.mean([m["baseline_prior_log_loss"] for m in per_window])),
        "windows": len(res.windows),
        "fit_rows": int(np.mean([w.tuning.fit_rows for w in res.windows])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--days", type=int, default=1008)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants (naive is always run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = ["naive"] + [v for v in args.only.split(",") if v and v != "naive"]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; choose from {list(VARIANTS)}")
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tuning-scale-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        settings, data = load_panel(args, root)
        features_s = time.perf_counter() - t0
        rows = [run_variant(n, data, settings, args, root) for n in names]
    naive = rows[0]
    print(f"tuning cost at scale: {args.symbols} symbols x {args.days} days, {data.features.shape[1]} features, "
          f"last {naive['windows']} windows (~{naive['fit_rows']:,} fit rows each), {args.trials} trials per full "
          f"study; features built in {features_s:.0f} s")
    print(f"{'variant':<11} {'cpu s':>8} {'ratio':>6} {'wall s':>7} {'trials':>6} {'full':>5} {'pruned':>6} "
          f"{'oos raw':>8} {'gap':>8} {'oos cal':>8} {'prior':>7}")
    for r in rows:
        r["cost_ratio"] = r["cpu_s"] / naive["cpu_s"]
        r["loss_gap"] = r["loss"] - naive["loss"]
        print(f"{r['variant']:<11} {r['cpu_s']:8.1f} {r['cost_ratio']:6.3f} {r['wall_s']:7.1f} {r['trials']:6d} "
              f"{r['full_rows_trials']:5d} {r['pruned']:6d} {r['loss']:8.4f} {r['loss_gap']:+8.4f} "
              f"{r['loss_calibrated']:8.4f} {r['prior']:7.4f}")
    print("cost: CPU s of the studies + the deployable-params choice; oos raw: mean per-window out-of-sample "
          "log-loss of the raw booster; gap = variant - naive; prior: the training class frequencies on the same rows")
    project = rows[-1]
    print(f"total {time.perf_counter() - t_all:.0f} s")
    print(json.dumps({
        "cost_ratio": round(project["cost_ratio"], 4), "loss_gap": round(project["loss_gap"], 5),
        "naive_cpu_s": round(naive["cpu_s"], 1), f"{project['variant']}_cpu_s": round(project["cpu_s"], 1),
        "variants": {r["variant"]: {"cost_ratio": round(r["cost_ratio"], 4), "loss_gap": round(r["loss_gap"], 5)}
                     for r in rows},
    }))


if __name__ == "__main__":
    main()
