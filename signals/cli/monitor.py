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
    click.echo(
        f"drift:             {s['drifted_features']} major, {s['minor_drift_features']} minor "
        f"(max PSI {s['max_psi']:.3f}; {s['n_current']} current rows vs {s['n_reference']} reference)"
    )
    if s["drifted_features_unusual"] is not None:
        click.echo(
            f"                   {s['drifted_features_unusual']} of the major ones exceed their in-sample 90th "
            f"percentile ({s['baseline_windows']} windows of the same length inside the training period)"
        )
    if s["excluded_features"]:
        click.echo(f"                   not counted (calendar): {', '.join(s['excluded_features'])}")
    click.echo(f"rolling accuracy:  {acc_txt}")
    click.echo(f"model age:         {s['model_age_days']:.1f} days{'  STALE' if s['stale'] else ''}")
    click.echo(f"retrain needed:    {'yes' if s['retrain_needed'] else 'no'}")
    for r in s["reasons"]:
        click.echo(f"  - {r}")
    top = res.report.drift.table().sort_values("psi", ascending=False).head(10)
    if len(top):
        click.echo("")
        cols = ["feature", "psi", "level", "in_sample_p90", "counted"] if "in_sample_p90" in top.columns else ["feature", "psi", "level", "counted"]
        print_table(top.to_dict("records"), cols)
    click.echo("")
    for a in res.alerts:
        state = "deduplicated" if a["deduplicated"] else ("sent" if a["sent"] else "logged only" if not a["channels"] else "FAILED")
        click.echo(f"alert {a['kind']}: {state}")
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
