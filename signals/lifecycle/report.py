"""The report a newcomer reads at the end of ``signals run`` (``make run``, ``mlflow run . -e main``):
plain text, printed by the CLI and by the entry point alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signals.core.redaction import redact_url
from signals.core.tables import format_table
from signals.lifecycle.tune import oos_summary_rows

if TYPE_CHECKING:
    from signals.lifecycle.run import PipelineResult
    from signals.settings.model import Settings


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _metric_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows for the table: numbers rounded the way a reader compares them."""
    def num(v: Any) -> Any:
        if v is None:
            return ""
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return "n/a" if f != f else f"{f:.4f}"

    return [{"metric": r["metric"].replace("_", " "), "model": num(r["model"]), "raw booster": num(r.get("raw_model")),
             "baseline": num(r.get("baseline")), "baseline is": r.get("baseline_kind", "")} for r in rows]


def summary_lines(res: "PipelineResult", settings: "Settings") -> list[str]:
    """The short report a newcomer reads at the end of ``make run``, one string per line."""
    out: list[str] = []
    d = res.data
    out.append("")
    out.append("=" * 78)
    out.append(
        f"signals pipeline finished in {res.seconds:.0f}s  (MLflow run {res.run_id[:8]}, "
        f"{sum(s.reused for s in res.steps)} step(s) reused)"
    )
    out.append(
        f"data: {d['provider']} - {', '.join(d['symbols'][:8])}{' ...' if len(d['symbols']) > 8 else ''}, "
        f"{d['first']} .. {d['last']}, {d['rows']} rows x {d['n_features']} features"
    )
    if d["synthetic_tables"]:
        out.append(f"      synthetic inputs: {', '.join(d['synthetic_tables'])} (no offline public source)")
    out.append("")

    tm = res.tune_metrics
    out.append(f"walk-forward out-of-sample ({res.step('tune').summary.get('windows', '?')} windows, purged; "
               "calibrators forward-chained):")
    out.extend(format_table(_metric_rows(oos_summary_rows(tm)), ["metric", "model", "raw booster", "baseline", "baseline is"]))
    cal = res.step("train").summary.get("calibration") or res.step("tune").summary.get("calibration")
    if cal:
        out.append(f"calibration: {cal}")
    hm = res.train_metrics
    out.append("")
    out.append(f"hold-out ({settings.walk_forward.test_months} months, evaluation fit, "
               f"{_fmt(hm.get('holdout_n_rows'), 0)} rows):")
    out.extend(format_table(_metric_rows(oos_summary_rows(hm, prefix="holdout_", baseline_prefix="holdout_")),
                            ["metric", "model", "raw booster", "baseline", "baseline is"]))
    out.append("")
    out.append(f"promotion gate: {res.promote.get('decision')} - {res.promote.get('message')}")
    if res.champion:
        out.append(f"champion: {settings.mlflow.model_name} version {res.champion}")
    else:
        out.append(f"champion: none - no version of {settings.mlflow.model_name} has beaten its class prior yet")
    out.append(f"monitor: {res.monitor.get('headline', '')}")
    out.append("")
    sigs = res.signals
    if not res.champion:
        out.append("signals: none (no champion to generate them)")
    elif sigs:
        out.append(f"signals ({len(sigs)}):")
        out.extend(format_table(
            [
                {"symbol": s.symbol, "date": str(getattr(s.timestamp, "date", lambda: s.timestamp)()),
                 "signal": getattr(s.direction, "value", str(s.direction)), "confidence": float(s.strength)}
                for s in sigs
            ],
            ["symbol", "date", "signal", "confidence"],
        ))
    else:
        out.append(
            f"signals: none today (no calibrated confidence above {settings.ml.confidence_threshold})"
        )
    out.append("")

    uri = redact_url(settings.mlflow.tracking_uri)
    out.append("where to look:")
    out.append(f"  mlflow ui --backend-store-uri {uri}     (or: make ui) -> http://127.0.0.1:5000")
    out.append(f"  signals registry list   |   signals generate   |   signals serve   |   signals monitor")
    out.append("=" * 78)
    return out
