"""Serving latency: HTTP (`signals serve`) and in-process pyfunc, relative to the raw booster.

Trains a small XGBoost model on synthetic data (55 features, like the real feature set),
logs it as the served pyfunc, registers and promotes it in a throwaway MLflow store, starts
`mlflow models serve` on the champion exactly as `signals serve` does, and times:

* ``booster``  raw ``Booster.inplace_predict`` on a float32 matrix (the floor),
* ``inproc``   ``mlflow.pyfunc.load_model(...).predict(frame)`` (schema check + calibration + frame),
* ``http``     POST /invocations with a ``dataframe_split`` body over one keep-alive connection
               (body encoded once up front; the time includes decoding the JSON answer).

Then the concurrency table: for ``signals serve --workers W`` (W in ``--workers``, default 1 and 4)
and C concurrent clients (``--clients``, default 1 and 4), each client on its own keep-alive
connection sending 1-row requests, the p50 / p99 latency per request; the baseline is one client
against one worker, measured in the same run.

All three run with ``OMP_WAIT_POLICY=PASSIVE`` (unless set) so a busy machine does not distort
the comparison. Prints a table, then, as its LAST line, one JSON object with the headline figures.
Usage: ``python benchmarks/serving.py [--n-small 300] [--n-large 60] [--workers 1,4] [--clients 1,4]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

N_FEATURES = 55


def _train(n_rows: int = 4_000, rounds: int = 300, seed: int = 0):
    import xgboost as xgb

    from signals.modeling.calibration import ConfidenceCalibrator
    from signals.serving.predictor import SignalPredictor

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n_rows, N_FEATURES)), columns=[f"feat_{i:02d}" for i in range(N_FEATURES)])
    score = x.iloc[:, :5].sum(axis=1) * 0.4 + rng.normal(0, 1, n_rows)
    y = np.where(score > 0.5, 2, np.where(score < -0.5, 0, 1))
    cut = int(n_rows * 0.8)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 6, "eta": 0.05, "subsample": 0.8, "seed": seed,
         "tree_method": "hist", "max_bin": 64},
        xgb.DMatrix(x.iloc[:cut], label=y[:cut]),
        rounds,
    )
    cal = ConfidenceCalibrator("sigmoid").fit(booster.inplace_predict(x.iloc[cut:].to_numpy(np.float32)), y[cut:])
    return SignalPredictor(booster, cal, list(x.columns)), x


def _time(fn: Callable[[], object], n: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1000.0


def http_call_port(port: int, body: bytes) -> Callable[[], object]:
    """One keep-alive connection posting ``body``; the call returns the decoded predictions."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call() -> object:
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data)["predictions"]

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=300, help="timed requests with 1 row")
    parser.add_argument("--n-large", type=int, default=60, help="timed requests with 1,000 rows")
    parser.add_argument("--workers", default="1,4", help="server worker counts for the concurrency table")
    parser.add_argument("--clients", default="1,4", help="concurrent client counts for the concurrency table")
    parser.add_argument("--n-concurrent", type=int, default=150, help="1-row requests per client")
    args = parser.parse_args(argv)

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    # Idle OpenMP threads spin by default and steal cores on a busy machine (seen here: 10x slower
    # fits); PASSIVE for this process and the server (it inherits the environment), before xgboost loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from signals.cli.registry import serve_command
    from signals.core.netutil import free_port, wait_healthy
    from signals.registry.client import ModelRegistry
    from signals.serving.pyfunc import log_signal_model
    from signals.settings.model import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="signals-bench-"))
    proc: subprocess.Popen | None = None
    try:
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        settings = load_settings(mlflow={"tracking_uri": uri}, redis={"enabled": False})
        t0 = time.perf_counter()
        predictor, x = _train()
        client = mlflow.MlflowClient(tracking_uri=uri)
        exp = client.create_experiment("bench", artifact_location=(tmp / "mlruns").as_uri())
        with tracking_utils._use_tracking_uri(uri), mlflow.start_run(experiment_id=exp):
            info = log_signal_model(predictor, reference=x.head(1000))
        reg = ModelRegistry.from_settings(settings, mirror=False)
        reg.register(None, info.model_uri, {})
        reg.promote("1", reason="benchmark")
        print(f"setup (train 300 rounds x 3 classes + log + register): {time.perf_counter() - t0:.1f}s", file=sys.stderr)

        port = free_port()
        cmd, env, _ = serve_command(settings, "127.0.0.1", port)
        proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.perf_counter()
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=90, what="mlflow models serve")
        print(f"server healthy after {time.perf_counter() - t0:.1f}s", file=sys.stderr)

        # The version's path is its artifact location: no tracking-URI lookup needed to load it.
        model = mlflow.pyfunc.load_model(reg.get("1").path)
        booster = predictor.booster

        def http_call(body: bytes, n_rows: int) -> Callable[[], object]:
            # A fresh keep-alive connection per block: uvicorn drops connections idle for 5 s.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

            def call() -> object:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
                out = json.loads(data)["predictions"]
                assert len(out) == n_rows
                return out

            return call

        results: dict[tuple[str, int], np.ndarray] = {}
        for n_rows, n_iter in ((1, args.n_small), (1000, args.n_large)):
            frame = x.iloc[:n_rows].reset_index(drop=True)
            matrix = frame.to_numpy(np.float32)
            body = json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}).encode()
            results[("booster", n_rows)] = _time(lambda: booster.inplace_predict(matrix), n_iter * 2)
            results[("inproc", n_rows)] = _time(lambda: model.predict(frame), n_iter)
            results[("http", n_rows)] = _time(http_call(body, n_rows), n_iter)

        # ---- concurrency: one server per worker count, C clients each on its own connection
        proc_main, proc = proc, None
        os.killpg(proc_main.pid, signal.SIGTERM)
        proc_main.wait(timeout=15)
        one_row = json.dumps({"dataframe_split": {"columns": list(x.columns), "data": x.iloc[:1].to_numpy().tolist()}}).encode()
        conc: dict[tuple[int, int], np.ndarray] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            port = free_port()
            cmd, env, _ = serve_command(settings, "127.0.0.1", port, workers)
            proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120, what=f"serve --workers {workers}")
            for _ in range(3 * workers):  # every worker loads lazily: warm them all
                http_call_port(port, one_row)()
            for clients in [int(c) for c in args.clients.split(",")]:
                times: list[np.ndarray] = [np.empty(0)] * clients

                def client(i: int) -> None:
                    times[i] = _time(http_call_port(port, one_row), args.n_concurrent)

                threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                conc[(workers, clients)] = np.concatenate(times)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
            proc = None

        def p(path: str, n: int, q: float) -> float:
            return float(np.percentile(results[(path, n)], q))

        print(f"{'path':<8} {'rows':>5} {'p50 ms':>9} {'p99 ms':>9} {'p50 / booster':>14}")
        for (path, n) in results:
            ratio = p(path, n, 50) / p("booster", n, 50)
            print(f"{path:<8} {n:>5} {p(path, n, 50):>9.3f} {p(path, n, 99):>9.3f} {ratio:>13.1f}x")
        base = float(np.percentile(conc[min(conc)], 50)) if conc else float("nan")
        print(f"\n{'workers':>7} {'clients':>7} {'p50 ms':>9} {'p99 ms':>9} {'p50 / (1 worker, 1 client)':>28}")
        for (w, c), t in sorted(conc.items()):
            print(f"{w:>7} {c:>7} {np.percentile(t, 50):>9.3f} {np.percentile(t, 99):>9.3f} {np.percentile(t, 50) / base:>27.2f}x")
        headline = {
            "http_p50_ms_1row": round(p("http", 1, 50), 3),
            "http_p99_ms_1row": round(p("http", 1, 99), 3),
            "http_p50_ms_1000rows": round(p("http", 1000, 50), 3),
            "http_p99_ms_1000rows": round(p("http", 1000, 99), 3),
            "inproc_p50_ms_1row": round(p("inproc", 1, 50), 3),
            "inproc_p50_ms_1000rows": round(p("inproc", 1000, 50), 3),
            "booster_p50_ms_1row": round(p("booster", 1, 50), 4),
            "booster_p50_ms_1000rows": round(p("booster", 1000, 50), 4),
            "inproc_over_booster_1row": round(p("inproc", 1, 50) / p("booster", 1, 50), 2),
            "inproc_over_booster_1000rows": round(p("inproc", 1000, 50) / p("booster", 1000, 50), 2),
            "http_over_booster_1row": round(p("http", 1, 50) / p("booster", 1, 50), 2),
            "http_over_booster_1000rows": round(p("http", 1000, 50) / p("booster", 1000, 50), 2),
            "n_features": N_FEATURES,
            **{f"http_p50_ms_workers{w}_clients{c}": round(float(np.percentile(t, 50)), 3) for (w, c), t in conc.items()},
        }
        print(json.dumps(headline))
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
