"""``run_monitor`` end to end: real champion, predictions log, MLflow run, Redis stream,
webhook alerts with dedup, the retrain trigger, and the entry point's parameter checks."""

from __future__ import annotations

from pathlib import Path

from datetime import timedelta

import pandas as pd
import pytest

from tests.monitoring.support import shared_env
from tests.monitoring.test_alerts import Recorder

pytestmark = pytest.mark.integration


@pytest.fixture
def env(monkeypatch):
    e = shared_env()
    monkeypatch.chdir(e.workdir)
    return e


def test_monitor_check_logs_alerts_streams_and_triggers_retrain(env, tmp_path, redis_server_url, redis_prefix):
    import mlflow

    from signals.data import get_provider
    from signals.lifecycle.generate import run_generate
    from signals.lifecycle.monitor import check_step, psi_history, run_monitor
    from signals.monitoring.predictions_log import PredictionsLog

    preds = tmp_path / "predictions.parquet"
    run_generate(env.settings, as_of="2012-09-28", replay_days=40, predictions_path=preds, publish=False)

    created = env.champion.created_at
    clock = lambda: created + timedelta(days=20)  # noqa: E731 - older than model_staleness_days (14)
    retrains: list = []

    with Recorder() as hook:
        settings = env.with_settings(
            redis={"enabled": True, "url": redis_server_url, "prefix": redis_prefix},
            alerts={"slack_webhook_url": hook.url + "/slack", "backoff_s": 0.0},
            monitoring={"rolling_window": 100},
        )
        res = run_monitor(
            settings, as_of="2012-09-28", retrain_on_drift=True, clock=clock, predictions_path=preds,
            retrain=lambda s, reasons: retrains.append(reasons) or {"reasons": list(reasons), "fake": True},
        )
        # the same problems a minute later: alerts are de-duplicated
        res2 = run_monitor(settings, as_of="2012-10-01", clock=clock, predictions_path=preds)
    report = res.report

    # rolling accuracy, checked by hand from the log and the prices (outcome known 5 days later)
    provider = get_provider(env.settings)
    log = PredictionsLog(preds).read()
    rows = []
    for r in log.itertuples():
        close = provider.bars(r.symbol, end="2012-09-28")["close"]
        i = close.index.get_loc(r.date)
        if i + 5 < len(close):
            fwd = close.iloc[i + 5] / close.iloc[i] - 1
            actual = 2 if fwd > 0.01 else 0 if fwd < -0.01 else 1
            rows.append((r.date, r.symbol, actual == r.predicted_class))
    hand = pd.DataFrame(rows, columns=["date", "symbol", "ok"]).sort_values(["date", "symbol"]).tail(100)
    assert report.accuracy.n == 100 and report.accuracy.accuracy == pytest.approx(hand["ok"].mean())

    assert report.staleness.stale and report.staleness.age_days == pytest.approx(20)
    assert res.retrain_needed and retrains and any(r.startswith("staleness") for r in retrains[0])
    assert res.retrain == {"reasons": retrains[0], "fake": True}
    from signals.features import feature_names

    assert list(report.drift.psi.index) == feature_names()  # every model feature, in order
    assert report.drift.window_end == pd.Timestamp("2012-09-28")
    assert report.drift.n_current == 4 * env.settings.monitoring.window_days

    # MLflow: one run per check, PSI per feature, stepped by the check date, artifacts
    client = mlflow.MlflowClient(tracking_uri=env.settings.mlflow.tracking_uri)
    run = client.get_run(res.run_id)
    assert run.data.tags["signals.check_date"] == "2012-09-28"
    psi_keys = [k for k in run.data.metrics if k.startswith("psi.")]
    assert len(psi_keys) == len(report.drift.psi)
    hist = client.get_metric_history(res.run_id, "drifted_features")
    assert hist[0].step == check_step(pd.Timestamp("2012-09-28")) == 15611
    assert hist[0].timestamp == int(pd.Timestamp("2012-09-28").timestamp() * 1000)
    assert run.data.metrics["rolling_accuracy"] == pytest.approx(report.accuracy.accuracy)
    assert run.data.metrics["stale"] == 1.0
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"drift_report.html", "psi_heatmap.png", "psi_bars.png", "psi.csv", "summary.json",
            "resolved_predictions.parquet"} <= arts
    page = Path(mlflow.artifacts.download_artifacts(run_id=res.run_id, artifact_path="drift_report.html",
                                                    tracking_uri=env.settings.mlflow.tracking_uri)).read_text()
    verdict_at = page.find("signals verdict for")
    body = page.lower().find("<body")
    assert 0 <= body < verdict_at < body + 300 and "Evidently's own view" in page  # first thing on the page
    exp = client.get_experiment_by_name(env.settings.mlflow.monitoring_experiment)
    heat = psi_history(client, exp.experiment_id, env.settings.mlflow.model_name)
    assert {pd.Timestamp("2012-09-28"), pd.Timestamp("2012-10-01")} <= set(heat.columns)

    # Redis stream event (bounded stream under the configured prefix)
    import redis

    r = redis.Redis.from_url(redis_server_url, decode_responses=True)
    events = r.xrange(f"{redis_prefix}:drift:events")
    assert len(events) == 2 and res.event_id == events[0][0]
    first = events[0][1]
    assert first["check_date"] == "2012-09-28" and first["stale"] == "1" and first["mlflow_run_id"] == res.run_id

    # Alerts: staleness (and whatever else fired) sent once, then de-duplicated
    kinds = {a["kind"] for a in res.alerts}
    assert "staleness" in kinds and all(a["sent"] for a in res.alerts)
    assert all(a["deduplicated"] for a in res2.alerts if a["kind"] in kinds)
    assert len(hook.requests) == len(res.alerts) + sum(a["sent"] for a in res2.alerts)
    assert all("text" in q["json"] and "blocks" in q["json"] for q in hook.requests)


def test_no_champion_and_bad_parameters_are_clear_errors(env, capsys):
    from signals.lifecycle.monitor import main, run_monitor
    from signals.trading.strategy import NoChampionError

    settings = env.with_settings(mlflow={"model_name": "no-such-model"})
    with pytest.raises(NoChampionError, match="no-such-model"):
        run_monitor(settings)
    with pytest.raises(SystemExit) as exc:
        main(["--as-of", "not-a-date"])
    assert exc.value.code == 2 and "--as-of must be an ISO date" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--retrain-on-drift", "maybe"])
    assert exc.value.code == 1 and "retrain-on-drift must be true or false" in capsys.readouterr().err
