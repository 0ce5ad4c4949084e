"""``generate`` step: today's signals from the champion, logged and mirrored.

"Today" is the last date in the data unless ``as_of`` is given (then the last trading date on
or before it). With ``replay_days=N`` the N trading days before it are replayed first, each
one *as of its own date*: every symbol's bars are cut at that date before the strategy sees
them, and the strategy cuts market bars and event tables at the same date. Each prediction
(LONG / SHORT and NONE alike) is appended to the predictions log
(:mod:`signals.monitoring.predictions_log`), so the monitor can resolve them once the horizon has
passed; the as-of date's prediction for every symbol is published to Redis as a signal record
(:mod:`signals.serving.schema`; NONE included, so a consumer never acts on yesterday's signal).

A symbol whose row fails the coverage guard (:mod:`signals.serving.guard`, e.g. a new listing
without 252 bars of history) gets signal NONE with the reason, and a warning names it.

Honesty note: a replayed date inside the champion's training data window (registry tags
``train_end`` / ``holdout_end``) is *in sample* for the model; such rows are flagged
``in_sample`` in the log, counted separately by the monitor, and warned about here.

``python -m entrypoints.generate --as-of 2013-06-28 --replay-days 30``
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from signals.adapters.mirror import Mirror
from signals.core.errors import SignalsError
from signals.data import get_provider
from signals.lifecycle.params import opt_date, opt_int, opt_str, opt_symbols, run_main
from signals.core.vocabulary import REASON_BELOW_THRESHOLD, REASON_PREDICTED_FLAT
from signals.monitoring.predictions_log import DEFAULT_PATH, PredictionsLog
from signals.serving.schema import signal_record
from signals.settings.model import load_settings
from signals.trading.strategy import MLSignalStrategy

if TYPE_CHECKING:  # pragma: no cover
    from signals.data.base import DataProvider
    from signals.settings.model import Settings
    from signals.trading.strategy import MLSignalStrategy, Signal

log = logging.getLogger("signals.entrypoints.generate")


class GenerateError(SignalsError):
    """The requested generation cannot run (e.g. an as-of date before the data starts)."""


@dataclass
class GenerateOutcome:
    as_of: pd.Timestamp
    signals: list["Signal"]
    predictions: pd.DataFrame  # every prediction made (all replayed dates + as_of)
    published: int | None = None
    dates: list[pd.Timestamp] = field(default_factory=list)
    model_version: str = ""
    n_in_sample: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)  # the as-of date's signal records, every symbol
    guarded: dict[str, str] = field(default_factory=dict)  # symbol -> guard reason (signal NONE)


def guard_reasons(predictions: pd.DataFrame) -> dict[str, str]:
    """Symbol -> reason for rows the coverage guard withheld (not the ordinary FLAT / low-confidence NONE)."""
    ordinary = {REASON_PREDICTED_FLAT, REASON_BELOW_THRESHOLD, None}
    return {
        str(r.symbol): str(r.reason)
        for r in predictions.itertuples(index=False)
        if r.signal == "NONE" and r.reason not in ordinary and isinstance(r.reason, str)
    }


def signal_records(predictions: pd.DataFrame, *, model_name: str, horizon: int | None, threshold: float) -> list[dict[str, Any]]:
    """One schema record (signals/serving/schema.py) per prediction row."""
    return [
        signal_record(
            model_name=model_name, model_version=str(r.model_version), symbol=r.symbol, as_of=r.date, horizon=horizon,
            threshold=threshold, p_down=r.p_down, p_flat=r.p_flat, p_up=r.p_up, predicted_class=int(r.predicted_class),
            confidence=r.confidence, signal=r.signal, reason=r.reason,
        )
        for r in predictions.itertuples(index=False)
    ]


def trading_dates(bars: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    dates = pd.DatetimeIndex([])
    for frame in bars.values():
        dates = dates.union(pd.DatetimeIndex(frame.index))
    return dates.sort_values()


def resolve_as_of(calendar: pd.DatetimeIndex, as_of: object) -> pd.Timestamp:
    """The last trading date on or before ``as_of`` (the last date in the data when None)."""
    if len(calendar) == 0:
        raise GenerateError("the data source has no bars for the requested symbols")
    if as_of is None:
        return pd.Timestamp(calendar[-1])
    try:
        ts = pd.Timestamp(as_of).normalize()
    except (ValueError, TypeError):
        raise GenerateError(f"as-of date must be an ISO date (YYYY-MM-DD), got {as_of!r}") from None
    eligible = calendar[calendar <= ts]
    if len(eligible) == 0:
        raise GenerateError(f"as-of date {ts.date()} is before the data starts ({calendar[0].date()})")
    if ts > calendar[-1]:
        log.warning("as-of date %s is after the last bar (%s): using the last bar", ts.date(), calendar[-1].date())
    return pd.Timestamp(eligible[-1])


def _training_end(champion: Any) -> pd.Timestamp | None:
    window = getattr(champion, "data_window", None) or {}
    ends = [pd.Timestamp(window[k]) for k in ("holdout_end", "train_end") if window.get(k)]
    return max(ends) if ends else None


def generate_predictions(
    strategy: "MLSignalStrategy",
    bars: dict[str, pd.DataFrame],
    dates: Sequence[pd.Timestamp],
) -> pd.DataFrame:
    """Predictions for each date, each made from bars cut at that date (no lookahead)."""
    parts = []
    for d in dates:
        cut = {s: frame.loc[:d] for s, frame in bars.items() if d in frame.index}
        if cut:
            parts.append(strategy.feature_rows(cut))
    rows = pd.concat(parts) if parts else strategy.feature_rows({})
    return strategy.predict_rows(rows)  # one model call for every date


def run_generate(
    settings: "Settings",
    *,
    as_of: object = None,
    symbols: Sequence[str] | None = None,
    replay_days: int = 0,
    provider: "DataProvider | None" = None,
    strategy: "MLSignalStrategy | None" = None,
    predictions_path: str | Path | None = None,
    publish: bool = True,
    outcome: list[GenerateOutcome] | None = None,
) -> list["Signal"]:
    """Signals (LONG / SHORT) as of ``as_of``; see the module docstring. Every symbol's record,
    NONE ones included, is in ``outcome[0].records``.

    ``outcome``: pass a list to receive the full :class:`GenerateOutcome` (predictions,
    replayed dates, publish count) besides the returned signals.
    """
    from signals.serving.pyfunc import get_champion

    if replay_days < 0:
        raise GenerateError(f"replay_days must be >= 0, got {replay_days}")
    provider = provider or get_provider(settings)
    syms = provider.resolve_symbols(list(symbols or []) or settings.data.symbols or None)
    champion = None
    if strategy is None:
        champion = get_champion(settings)
        from signals.serving.pyfunc import load_predictor

        strategy = MLSignalStrategy(
            provider, settings, predictor=load_predictor(champion.path), model_version=champion.version_id
        )
    bars = {s: provider.bars(s) for s in syms}
    calendar = trading_dates(bars)
    day = resolve_as_of(calendar, as_of)
    past = calendar[calendar <= day]
    dates = list(past[-(replay_days + 1) :])
    preds = generate_predictions(strategy, {s: b.loc[:day] for s, b in bars.items()}, dates)
    preds["replay"] = preds["date"] != day
    train_end = _training_end(champion) if champion is not None else None
    preds["in_sample"] = preds["date"] <= train_end if train_end is not None else False
    n_in = int(preds["in_sample"].sum())
    if n_in:
        log.warning(
            "%d of %d predictions are dated inside the champion's training data (up to %s): they are in-sample "
            "for the model and flagged in_sample in the predictions log",
            n_in,
            len(preds),
            train_end.date() if train_end is not None else "?",
        )
    PredictionsLog(predictions_path or DEFAULT_PATH).append(preds)

    today = preds[preds["date"] == day]
    guarded = guard_reasons(today)
    for sym, reason in guarded.items():
        log.warning("%s: signal NONE as of %s, the model cannot judge this row (%s)", sym, day.date(), reason)
    signals = strategy.signals_from_predictions(today)
    horizon = (getattr(strategy.predictor, "metadata", None) or {}).get("prediction_horizon", settings.ml.prediction_horizon)
    records = signal_records(today, model_name=settings.mlflow.model_name, horizon=horizon,
                             threshold=strategy.confidence_threshold)
    published = None
    if publish and records:
        published = Mirror.from_settings(settings).publish_signals(
            [{**rec, "strategy_name": strategy.name} for rec in records]
        )
    if outcome is not None:
        outcome.append(
            GenerateOutcome(
                as_of=day,
                signals=signals,
                predictions=preds,
                published=published,
                dates=dates,
                model_version=strategy.model_version,
                n_in_sample=n_in,
                records=records,
                guarded=guarded,
            )
        )
    return signals


def main(argv: list[str] | None = None) -> None:


    parser = argparse.ArgumentParser(prog="python -m entrypoints.generate", description="Today's signals from the champion model.")
    parser.add_argument("--config", type=opt_str, default=None, help="settings file (default config/settings.yaml)")
    parser.add_argument("--symbols", type=opt_symbols, default=None, help="comma-separated symbols (default: all)")
    parser.add_argument("--as-of", dest="as_of", type=opt_date("as-of"), default=None,
                        help="generate as of this date (default: the last date in the data)")
    parser.add_argument("--replay-days", dest="replay_days", type=opt_int("replay-days", minimum=0), default=None,
                        help="also replay the N trading days before the as-of date, each as of its own date")
    args = parser.parse_args(argv)

    def body() -> int:

        settings = load_settings(args.config)
        sink: list[GenerateOutcome] = []
        signals = run_generate(settings, as_of=args.as_of, symbols=args.symbols, replay_days=args.replay_days or 0, outcome=sink)
        out = sink[0]
        print(json.dumps({
            "as_of": out.as_of.date().isoformat(),
            "model_version": out.model_version,
            "predictions_logged": int(len(out.predictions)),
            "dates": len(out.dates),
            "signals": out.records,
        }, indent=2, default=str))
        return 0

    run_main(body)
