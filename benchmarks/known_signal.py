"""Does the pipeline find a signal that is there, and only that? Scored against the oracle.

On the known-signal market (:mod:`signals.modeling.known_signal`) the Bayes-optimal probabilities
are known exactly, so the walk-forward's out-of-sample log-loss can be put on a scale from the
class prior (nothing learnt) to the oracle (everything learnt). Each variant runs the real tune
step, the same code as ``signals tune`` (``signals.lifecycle.tune.tune_with_tracking``: feature
store on a parquet layout, purged walk-forward, Optuna per window, forward-chained
calibration, MLflow runs in a throw-away SQLite store), then scores the stitched OOS rows:

    signal_recovery = (prior_ll - model_ll) / (prior_ll - oracle_ll)   on the weak-signal market
    noise_skill     = prior_ll - model_ll                               on pure noise (>= -0.003 wanted)
    signal_ece, noise_ece                                               top-label ECE, calibrated, OOS

``prior_ll`` is the log-loss of each window's training-row class frequencies, ``model_ll`` of
the calibrated probabilities and ``oracle_ll`` of the oracle, all on the same OOS rows. The
``regime`` variant (the signal stops and volatility doubles half-way) is reported by half.
A table comes first; the last line is one JSON object with the figures.

    python benchmarks/known_signal.py [--symbols 50] [--days 2520] [--trials 10] [--step 6]
                                      [--variants signal,noise,regime] [--class-weight none]
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
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (entrypoints.prefer_passive_openmp)


def run_variant(variant: str, args: argparse.Namespace, root: Path) -> dict:
    import numpy as np

    from signals.dataset import load_training_data
    from signals.lifecycle.tune import tune_with_tracking
    from signals.modeling import metrics as M
    from signals.modeling.known_signal import KnownSignalSpec, generate_market
    from signals.modeling.tuning.walk_forward import stitch_predictions
    from signals.settings.model import load_settings

    spec = KnownSignalSpec(variant=variant, n_symbols=args.symbols, n_days=args.days, seed=args.seed)
    market = generate_market(spec)
    layout = market.write(root / f"layout-{variant}")
    os.environ.update({
        "SA_DATA__PROVIDER": "parquet", "SA_DATA__PATH": str(layout),
        "SA_FEATURES__CACHE_DIR": str(root / "features"),
        "SA_MLFLOW__TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "SA_MLFLOW__EXPERIMENT": f"known-signal-{variant}",
        "SA_TUNING__STORAGE": f"sqlite:///{root / 'optuna.db'}",
        "SA_TUNING__N_TRIALS": str(args.trials), "SA_WALK_FORWARD__STEP_MONTHS": str(args.step),
        "SA_ML__CLASS_WEIGHT": args.class_weight, "SA_REDIS__ENABLED": "false",
    })
    settings = load_settings(None)
    t0 = time.perf_counter()
    data = load_training_data(settings)
    res = tune_with_tracking(settings, data, background_trial_logging=True)
    seconds = time.perf_counter() - t0

    st = stitch_predictions(res_predictions(res))
    oracle = market.oracle.reindex(list(zip(st["symbol"], st["date"])))
    if oracle["p_up"].isna().any():
        raise SystemExit(f"{variant}: {int(oracle['p_up'].isna().sum())} OOS rows have no oracle probability")
    y = st["y"].to_numpy()
    if not (oracle["label"].to_numpy() == y).all():
        raise SystemExit(f"{variant}: the pipeline's labels differ from the generator's")
    halves = {"all": np.ones(len(st), dtype=bool)}
    if market.change_date is not None:
        halves = {"before": (st["date"] < market.change_date).to_numpy(),
                  "after": (st["date"] >= market.change_date).to_numpy()}
    out = {"variant": variant, "seconds": seconds, "windows": int(res.metrics.get("n_windows", 0)),
           "calibration": res.metrics.get("calibration_method", "")}
    for part, m in halves.items():
        proba = st.loc[m, ["p_down", "p_flat", "p_up"]].to_numpy()
        raw = st.loc[m, ["raw_down", "raw_flat", "raw_up"]].to_numpy()
        prior = st.loc[m, ["prior_down", "prior_flat", "prior_up"]].to_numpy()
        orc = oracle.loc[m, ["p_down", "p_flat", "p_up"]].to_numpy()
        ym = y[m]
        model_ll, raw_ll, prior_ll, oracle_ll = (M.log_loss(ym, p) for p in (proba, raw, prior, orc))
        gain = prior_ll - oracle_ll
        out[part] = {
            "rows": int(m.sum()), "model_ll": model_ll, "raw_ll": raw_ll, "prior_ll": prior_ll, "oracle_ll": oracle_ll,
            "oracle_gain": gain, "skill": prior_ll - model_ll, "raw_skill": prior_ll - raw_ll,
            "recovery": (prior_ll - model_ll) / gain if gain > 1e-4 else float("nan"),
            "ece": M.expected_calibration_error(ym, proba), "ece_raw": M.expected_calibration_error(ym, raw),
        }
    return out


def res_predictions(res):
    """The tune step returns run metadata; the OOS predictions are its logged artifact."""
    import mlflow
    import pandas as pd

    from signals.lifecycle.tune import OOS_PREDICTIONS_FILE

    local = mlflow.artifacts.download_artifacts(run_id=res.run_id, artifact_path=OOS_PREDICTIONS_FILE)
    return pd.read_parquet(local)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--days", type=int, default=2520)
    p.add_argument("--trials", type=int, default=10, help="Optuna trials per window (the demo's count)")
    p.add_argument("--step", type=int, default=6, help="walk-forward step in months (the demo's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="signal,noise,regime")
    p.add_argument("--class-weight", default="none", choices=["none", "balanced"])
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory(prefix="signals-known-") as tmp:
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            results.append(run_variant(variant, args, Path(tmp)))

    print(f"known-signal market: {args.symbols} symbols x {args.days} days, {args.trials} trials/window, "
          f"step {args.step} months, class_weight={args.class_weight}")
    header = f"{'variant':<8} {'part':<7} {'rows':>7} {'prior_ll':>9} {'raw_ll':>9} {'model_ll':>9} {'oracle_ll':>9} " \
             f"{'gain':>8} {'skill':>8} {'recovery':>8} {'ece_raw':>7} {'ece':>7}"
    print(header)
    print("-" * len(header))
    for r in results:
        for part in ("all", "before", "after"):
            if part not in r:
                continue
            x = r[part]
            print(f"{r['variant']:<8} {part:<7} {x['rows']:>7} {x['prior_ll']:>9.5f} {x['raw_ll']:>9.5f} "
                  f"{x['model_ll']:>9.5f} {x['oracle_ll']:>9.5f} {x['oracle_gain']:>8.5f} {x['skill']:>+8.5f} "
                  f"{x['recovery']:>8.3f} {x['ece_raw']:>7.4f} {x['ece']:>7.4f}")
        print(f"{'':<8} {r['windows']} windows, {r['seconds']:.0f} s")
    by = {r["variant"]: r for r in results}
    figures: dict[str, float] = {}
    if "signal" in by:
        figures.update(signal_recovery=by["signal"]["all"]["recovery"], signal_ece=by["signal"]["all"]["ece"],
                       signal_oracle_gain=by["signal"]["all"]["oracle_gain"], signal_skill=by["signal"]["all"]["skill"])
    if "noise" in by:
        figures.update(noise_skill=by["noise"]["all"]["skill"], noise_ece=by["noise"]["all"]["ece"])
    if "regime" in by:
        figures.update(regime_recovery_before=by["regime"]["before"]["recovery"],
                       regime_skill_after=by["regime"]["after"]["skill"], regime_ece_after=by["regime"]["after"]["ece"])
    figures["seconds"] = sum(r["seconds"] for r in results)
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
