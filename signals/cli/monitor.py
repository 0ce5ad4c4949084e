"""``signals monitor`` and ``signals retrain``: drift / accuracy / staleness checks and retraining."""

from __future__ import annotations

import click

from signals.cli.common import Context, echo_json, pass_ctx, print_table, symbols_opt
from signals.lifecycle.monitor import run_monitor, run_retrain


def _print_result(res, as_json: bool) -> None:  # noqa: ANN001 - MonitorResult, imported lazily
    if as_json:
        echo_json(res.as_dict())
        return
    s = res.report.summary()
    acc = s["rolling_accuracy"]
    acc_txt = "n/a (no resolved predictions)" if acc is None else f"{acc:.3f} over {s['n_resolved']} resolved"
    if acc is not None and s["n_resolved"] < s["accuracy_window"]:
        acc_txt += f" (window {s['accuracy_window']} not full: not judged)"
    if res.n_resolved_in_sample:
        acc_txt += f"; {res.n_resolved_in_sample} in-sample for the model"
    click.echo(f"check date:        {res.check_date}   model: {res.model_name} v{res.model_version}")
    verdict = s.get("drift_rule_verdict")
    alarm = s.get("drift_alarm")
    state = "n/a" if alarm is None else ("ALARM" if alarm else "quiet")
    click.echo(f"drift:             {state}: {verdict or 'no in-sample null (champion has no train_end)'}")
    click.echo(
        f"                   {s['drifted_features']} counted feature(s) with PSI > major, {s['minor_drift_features']} "
        f"minor (max PSI {s['max_psi']:.3f}; {s['n_current']} current rows); the verdict uses each feature's "
        f"in-sample PSI distribution ({s['baseline_windows']} windows), not the fixed levels"
    )
    if s.get("not_comparable_features"):
        click.echo(f"                   not comparable (absent from the reference): {', '.join(s['not_comparable_features'])}")
    if s["excluded_features"]:
        click.echo(f"                   not counted (calendar): {', '.join(s['excluded_features'])}")
    perf = res.report.accuracy.performance
    if perf is not None and perf.accuracy is not None:
        basis = "vs the champion's OOS record" if res.report.accuracy.judged_by_record else (
            f"vs the fixed threshold {res.report.accuracy.threshold:.2f} (no OOS record)")
        acc_txt = f"{perf.describe()}; judged {basis}"
        if res.n_resolved_in_sample:
            acc_txt += f"; {res.n_resolved_in_sample} in-sample for the model"
    click.echo(f"rolling accuracy:  {acc_txt}")
    data_age = s.get("data_age_days")
    click.echo(
        f"data age:          {'unknown (no train_end)' if data_age is None else f'{data_age:.0f} days'} from the "
        f"training data's end to the as-of date; wall clock {s['model_age_days']:.1f} days since registration; "
        f"judged by {s['staleness_basis']} time{'  STALE' if s['stale'] else ''}"
    )
    click.echo(f"retrain needed:    {'yes' if s['retrain_needed'] else 'no'}")
    for r in s["reasons"]:
        click.echo(f"  - {r}")
    top = res.report.drift.top(10)
    if len(top):
        click.echo("")
        cols = [c for c in ("feature", "psi", "in_sample_percentile", "z", "p_value", "level") if c in top.columns]
        print_table(top.round(4).to_dict("records"), cols)
    click.echo("")
    for a in res.alerts:
        click.echo(f"alert {a['kind']}: {a.get('state', 'sent' if a['sent'] else 'FAILED')}")
    click.echo(f"MLflow run: {res.run_id}   Redis event: {res.event_id or 'not written (mirror off or down)'}")
    if res.retrain:
        click.echo(f"retrain: {res.retrain}")


@click.command("monitor")
@click.option("--as-of", "as_of", default=None, help="Check date (ISO; default: the last date in the data).")
@symbols_opt()
@click.option("--retrain-on-drift", is_flag=True, help="Run tune + train + gated promote when a retrain is needed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_ctx
def monitor(ctx: Context, as_of: str | None, symbols: list[str] | None, retrain_on_drift: bool, as_json: bool) -> None:
    """Check the champion for feature drift (PSI), falling accuracy and staleness; log, alert."""

    res = run_monitor(ctx.settings, as_of=as_of, retrain_on_drift=retrain_on_drift, symbols=symbols)
    _print_result(res, as_json)


@click.command("retrain")
@click.option("--if-needed", is_flag=True, help="Run the monitor check first; retrain only if it says so.")
@click.option("--as-of", "as_of", default=None, help="Check date for --if-needed (default: the last date in the data).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_ctx
def retrain(ctx: Context, if_needed: bool, as_of: str | None, as_json: bool) -> None:
    """Retrain: tune + train + gated promote (with --if-needed: only when drift, accuracy or age say so)."""

    if if_needed:
        res = run_monitor(ctx.settings, as_of=as_of, retrain_on_drift=True)
        _print_result(res, as_json)
        if not res.retrain_needed and not as_json:
            click.echo("no retrain needed")
        return
    out = run_retrain(ctx.settings, ["requested (signals retrain)"])
    if as_json:
        echo_json(out)
    else:
        for k, v in out.items():
            click.echo(f"{k}: {v}")
