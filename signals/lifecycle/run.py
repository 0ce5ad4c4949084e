"""``main``: the whole lifecycle as one MLflow run with a child run per step.

features -> tune -> train -> register -> gated promote -> monitor -> generate

Steps whose results are deterministic (features, tune, train) are *reused* when a finished run of
the same step exists with the same parameters (compared as strings, the way MLflow stores them),
the same data digest (the feature matrix's full digest) and the same code version (a hash of the
``signals`` and ``entrypoints`` sources), so re-running the pipeline only redoes what changed.
Promote, monitor and generate always run: they depend on the registry's state and on the clock.
Steps pass results on by reference: the features artifact URI, the tune run id, the model URI
and the registered version are logged as parameters of the parent run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from signals.adapters import tracking as T
from signals.adapters.tracking import TAG_STEP, log_params_batch, set_tags_batch
from signals.core.versions import code_version
from signals.data import get_provider
from signals.features import FEATURE_VERSION
from signals.lifecycle.features import run_features
from signals.lifecycle.generate import run_generate
from signals.lifecycle.monitor import run_monitor
from signals.lifecycle.params import (
    check_date_order,
    common_parser,
    opt_int,
    opt_str,
    prefer_passive_openmp,
    run_main,
)
from signals.lifecycle.promote import run_promote
from signals.lifecycle.register import run_register
from signals.lifecycle.report import summary_lines
from signals.lifecycle.train import run_train
from signals.lifecycle.tune import run_tune
from signals.lifecycle.wiring import feature_store
from signals.registry.client import ModelRegistry
from signals.settings.model import load_settings

if TYPE_CHECKING:
    from signals.settings.model import Settings

log = logging.getLogger("signals.pipeline")

TAG_CODE_VERSION = "signals.code_version"
TAG_PIPELINE_DIGEST = "signals.pipeline_data_digest"
TAG_REUSED_FROM = "signals.reused_from"
STEP_MAIN = "main"
REUSABLE_STEPS = ("features", "tune", "train")
# Sections of the configuration that change what features/tune/train produce.
_RESULT_SECTIONS = ("data", "features", "ml", "walk_forward", "tuning")


def config_digest(settings: "Settings") -> str:
    dump = settings.model_dump(mode="json")
    relevant = {k: dump[k] for k in _RESULT_SECTIONS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def find_reusable(client: Any, experiment_id: str, step: str, params: dict[str, str], data_digest: str,
                  version: str) -> Any | None:
    """The latest FINISHED run of ``step`` with identical string params, data digest and code version."""

    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_CODE_VERSION}` = '{version}' "
            f"and tags.`{TAG_PIPELINE_DIGEST}` = '{data_digest}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if all(run.data.params.get(f"pipeline.{k}") == v for k, v in params.items()):
            return run
    return None


def mark_reusable(client: Any, run_id: str, params: dict[str, str], data_digest: str, version: str) -> None:

    log_params_batch(client, run_id, params, prefix="pipeline.")
    set_tags_batch(client, run_id, {TAG_CODE_VERSION: version, TAG_PIPELINE_DIGEST: data_digest})


@dataclass
class StepRecord:
    step: str
    run_id: str | None
    reused: bool = False
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    run_id: str
    steps: list[StepRecord]
    champion: str | None
    signals: list[Any]
    tune_metrics: dict[str, float]
    train_metrics: dict[str, float]
    promote: dict[str, Any]
    monitor: dict[str, Any]
    data: dict[str, Any]
    seconds: float

    def step(self, name: str) -> StepRecord:
        return next(s for s in self.steps if s.step == name)


def _as_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def run_pipeline(
    settings: "Settings",
    *,
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    n_trials: int | None = None,
    n_jobs: int | None = None,
    workers: int | None = None,
    reuse: bool = True,
    replay_days: int = 0,
    progress: Callable[[str], None] | None = None,
) -> PipelineResult:
    import mlflow


    say = progress or (lambda msg: log.info("%s", msg))
    t_start = time.perf_counter()
    experiment_id = T.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    provider = get_provider(settings)
    syms = provider.resolve_symbols(symbols or settings.data.symbols or None)
    start = start if start is not None else settings.data.start
    end = end if end is not None else settings.data.end
    version = code_version()
    cfg = config_digest(settings)
    say(f"data: {provider.name} provider, {len(syms)} symbols ({', '.join(syms[:8])}{' ...' if len(syms) > 8 else ''})")
    features = feature_store(settings).get_features(syms, start, end, provider)
    digest = T.frame_digest(features)
    dates = features.index.get_level_values("date")
    data = {
        "provider": provider.name, "symbols": syms, "first": dates.min().date().isoformat(),
        "last": dates.max().date().isoformat(), "rows": len(features), "n_features": features.shape[1],
        "synthetic_tables": sorted(provider.synthetic_tables), "digest": digest,
    }
    del features
    base = {"symbols": _as_str(syms), "start": _as_str(start), "end": _as_str(end), "config_digest": cfg}
    steps: list[StepRecord] = []

    def reusable_step(step: str, params: dict[str, str], run: Callable[[], tuple[str, dict[str, Any]]],
                      from_run: Callable[[Any], dict[str, Any]]) -> StepRecord:
        t0 = time.perf_counter()
        found = find_reusable(client, experiment_id, step, params, digest, version) if reuse else None
        if found is not None:
            say(f"{step}: reusing finished run {found.info.run_id[:8]} (same params, data and code)")
            rec = StepRecord(step, found.info.run_id, True, time.perf_counter() - t0, from_run(found))
        else:
            say(f"{step}: running")
            run_id, summary = run()
            mark_reusable(client, run_id, params, digest, version)
            rec = StepRecord(step, run_id, False, time.perf_counter() - t0, summary)
        mlflow.set_tag(f"signals.{step}_run_id", rec.run_id)
        if rec.reused:
            mlflow.set_tag(f"{TAG_REUSED_FROM}.{step}", rec.run_id)
        steps.append(rec)
        return rec

    parent_tags = {T.TAG_STEP: STEP_MAIN, **T.provenance_tags(str(FEATURE_VERSION)), TAG_CODE_VERSION: version,
                   TAG_PIPELINE_DIGEST: digest, T.TAG_DATA_SYNTHETIC: ", ".join(data["synthetic_tables"]) or "none"}
    with T.start_step_run(run_name=f"main-{data['first']}-{data['last']}", tags=parent_tags) as parent:
        # prefixed: under `mlflow run` the entry point's raw parameters are already on this run
        T.log_params_batch(client, parent.info.run_id, {**base, "n_trials": _as_str(n_trials), "n_jobs": _as_str(n_jobs),
                                                         "reuse": str(reuse), "replay_days": str(replay_days)},
                           prefix="resolved.")
        T.log_resolved_config(client, parent.info.run_id, settings)

        # 1. features
        def do_features() -> tuple[str, dict[str, Any]]:
            r = run_features(settings, symbols=syms, start=start, end=end)
            return r.run_id, {"features_uri": r.features_uri, "rows": r.rows, "n_features": r.n_features,
                              "cache_hits": r.cache_hits, "built": r.built}

        def features_from(run: Any) -> dict[str, Any]:
            m = run.data.metrics
            return {"features_uri": f"{run.info.artifact_uri.rstrip('/')}/features/features.parquet",
                    "rows": int(m.get("rows", 0)), "n_features": int(m.get("n_features", 0))}

        feats = reusable_step("features", dict(base), do_features, features_from)

        # 2. tune
        tune_params = {**base, "n_trials": _as_str(n_trials or settings.tuning.n_trials),
                       "n_jobs": _as_str(n_jobs or settings.tuning.n_jobs),
                       "workers": _as_str(workers or settings.tuning.workers)}

        def do_tune() -> tuple[str, dict[str, Any]]:
            r = run_tune(settings, symbols=syms, start=start, end=end, n_trials=n_trials, n_jobs=n_jobs,
                         workers=workers)
            return r.run_id, {"metrics": r.metrics, "windows": len(r.windows), "seconds": r.seconds}

        def tune_from(run: Any) -> dict[str, Any]:
            n_windows = len(client.search_runs([experiment_id], f"tags.`{T.PARENT_TAG}` = '{run.info.run_id}'",
                                               max_results=1000))
            return {"metrics": dict(run.data.metrics), "windows": n_windows}

        tune = reusable_step("tune", tune_params, do_tune, tune_from)

        # 3. train
        train_params = {**base, "tune_run_id": tune.run_id or ""}

        def do_train() -> tuple[str, dict[str, Any]]:
            r = run_train(settings, symbols=syms, start=start, end=end, tune_run_id=tune.run_id)
            return r.run_id, {"metrics": r.metrics, "model_uri": r.model_uri,
                              "calibration": _calibration_line(r.calibration.get("method"), r.calibration.get("reason"))}

        def train_from(run: Any) -> dict[str, Any]:
            p = run.data.params
            return {"metrics": dict(run.data.metrics), "model_uri": run.data.tags.get("signals.model_uri", ""),
                    "calibration": _calibration_line(p.get("calibration.method"), p.get("calibration.reason"))}

        train = reusable_step("train", train_params, do_train, train_from)
        if train.summary.get("model_uri"):
            client.set_tag(train.run_id, "signals.model_uri", train.summary["model_uri"])

        # 4. register (idempotent: a run already registered returns its version)
        t0 = time.perf_counter()
        mv = run_register(settings, train.run_id)
        say(f"register: model version {mv.version_id} from train run {train.run_id[:8]}")
        steps.append(StepRecord("register", train.run_id, False, time.perf_counter() - t0,
                                {"version": mv.version_id, "model_uri": mv.path}))
        mlflow.set_tag("signals.model_version", mv.version_id)

        # 5. gated promote
        t0 = time.perf_counter()

        active = ModelRegistry.from_settings(settings).get_active()
        if active is not None and str(active.version_id) == str(mv.version_id):
            promote = {"decision": "kept", "message": f"version {mv.version_id} is already the champion",
                       "champion_after": mv.version_id}
            promote_run = None
        else:
            pr = run_promote(settings, auto=True, reason="main pipeline: gated promotion")
            promote, promote_run = pr.as_dict(), pr.mlflow_run_id
        say(f"promote: {promote['decision']} - {promote['message']}")
        steps.append(StepRecord("promote", promote_run, False, time.perf_counter() - t0, promote))

        # 6./7. monitor and generate need a champion; with none (the gate refused a model that does not
        # beat its class prior) they are skipped with the reason, not run on an unpromoted model.
        has_champion = ModelRegistry.from_settings(settings).get_active() is not None
        gen_out: list[Any] = []
        if has_champion:
            t0 = time.perf_counter()
            monitor_summary = _run_logged_step(
                client, experiment_id, "monitor",
                lambda: _monitor_summary(run_monitor(settings, symbols=syms)),
            )
            say(f"monitor: {monitor_summary.get('headline', '')}")
            steps.append(StepRecord("monitor", monitor_summary.pop("_run_id"), False, time.perf_counter() - t0,
                                    monitor_summary))
            T.configure_mlflow(settings)  # the monitor switched the active experiment

            t0 = time.perf_counter()
            gen_summary = _run_logged_step(
                client, experiment_id, "generate",
                lambda: _generate_summary(client, settings, syms, replay_days, gen_out),
            )
            steps.append(StepRecord("generate", gen_summary.pop("_run_id"), False, time.perf_counter() - t0,
                                    gen_summary))
            say(f"generate: {gen_summary.get('n_signals', 0)} signal(s) as of {gen_summary.get('as_of')}")
        else:
            skip = (f"skipped: no champion (version {mv.version_id} stays a challenger; "
                    f"`signals promote --auto --force` to use it anyway)")
            monitor_summary = {"headline": skip, "skipped": True}
            steps.append(StepRecord("monitor", None, False, 0.0, monitor_summary))
            steps.append(StepRecord("generate", None, False, 0.0, {"skipped": True}))
            mlflow.set_tags({"signals.skipped_steps": "monitor,generate", "signals.skip_reason": skip})
            say(f"monitor, generate: {skip}")

        champion = ModelRegistry.from_settings(settings).get_active()
        seconds = time.perf_counter() - t_start
        T.log_metrics_batch(client, parent.info.run_id, {
            "pipeline_seconds": seconds,
            **{f"{s.step}_seconds": s.seconds for s in steps},
            "steps_reused": sum(s.reused for s in steps),
        })
        T.log_params_batch(client, parent.info.run_id, {
            "out.features_uri": feats.summary.get("features_uri", ""), "out.tune_run_id": tune.run_id,
            "out.train_run_id": train.run_id, "out.model_uri": mv.path, "out.model_version": mv.version_id,
        })
        T.log_json(client, parent.info.run_id, [
            {"step": s.step, "run_id": s.run_id, "reused": s.reused, "seconds": round(s.seconds, 2)} for s in steps
        ], "pipeline/steps.json")
        parent_id = parent.info.run_id

    return PipelineResult(
        run_id=parent_id, steps=steps, champion=champion.version_id if champion else None,
        signals=gen_out[0] if gen_out else [], tune_metrics=dict(tune.summary.get("metrics", {})),
        train_metrics=dict(train.summary.get("metrics", {})), promote=promote, monitor=monitor_summary,
        data=data, seconds=seconds,
    )


def _calibration_line(method: str | None, reason: str | None) -> str:
    return f"{method} - {reason}" if method else ""


def _run_logged_step(client: Any, experiment_id: str, step: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` inside a child run of the pipeline named after the step; log its flat summary."""
    import mlflow


    with mlflow.start_run(run_name=step, nested=True, tags={T.TAG_STEP: step}, experiment_id=experiment_id) as run:
        summary = fn()
        T.log_metrics_batch(client, run.info.run_id, {k: v for k, v in summary.items() if isinstance(v, (int, float))
                                                      and not isinstance(v, bool)})
        T.log_params_batch(client, run.info.run_id, {k: v for k, v in summary.items()
                                                     if isinstance(v, (str, bool)) and not k.startswith("_")})
        summary["_run_id"] = run.info.run_id
    return summary


def _monitor_summary(res: Any) -> dict[str, Any]:
    d = res.report.summary()
    acc, n_res = d.get("rolling_accuracy"), d.get("n_resolved", 0)
    parts = [
        f"champion v{res.model_version} as of {res.check_date}",
        f"{d['drifted_features']} feature(s) with major PSI drift"
        + (f", {d['drifted_features_unusual']} unusual for their in-sample history"
           if d.get("drifted_features_unusual") is not None else "")
        + f" (max PSI {d['max_psi']:.2f})",
        f"rolling accuracy {acc:.3f} over {n_res}" if acc is not None else f"rolling accuracy n/a ({n_res} resolved)",
        f"model age {d['model_age_days']:.0f} d" + (" (STALE)" if d["stale"] else ""),
    ]
    if d["retrain_needed"]:
        parts.append("retrain needed: " + "; ".join(d["reasons"]))
    out: dict[str, Any] = {
        "headline": "; ".join(parts), "check_date": res.check_date, "model_version": str(res.model_version),
        "monitoring_run_id": res.run_id or "", "alerts": len(res.alerts), "retrain_needed": bool(d["retrain_needed"]),
    }
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
            out[k] = v
    return out


def _generate_summary(client: Any, settings: "Settings", symbols: list[str], replay_days: int,
                      sink: list[Any]) -> dict[str, Any]:
    import mlflow


    outcome: list[Any] = []
    sig_list = run_generate(settings, symbols=symbols, replay_days=replay_days, outcome=outcome)
    sink.append(sig_list)
    rows = outcome[0].records if outcome else []  # every symbol's signal record (signals/serving/schema.py)
    T.log_json(client, mlflow.active_run().info.run_id, rows, "signals/signals.json")
    as_of = outcome[0].as_of if outcome else None
    return {"n_signals": len(rows), "as_of": str(as_of.date()) if as_of is not None else "",
            "n_predictions": int(len(outcome[0].predictions)) if outcome else 0}


def main(argv: list[str] | None = None) -> None:

    prefer_passive_openmp()
    parser = common_parser("python -m entrypoints.main", "Run the whole lifecycle as one MLflow run.")
    parser.add_argument("--n-trials", "--n_trials", dest="n_trials", type=opt_int("n-trials"), default=None)
    parser.add_argument("--n-jobs", "--n_jobs", dest="n_jobs", type=opt_int("n-jobs"), default=None)
    parser.add_argument("--workers", dest="workers", type=opt_int("workers"), default=None)
    parser.add_argument("--replay-days", "--replay_days", dest="replay_days", type=opt_int("replay-days", 0), default=0)
    parser.add_argument("--reuse", type=opt_str, default="true", help="reuse finished steps (true/false)")
    args = parser.parse_args(argv)
    check_date_order(parser, args.start, args.end)
    reuse = (args.reuse or "true").lower() in ("true", "1", "yes", "y", "on")

    def body() -> int:

        settings = load_settings(args.config)
        res = run_pipeline(settings, symbols=args.symbols, start=args.start, end=args.end, n_trials=args.n_trials,
                           n_jobs=args.n_jobs, workers=args.workers, reuse=reuse, replay_days=args.replay_days or 0, progress=print)
        print("\n".join(summary_lines(res, settings)))
        return 0

    run_main(body)
