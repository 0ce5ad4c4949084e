"""``monitor`` step: drift, rolling accuracy and staleness of the champion; events, alerts, retrain.

One check = one MLflow run in ``mlflow.monitoring_experiment`` (tag ``signals.step=monitor``):

* metrics ``drift_alarm`` and ``drift_p_value`` (the calibrated rule,
  :func:`signals.monitoring.null.drift_decision`), ``data_age_days``, ``rolling_log_loss``,
  ``expected_accuracy_cbpe``, ``oos_accuracy_percentile``, ``oos_log_loss_percentile``,
  ``psi.<feature>``, ``drifted_features`` (PSI > major; calendar features excluded),
  ``drifted_features_unusual`` (also above the feature's in-sample 90th percentile),
  ``minor_drift_features``,
  ``max_psi``, ``rolling_accuracy``, ``n_resolved``, ``n_resolved_in_sample``,
  ``model_age_days``, ``stale``, ``retrain_needed`` -- each logged with
  ``step = days since 1970-01-01 of the check date`` and the check date as its timestamp, so
  MLflow's charts put checks on a date axis;
* artifacts ``drift_report.html`` (Evidently's own view over the quantile-bin categories, opened
  by the project's verdict), ``psi.csv``, ``psi_bars.png`` (this check, sorted, with in-sample
  percentiles), ``psi_heatmap.png`` (features x the check dates of this and earlier runs; calendar
  and not-comparable features left out),
  ``summary.json`` and ``resolved_predictions.parquet``.

Then a drift event is appended to the Redis stream ``{redis.prefix}:drift:events`` (bounded,
``redis.stream_maxlen``) through :class:`signals.adapters.mirror.Mirror`, one alert per problem goes
through :class:`signals.monitoring.alerts.AlertManager` (de-duplicated), and with ``retrain_on_drift``
a needed retrain runs tune -> train -> gated promote.

The current window is the last ``monitoring.window_days`` trading days up to the check date
(``as_of``, default the last date in the data) of every symbol; outcomes of logged
predictions are resolved from prices up to the check date only.

``python -m entrypoints.monitor --as-of 2013-06-28 --retrain-on-drift false``
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from signals.adapters.mirror import Mirror
from signals.adapters.tracking import configure_mlflow, git_info, quiet_mlflow, run_identity_tags, unique_run_name
from signals.core.errors import SignalsError
from signals.data import get_provider
from signals.features import FeatureStore
from signals.lifecycle import promote as promote_step
from signals.lifecycle import register as register_step
from signals.lifecycle import train as train_step
from signals.lifecycle import tune as tune_step
from signals.lifecycle.params import jsonable, opt_date, opt_str, opt_symbols, parse_bool, run_main
from signals.monitoring.alerts import AlertManager
from signals.monitoring.monitor import (
    ModelMonitor,
    build_alerts,
    evidently_summary_html,
    psi_bars,
    psi_heatmap,
    utc_now,
    with_summary,
)
from signals.monitoring.predictions_log import DEFAULT_PATH, PredictionsLog, resolve_outcomes
from signals.settings.model import load_settings

if TYPE_CHECKING:  # pragma: no cover
    from signals.data.base import DataProvider
    from signals.monitoring.alerts import AlertManager
    from signals.monitoring.monitor import MonitorReport
    from signals.settings.model import Settings

log = logging.getLogger("signals.entrypoints.monitor")

STEP_MONITOR = "monitor"
TAG_CHECK_DATE = "signals.check_date"
TAG_MODEL_VERSION = "signals.model_version"
TAG_MODEL_NAME = "signals.model_name"
HEATMAP_MAX_CHECKS = 60
EPOCH = pd.Timestamp("1970-01-01")


class RetrainError(SignalsError):
    """A retrain step failed (its message names the step)."""


@dataclass
class MonitorResult:
    check_date: str
    model_name: str
    model_version: str
    report: "MonitorReport"
    run_id: str | None = None
    event_id: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    retrain: dict[str, Any] | None = None
    n_resolved_in_sample: int = 0

    @property
    def retrain_needed(self) -> bool:
        return self.report.decision.needed

    def as_dict(self) -> dict[str, Any]:
        return {
            "check_date": self.check_date,
            "model_name": self.model_name,
            "model_version": self.model_version,
            **self.report.summary(),
            "n_resolved_in_sample": self.n_resolved_in_sample,
            "mlflow_run_id": self.run_id,
            "redis_event_id": self.event_id,
            "alerts": self.alerts,
            "retrain": self.retrain,
        }


def check_step(check_date: pd.Timestamp) -> int:
    """Metric step of a check: whole days since the epoch."""
    return int((pd.Timestamp(check_date).normalize() - EPOCH).days)


def metric_key(feature: str) -> str:
    """``psi.<feature>`` with characters MLflow rejects replaced by ``_``."""
    return "psi." + re.sub(r"[^A-Za-z0-9_\-. /:]", "_", str(feature))


# --------------------------------------------------------------------------- inputs
def feature_history(
    settings: "Settings", provider: "DataProvider", symbols: Sequence[str], as_of: pd.Timestamp, feature_store: Any = None
) -> pd.DataFrame:
    """Every feature row up to ``as_of`` (the FeatureStore computes point in time and caches)."""
    if feature_store is None:

        feature_store = FeatureStore.from_settings(settings)
    feats = feature_store.get_features(list(symbols), None, as_of, provider)
    dates = pd.DatetimeIndex(feats.index.get_level_values("date"))
    feats = feats[dates <= as_of]
    if feats.empty:
        raise SignalsError(f"no features up to {as_of.date()} for {list(symbols)}")
    return feats


def current_window(history: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Rows of the last ``window_days`` trading dates of ``history``."""
    dates = pd.DatetimeIndex(history.index.get_level_values("date"))
    keep = dates.unique().sort_values()[-window_days:]
    return history[dates.isin(keep)]


def training_end(champion: Any, key: str = "train_end") -> pd.Timestamp | None:
    """The last (``train_end``) or first (``train_start``) date of the champion's training data, if known."""
    window = getattr(champion, "data_window", None) or {}
    value = window.get(key)
    try:
        return pd.Timestamp(value) if value else None
    except (ValueError, TypeError):
        return None


def resolved_predictions(
    settings: "Settings",
    provider: "DataProvider",
    symbols: Sequence[str],
    as_of: pd.Timestamp,
    model_version: str,
    predictions_path: str | Path | None = None,
) -> pd.DataFrame:
    """The champion's logged predictions whose outcome is known at ``as_of``."""

    preds = PredictionsLog(predictions_path or DEFAULT_PATH).read(model_version=model_version, end=as_of)
    preds = preds[preds["symbol"].isin(list(symbols))]
    if preds.empty:
        return resolve_outcomes(preds, {}, horizon=1, up_threshold=0.01, down_threshold=-0.01, as_of=as_of)
    closes = {s: provider.bars(s, end=as_of)["close"] for s in preds["symbol"].unique()}
    ml = settings.ml
    return resolve_outcomes(
        preds, closes, horizon=ml.prediction_horizon, up_threshold=ml.up_threshold,
        down_threshold=ml.down_threshold, as_of=as_of,
    )


def champion_oos_record(champion: Any) -> pd.DataFrame | None:
    """The walk-forward OOS predictions behind the champion: its train run's ``tune_run_id`` ->
    that tune run's ``oos_predictions.parquet`` (else the train run's own
    ``calibration_oos_predictions.parquet``). None when neither can be read."""
    import mlflow

    run_id = getattr(champion, "run_id", None)
    if not run_id:
        return None
    try:
        client = mlflow.MlflowClient()
        tune_id = client.get_run(run_id).data.params.get("tune_run_id") or ""
        sources = ([(tune_id, tune_step.OOS_PREDICTIONS_FILE)] if tune_id else []) + [
            (run_id, "calibration_oos_predictions.parquet")]
        for rid, name in sources:
            try:
                return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path=name))
            except Exception:  # noqa: BLE001 - try the next source
                continue
    except Exception as exc:  # noqa: BLE001 - no record: performance falls back to the fixed threshold
        log.info("no OOS record for the champion: %s", exc)
    return None


def last_data_date(provider: "DataProvider", symbols: Sequence[str]) -> pd.Timestamp:
    return max(pd.Timestamp(provider.bars(s).index.max()) for s in symbols)


# --------------------------------------------------------------------------- MLflow
def psi_history(client: Any, experiment_id: str, model_name: str, limit: int = HEATMAP_MAX_CHECKS) -> pd.DataFrame:
    """PSI of earlier checks of this model name: features x check dates (latest run per date)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`signals.step` = '{STEP_MONITOR}' and tags.`{TAG_MODEL_NAME}` = '{model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=limit * 3,
    )
    cols: dict[pd.Timestamp, dict[str, float]] = {}
    for run in runs:
        day = run.data.tags.get(TAG_CHECK_DATE)
        if not day:
            continue
        ts = pd.Timestamp(day)
        if ts in cols:
            continue  # a newer run for the same date already counted
        cols[ts] = {k[4:]: v for k, v in run.data.metrics.items() if k.startswith("psi.")}
        if len(cols) >= limit:
            break
    if not cols:
        return pd.DataFrame()
    return pd.DataFrame(cols).sort_index(axis=1)


def psi_matrix(history: pd.DataFrame, psi: pd.Series, day: pd.Timestamp) -> pd.DataFrame:
    """Earlier checks plus this one (replacing an earlier run of the same date); this model's
    features first, in their order, then features only earlier checks had."""
    current = psi.rename(day).to_frame()
    parts = [history.drop(columns=[day], errors="ignore")] if not history.empty else []
    heat = pd.concat([*parts, current], axis=1)
    order = list(psi.index) + [f for f in heat.index if f not in psi.index]
    return heat.loc[order, sorted(heat.columns)]


def log_check(
    settings: "Settings",
    result: MonitorResult,
    resolved: pd.DataFrame,
    symbols: Sequence[str],
    engine: str,
) -> str:
    """Open one run in the monitoring experiment and log metrics + artifacts; returns its id."""
    import mlflow
    from mlflow.entities import Metric, Param


    exp_id = configure_mlflow(settings, settings.mlflow.monitoring_experiment)
    client = mlflow.MlflowClient()
    report = result.report
    day = pd.Timestamp(result.check_date)
    step, ts = check_step(day), int((day - EPOCH).total_seconds() * 1000)
    history = psi_history(client, exp_id, result.model_name)
    g = git_info()
    run = client.create_run(
        exp_id,
        run_name=unique_run_name(f"monitor-{result.check_date}-v{result.model_version}"),
        tags={
            **run_identity_tags(),  # source and user, as a fluent run would carry
            "signals.step": STEP_MONITOR,
            TAG_CHECK_DATE: result.check_date,
            TAG_MODEL_NAME: result.model_name,
            TAG_MODEL_VERSION: result.model_version,
            "signals.git_commit": g["commit"],
            "signals.retrain_needed": str(report.decision.needed).lower(),
        },
    )
    run_id = run.info.run_id
    try:
        m = settings.monitoring
        params = {
            "check_date": result.check_date,
            "model_version": result.model_version,
            "engine": engine,
            "binning": f"reference quantiles ({m.psi_bins} bins) -> categorical PSI; NaN/inf own bin",
            "excluded_features": ",".join(report.drift.excluded),
            "baseline_windows": report.drift.n_baseline_windows,
            "window_days": m.window_days,
            "psi_bins": m.psi_bins,
            "psi_minor": m.psi_minor,
            "psi_major": m.psi_major,
            "drifted_features_for_retrain": m.drifted_features_for_retrain,
            "rolling_window": m.rolling_window,
            "accuracy_threshold": m.accuracy_threshold,
            "model_staleness_days": settings.ml.model_staleness_days,
            "symbols": ",".join(symbols),
            "window_start": str(report.drift.window_start.date()) if report.drift.window_start is not None else "",
            "window_end": str(report.drift.window_end.date()) if report.drift.window_end is not None else "",
            "n_reference": report.drift.n_reference,
            "n_current": report.drift.n_current,
        }
        values: dict[str, float] = {metric_key(f): float(v) for f, v in report.drift.psi.items()}
        values.update(
            drifted_features=report.drift.n_major,
            minor_drift_features=report.drift.n_minor,
            drifted_features_unusual=(
                report.drift.n_major_unusual if report.drift.n_major_unusual is not None else float("nan")
            ),
            max_psi=report.drift.max_psi,
            n_resolved=report.accuracy.n,
            n_resolved_in_sample=result.n_resolved_in_sample,
            model_age_days=report.staleness.age_days,
            stale=float(report.staleness.stale),
            retrain_needed=float(report.decision.needed),
            drift_alarm=float(report.drift.alarm) if report.drift.alarm is not None else float("nan"),
            drift_p_value=(report.drift.decision.p_value if report.drift.decision is not None
                           and report.drift.decision.p_value is not None else float("nan")),
            data_age_days=(report.staleness.data_age_days if report.staleness.data_age_days is not None
                           else float("nan")),
        )
        perf = report.accuracy.performance
        if perf is not None:
            for key, value in (("rolling_log_loss", perf.log_loss), ("expected_accuracy_cbpe", perf.expected_accuracy),
                               ("oos_accuracy_percentile", perf.accuracy_percentile),
                               ("oos_log_loss_percentile", perf.log_loss_percentile)):
                if value is not None:
                    values[key] = value
        if report.accuracy.accuracy is not None:
            values["rolling_accuracy"] = report.accuracy.accuracy
        metrics = [Metric(k, float(v), ts, step) for k, v in values.items() if np.isfinite(v)]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

        with tempfile.TemporaryDirectory(prefix="signals-monitor-") as tmp:
            d = Path(tmp)
            if report.drift.snapshot is not None:
                report.drift.snapshot.save_html(str(d / "drift_report.html"))
                page = (d / "drift_report.html").read_text(encoding="utf-8")
                summary = evidently_summary_html(report, f"{result.model_name} v{result.model_version}", result.check_date)
                (d / "drift_report.html").write_text(with_summary(page, summary), encoding="utf-8")
            report.drift.table().to_csv(d / "psi.csv", index=False)
            hidden = {metric_key(f)[4:] for f in (*report.drift.excluded, *report.drift.not_comparable)}
            heat = psi_matrix(history, report.drift.psi.rename(index=lambda f: metric_key(f)[4:]), day)
            heat = heat.loc[[f for f in heat.index if f not in hidden]]  # calendar / not comparable: not plotted
            psi_bars(report.drift, d / "psi_bars.png",
                     title=f"PSI by feature, {result.model_name} v{result.model_version}, {result.check_date}")
            psi_heatmap(heat, d / "psi_heatmap.png", minor=m.psi_minor, major=m.psi_major,
                        title=f"PSI vs training reference, {result.model_name} v{result.model_version}")
            (d / "summary.json").write_text(json.dumps(result.as_dict(), indent=2, default=str))
            if not resolved.empty:
                resolved.to_parquet(d / "resolved_predictions.parquet", index=False)
            client.log_artifacts(run_id, str(d))
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


# --------------------------------------------------------------------------- retrain
def run_retrain(settings: "Settings", reasons: Sequence[str] = ()) -> dict[str, Any]:
    """tune -> train (with the tuned params) -> register (challenger) -> gated promote.

    Returns what each step did; a failing step raises :class:`RetrainError` naming it (the
    earlier steps' MLflow runs stay, nothing is promoted).
    """

    log.warning("retraining: %s", "; ".join(reasons) or "requested")
    out: dict[str, Any] = {"reasons": list(reasons)}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SignalsError as exc:
            raise RetrainError(f"retrain failed in {name}: {exc}") from exc

    tune = step("tune", lambda: tune_step.run_tune(settings))
    out["tune_run_id"] = tune.run_id
    train = step("train", lambda: train_step.run_train(settings, tune_run_id=tune.run_id))
    out["train_run_id"] = train.run_id
    version = step("register", lambda: register_step.register_training_run(settings, train))
    out["registered_version"] = version.version_id
    promote = step("promote", lambda: promote_step.run_promote(settings, auto=True))
    out["promoted"] = bool(promote.promoted)
    out["decision"] = promote.decision
    out["promotion"] = promote.message
    return out


# --------------------------------------------------------------------------- the check
def run_monitor(
    settings: "Settings",
    *,
    as_of: object = None,
    retrain_on_drift: bool = False,
    symbols: Sequence[str] | None = None,
    clock: Callable[[], datetime] | None = None,
    provider: "DataProvider | None" = None,
    feature_store: Any = None,
    predictions_path: str | Path | None = None,
    alert_manager: "AlertManager | None" = None,
    engine: str = "evidently",
    retrain: Callable[..., dict[str, Any]] | None = None,
) -> MonitorResult:
    """One monitoring check of the champion (see the module docstring)."""
    from signals.serving.pyfunc import get_champion, load_reference

    quiet_mlflow()
    configure_mlflow(settings, settings.mlflow.monitoring_experiment)
    champion = get_champion(settings)
    version = str(champion.version_id)
    name = settings.mlflow.model_name
    provider = provider or get_provider(settings)
    syms = provider.resolve_symbols(list(symbols or []) or settings.data.symbols or None)
    last = last_data_date(provider, syms)
    if as_of is None:
        day = last
    else:
        try:
            day = pd.Timestamp(as_of).normalize()
        except (ValueError, TypeError):
            raise SignalsError(f"as-of date must be an ISO date (YYYY-MM-DD), got {as_of!r}") from None
        if day > last:
            log.warning("as-of date %s is after the last bar (%s): checking as of the last bar", day.date(), last.date())
            day = last

    reference = load_reference(champion.path)
    history = feature_history(settings, provider, syms, day, feature_store)
    current = current_window(history, settings.monitoring.window_days)
    resolved = resolved_predictions(settings, provider, syms, day, version, predictions_path)
    monitor = ModelMonitor.from_settings(settings, reference, clock=clock or utc_now)
    train_end = training_end(champion)
    if train_end is None:
        log.info("champion has no train_end tag: no in-sample PSI baseline")
    report = monitor.evaluate(
        current, resolved, champion.created_at, engine=engine,
        history=history if train_end is not None else None, baseline_end=train_end,
        baseline_start=training_end(champion, "train_start"), oos=champion_oos_record(champion),
    )
    in_sample = int(resolved["in_sample"].sum()) if "in_sample" in resolved.columns and not resolved.empty else 0
    if in_sample:
        log.warning(
            "%d of the %d resolved predictions are dated inside the champion's training data: rolling accuracy "
            "on them is optimistic", in_sample, len(resolved),
        )
    result = MonitorResult(
        check_date=day.date().isoformat(), model_name=name, model_version=version, report=report,
        n_resolved_in_sample=in_sample,
    )
    result.run_id = log_check(settings, result, resolved, syms, engine)

    # Redis stream event (no-op with a warning when Redis is down or disabled)

    mirror = Mirror.from_settings(settings)
    s = report.summary()
    event = {
        "check_date": result.check_date,
        "model_name": name,
        "model_version": version,
        "drifted_features": s["drifted_features"],
        "drifted_features_unusual": s["drifted_features_unusual"] if s["drifted_features_unusual"] is not None else "",
        "minor_drift_features": s["minor_drift_features"],
        "max_psi": round(s["max_psi"], 6),
        "top_drifted": s["top_drifted"],
        "rolling_accuracy": s["rolling_accuracy"] if s["rolling_accuracy"] is not None else "",
        "n_resolved": s["n_resolved"],
        "model_age_days": s["model_age_days"],
        "stale": s["stale"],
        "retrain_needed": s["retrain_needed"],
        "reasons": s["reasons"],
        "mlflow_run_id": result.run_id,
    }
    result.event_id = mirror.append_drift_event(event)

    # Alerts
    if alert_manager is None:

        client = None
        try:
            client = mirror.client()
        except Exception as exc:  # noqa: BLE001 - no Redis: file-based dedup state
            log.debug("no Redis for alert dedup state: %s", exc)
        alert_manager = AlertManager.from_settings(settings, redis_client=client)
    for alert in build_alerts(report, f"{name}/v{version}", day):
        res = alert_manager.send(alert)
        result.alerts.append(
            {"kind": alert.kind, "sent": res.sent, "deduplicated": res.deduplicated, "channels": res.delivered,
             "no_channel": res.no_channel, "state": res.state}
        )

    if retrain_on_drift and report.decision.needed:
        result.retrain = (retrain or run_retrain)(settings, report.decision.reasons)
        try:
            import mlflow

            mlflow.MlflowClient().set_tag(result.run_id, "signals.retrain", json.dumps(result.retrain, default=str)[:5000])
        except Exception:  # noqa: BLE001 - the retrain happened; the tag is a convenience
            pass
    elif report.decision.needed:
        log.warning("retrain needed (%s); run with --retrain-on-drift to retrain", "; ".join(report.decision.reasons))
    return result


def main(argv: list[str] | None = None) -> None:


    parser = argparse.ArgumentParser(prog="python -m entrypoints.monitor", description="One monitoring check of the champion.")
    parser.add_argument("--config", type=opt_str, default=None, help="settings file (default config/settings.yaml)")
    parser.add_argument("--symbols", type=opt_symbols, default=None, help="comma-separated symbols (default: all)")
    parser.add_argument("--as-of", dest="as_of", type=opt_date("as-of"), default=None,
                        help="check date (default: the last date in the data)")
    parser.add_argument("--retrain-on-drift", dest="retrain_on_drift", default="false",
                        help="true: run tune + train + gated promote when a retrain is needed")
    args = parser.parse_args(argv)

    def body() -> int:

        retrain = parse_bool(args.retrain_on_drift, "retrain-on-drift")
        settings = load_settings(args.config)
        res = run_monitor(settings, as_of=args.as_of, retrain_on_drift=retrain, symbols=args.symbols)
        print(json.dumps(jsonable(res.as_dict()), indent=2, default=str))
        return 0

    run_main(body)
