"""Tuning throughput and the share of wall time spent in MLflow logging.

The same walk-forward tuning (same data, seed, windows and trial count) runs with MLflow logging
off (``run_walk_forward`` without hooks) and on (``signals.lifecycle.tune.tune_with_tracking``: parent
run with config/dataset/artifacts/plots, a child run per window, a grandchild run per trial),
alternating off/on ``--repeats`` times in one process; each run gets a fresh Optuna SQLite storage
so neither resumes the other. Data: the shipped sample (4 symbols, real feature store), the most
recent ``--windows`` walk-forward windows with the default 24/6/3-month layout.

    logging_overhead_share = (median wall with logging - median wall without) / median wall with

A readable table is printed first; the last line is one JSON object with ``trials_per_min`` (with
logging on) and ``logging_overhead_share``.

    python benchmarks/tuning.py [--trials 12] [--windows 2] [--repeats 3] [--jobs 1]

As a cross-check the tracked runs also time the main thread inside the logging code directly
(``logging_share_timed``); the on/off difference is noisier on a shared machine.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # same as the CLI (see entrypoints.prefer_passive_openmp)


class LoggingTimer:
    """Wall time the main thread spends inside MLflow logging code during a tracked run.

    Wraps the tracking helpers, the window/trial hooks, the parent-run artifact logging and
    ``mlflow.start_run``; only the outermost wrapped call is counted (no double counting).
    Background trial logging that overlaps with training is, correctly, not counted unless the
    main thread waits for it (the wait at each window's end is inside ``window_finished``).
    """

    def __init__(self) -> None:
        import threading

        self.seconds = 0.0
        self._depth = threading.local()
        self._undo: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, name: str) -> None:
        import functools
        import threading

        fn = getattr(owner, name)
        timer = self

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            depth = getattr(timer._depth, "n", 0)
            timer._depth.n = depth + 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timer._depth.n = depth
                if depth == 0:
                    timer.seconds += time.perf_counter() - t

        self._undo.append((owner, name, fn))
        setattr(owner, name, wrapped)

    def __enter__(self) -> "LoggingTimer":
        import mlflow

        import signals.lifecycle.tune as tune_mod
        from signals.adapters import tracking as T

        for name in ("configure_mlflow", "log_params_batch", "log_metrics_batch", "log_resolved_config",
                     "log_training_dataset", "provenance_tags", "set_tags_batch"):
            self._wrap(T, name)
        for name in ("window_started", "window_finished", "window_skipped"):
            self._wrap(tune_mod.MlflowWalkForwardHooks, name)
        self._wrap(tune_mod, "log_walk_forward_outputs")
        self._wrap(mlflow, "start_run")
        self._wrap(mlflow.ActiveRun, "__exit__")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, fn in reversed(self._undo):
            setattr(owner, name, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12, help="trials per window")
    ap.add_argument("--windows", type=int, default=2, help="most recent walk-forward windows to tune")
    ap.add_argument("--repeats", type=int, default=3, help="off/on pairs (medians are reported)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel trials (tuning.n_jobs)")
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING)
    for name in ("mlflow", "alembic", "signals"):
        logging.getLogger(name).setLevel(logging.WARNING)

    import optuna
    import xgboost  # noqa: F401 - warm the import outside the timed region

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    from signals.dataset import load_training_data
    from signals.lifecycle.tune import tune_config, tune_with_tracking
    from signals.modeling.tuning.walk_forward import run_walk_forward
    from signals.settings.model import load_settings

    with tempfile.TemporaryDirectory(prefix="signals-bench-") as tmp:
        root = Path(tmp)
        os.chdir(root)
        settings = load_settings(
            REPO / "config" / "settings.yaml",
            mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "bench-tuning"},
            features={"cache_dir": str(root / "features"), "n_jobs": 1},
            redis={"enabled": False},
            tuning={"n_trials": args.trials, "n_jobs": args.jobs},
        )
        t = time.perf_counter()
        data = load_training_data(settings)
        load_s = time.perf_counter() - t

        # warm-up outside the timed region: MLflow store creation/migration, imports, one tiny fit
        import mlflow

        from signals.adapters.tracking import configure_mlflow

        configure_mlflow(settings)
        mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("bench-tuning").experiment_id])
        warm = tune_config(settings, n_trials=1, storage=f"sqlite:///{root / 'warm.db'}")
        run_walk_forward(data.features, data.y, data.forward_return, config=warm, max_windows=1)

        walls: dict[str, list[float]] = {"off": [], "on": []}
        measured: list[float] = []
        n_trials_done = 0
        for rep in range(args.repeats):
            for mode in ("off", "on"):
                storage = f"sqlite:///{root / f'optuna-{mode}-{rep}.db'}"
                t = time.perf_counter()
                if mode == "off":
                    cfg = tune_config(settings, storage=storage)
                    res = run_walk_forward(data.features, data.y, data.forward_return, config=cfg,
                                           max_windows=args.windows)
                    trials = sum(w.tuning.n_trials_run for w in res.windows)
                else:
                    with LoggingTimer() as lt:
                        tres = tune_with_tracking(settings, data, storage=storage, max_windows=args.windows)
                    measured.append(lt.seconds)
                    trials = sum(1 for _ in tres.windows) * args.trials
                walls[mode].append(time.perf_counter() - t)
                n_trials_done = trials
                print(f"  run {rep + 1}/{args.repeats} logging {mode:>3}: {walls[mode][-1]:7.2f} s, {trials} trials",
                      flush=True)

    off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
    share = max(0.0, (on - off) / on)
    direct = statistics.median(m / w for m, w in zip(measured, walls["on"]))
    tpm = n_trials_done / (on / 60.0)
    rows = [
        ("data", f"sample, {len(data.symbols)} symbols, {len(data.features)} rows x {data.features.shape[1]} features"),
        ("layout", f"{args.windows} most recent windows (24/6/3 months), {args.trials} trials each, n_jobs={args.jobs}"),
        ("feature build + labels", f"{load_s:.2f} s (not timed below)"),
        ("wall, logging off (median)", f"{off:.2f} s  {[round(w, 2) for w in walls['off']]}"),
        ("wall, logging on (median)", f"{on:.2f} s  {[round(w, 2) for w in walls['on']]}"),
        ("trials per minute (logging on)", f"{tpm:.1f}"),
        ("trials per minute (logging off)", f"{n_trials_done / (off / 60.0):.1f}"),
        ("MLflow logging share of wall", f"{share:.1%}  (on vs off; target <= 10%)"),
        ("  cross-check: timed inside logging", f"{direct:.1%}  {[round(m, 2) for m in measured]} s on the main thread"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    print(json.dumps({"trials_per_min": round(tpm, 2), "logging_overhead_share": round(share, 4),
                      "logging_share_timed": round(direct, 4),
                      "wall_on_s": round(on, 3), "wall_off_s": round(off, 3), "trials": n_trials_done}))


if __name__ == "__main__":
    main()
