"""ModelMonitor: feature drift (PSI), rolling accuracy and staleness of the champion.

* Drift: per feature, the PSI between the champion's training reference sample (logged with
  the model, see :func:`signals.serving.pyfunc.load_reference`) and a recent window of features,
  computed by Evidently over *reference-quantile bins* (the robust binning and the NaN policy
  are documented in :mod:`signals.monitoring.psi`). Levels: PSI < ``psi_minor`` none,
  ``psi_minor``..``psi_major`` minor, > ``psi_major`` major. A feature "drifts" when major.
  Calendar features (day of week, month, quarter, ...) are reported but never counted: a
  window of weeks cannot match a multi-year reference in them, by construction.
* In-sample baseline (context, not part of the retrain rule): the PSI of windows of the same
  length *inside the training period* against the same reference. Persistent features
  (quarterly fundamentals, 60/200-day statistics) over a short window of a small universe
  have few independent values, so their PSI exceeds 0.2 even in sample (on the 4-symbol
  sample data, ~50 of ~80 features do). ``drifted_features_unusual`` counts major-drift
  features whose PSI also exceeds their in-sample 90th percentile.
* Rolling accuracy: share of the last ``rolling_window`` *resolved* predictions (outcome known,
  see :func:`signals.monitoring.predictions_log.resolve_outcomes`) whose predicted class was right. It
  is only judged against ``accuracy_threshold`` once a full window is available; with fewer
  resolved predictions it is reported but neither alerts nor triggers a retrain.
* Staleness: the champion's age, measured against an injectable clock, against
  ``ml.model_staleness_days``.

:func:`decide_retrain` is the pure retrain rule: retrain when at least
``drifted_features_for_retrain`` features have major drift, or the (full-window) rolling
accuracy is below the threshold, or the model is stale.

Everything here is computation (frames in, dataclasses out) plus the heatmap renderer; the
MLflow / Redis / alert side effects live in :mod:`signals.lifecycle.monitor`.
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.vocabulary import utc_now
from signals.features.spec import names_for
from signals.monitoring.alerts import Alert
from signals.monitoring.null import DateCounts, DriftDecision, NullDrift, drift_decision, min_windows, null_drift
from signals.monitoring.performance import PerformanceResult, performance_check
from signals.monitoring.psi import LEVEL_MAJOR, LEVEL_MINOR, QuantileBinner, evidently_psi, psi_codes, psi_level

if TYPE_CHECKING:  # pragma: no cover
    from signals.monitoring.alerts import Alert
    from signals.settings.model import Settings


class MonitoringError(SignalsError):
    """The monitor cannot run on the inputs given (e.g. no overlapping features)."""


def _as_utc(ts: datetime | pd.Timestamp) -> datetime:
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


# --------------------------------------------------------------------------- results
@dataclass
class DriftResult:
    psi: pd.Series  # feature -> PSI
    levels: pd.Series  # feature -> none | minor | major
    n_reference: int
    n_current: int
    engine: str
    window_start: pd.Timestamp | None = None
    window_end: pd.Timestamp | None = None
    psi_major: float = 0.2
    excluded: tuple[str, ...] = ()  # PSI reported, never counted (calendar features)
    baseline_p90: pd.Series | None = None  # feature -> 90th pct of in-sample window PSI
    n_baseline_windows: int = 0
    snapshot: Any = field(default=None, repr=False)  # Evidently snapshot (save_html)
    null: NullDrift | None = None  # in-sample windows' PSI (the null), when history was given
    decision: DriftDecision | None = None  # the calibrated rule's verdict (signals.monitoring.null)
    evidently_psi: pd.Series | None = None  # Evidently's PSI vs the logged reference sample (its own view)

    @property
    def in_sample_percentile(self) -> pd.Series | None:
        """Per feature, the share (0..100) of in-sample windows with a lower PSI."""
        return None if self.null is None or self.null.n_windows == 0 else self.null.percentile()

    @property
    def not_comparable(self) -> list[str]:
        return list(self.decision.not_comparable) if self.decision is not None else []

    @property
    def alarm(self) -> bool | None:
        """The calibrated rule's verdict; None when it could not judge (no null)."""
        return None if self.decision is None or not self.decision.judged else bool(self.decision.alarm)

    @property
    def counted(self) -> pd.Series:
        """Neither calendar nor not comparable (absent or nearly absent from the reference)."""
        skip = list(self.excluded) + self.not_comparable
        return pd.Series(~self.psi.index.isin(skip), index=self.psi.index)

    @property
    def n_major(self) -> int:
        """Counted features with PSI > major: what the retrain rule uses."""
        return int(((self.levels == LEVEL_MAJOR) & self.counted).sum())

    @property
    def n_minor(self) -> int:
        return int(((self.levels == LEVEL_MINOR) & self.counted).sum())

    @property
    def unusual(self) -> pd.Series:
        """Major drift *and* above the feature's in-sample 90th percentile (False without a baseline)."""
        if self.baseline_p90 is None:
            return pd.Series(False, index=self.psi.index)
        base = self.baseline_p90.reindex(self.psi.index)
        return (self.levels == LEVEL_MAJOR) & self.counted & (self.psi > base.fillna(-np.inf))

    @property
    def n_major_unusual(self) -> int | None:
        return int(self.unusual.sum()) if self.baseline_p90 is not None else None

    @property
    def max_psi(self) -> float:
        psi = self.psi[self.counted]
        return float(psi.max()) if len(psi) else 0.0

    def drifted(self) -> list[str]:
        mask = (self.levels == LEVEL_MAJOR) & self.counted
        return self.psi[mask].sort_values(ascending=False).index.tolist()

    def table(self) -> pd.DataFrame:
        out = pd.DataFrame(
            {
                "feature": self.psi.index,
                "psi": self.psi.to_numpy(),
                "level": self.levels.to_numpy(),
                "counted": self.counted.to_numpy(),
            }
        )
        if self.baseline_p90 is not None:
            out["in_sample_p90"] = self.baseline_p90.reindex(self.psi.index).to_numpy()
            out["unusual"] = self.unusual.to_numpy()
        pct = self.in_sample_percentile
        if pct is not None:
            out["in_sample_percentile"] = pct.reindex(self.psi.index).to_numpy()
        if self.decision is not None and self.decision.judged:
            out["p_value"] = self.decision.p_values.reindex(self.psi.index).to_numpy()
            out["z"] = self.decision.z.reindex(self.psi.index).to_numpy()
            out["comparable"] = ~self.psi.index.isin(self.not_comparable)
        if self.evidently_psi is not None:
            out["evidently_psi"] = self.evidently_psi.reindex(self.psi.index).to_numpy()
        return out

    def top(self, n: int = 5) -> pd.DataFrame:
        """The counted features that matter most for the verdict: by z when judged, else by PSI."""
        t = self.table()
        t = t[t["counted"]]
        key = "z" if "z" in t.columns else "psi"
        return t.sort_values(key, ascending=False).head(n)


@dataclass
class AccuracyResult:
    accuracy: float | None  # None when nothing is resolved yet
    n: int  # resolved predictions used (<= window)
    window: int
    threshold: float
    performance: PerformanceResult | None = None  # vs the champion's OOS record (when it is known)

    @property
    def sufficient(self) -> bool:
        return self.n >= self.window

    @property
    def judged_by_record(self) -> bool:
        return self.performance is not None and self.performance.judged

    @property
    def below(self) -> bool:
        """Worse than the champion's OOS record when that can be judged; else the fixed threshold."""
        if self.judged_by_record:
            return self.performance.below
        return self.sufficient and self.accuracy is not None and self.accuracy < self.threshold


@dataclass
class StalenessResult:
    """Two ages of the champion, both shown; the data age decides when it is known.

    * data age: calendar days from the last date of the champion's training data to the
      check's as-of date. This is what limits the model: it knows nothing after its training
      end, whenever it was fitted. A replay of 2013 judges a model trained to 2012 by this.
    * wall-clock age: from the model's registration to now. It decides only when the training
      end is unknown (no ``train_end`` tag); a wall-clock age far above the data age means the
      data feed, not the model, is behind.

    Rule: stale when the deciding age is strictly above ``max_days`` (``ml.model_staleness_days``).
    """

    created_at: datetime
    checked_at: datetime
    max_days: float
    data_end: pd.Timestamp | None = None  # last date of the training data
    as_of: pd.Timestamp | None = None  # the check's as-of date

    @property
    def age_days(self) -> float:
        """Wall-clock age (registration to now)."""
        return (self.checked_at - self.created_at).total_seconds() / 86400.0

    @property
    def data_age_days(self) -> float | None:
        """Calendar days from the training data's end to the as-of date (None if unknown)."""
        if self.data_end is None or self.as_of is None:
            return None
        return float((pd.Timestamp(self.as_of).normalize() - pd.Timestamp(self.data_end).normalize()).days)

    @property
    def basis(self) -> str:
        return "data" if self.data_age_days is not None else "wall clock"

    @property
    def deciding_age(self) -> float:
        return self.data_age_days if self.data_age_days is not None else self.age_days

    @property
    def stale(self) -> bool:
        return self.deciding_age > self.max_days


@dataclass
class RetrainDecision:
    needed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class MonitorReport:
    drift: DriftResult
    accuracy: AccuracyResult
    staleness: StalenessResult
    decision: RetrainDecision

    def summary(self) -> dict[str, Any]:
        a, s, d = self.accuracy, self.staleness, self.drift
        return {
            "drifted_features": d.n_major,
            "minor_drift_features": d.n_minor,
            "drifted_features_unusual": d.n_major_unusual,
            "baseline_windows": d.n_baseline_windows,
            "excluded_features": list(d.excluded),
            "max_psi": d.max_psi,
            "top_drifted": d.drifted()[:10],
            "n_reference": d.n_reference,
            "n_current": d.n_current,
            "rolling_accuracy": a.accuracy,
            "n_resolved": a.n,
            "accuracy_window": a.window,
            "accuracy_below_threshold": a.below,
            "performance": None if a.performance is None else a.performance.describe(),
            "performance_judged_by_oos_record": a.judged_by_record,
            "rolling_log_loss": None if a.performance is None else a.performance.log_loss,
            "expected_accuracy_cbpe": None if a.performance is None else a.performance.expected_accuracy,
            "oos_accuracy_percentile": None if a.performance is None else a.performance.accuracy_percentile,
            "oos_log_loss_percentile": None if a.performance is None else a.performance.log_loss_percentile,
            "model_age_days": round(s.age_days, 3),
            "data_age_days": s.data_age_days,
            "staleness_basis": s.basis,
            "stale": s.stale,
            "drift_rule_verdict": None if d.decision is None else d.decision.reason,
            "drift_alarm": d.alarm,
            "drift_p_value": None if d.decision is None else d.decision.p_value,
            "drift_null_windows": 0 if d.null is None else d.null.n_windows,
            "not_comparable_features": d.not_comparable,
            "top_features": [
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                for r in d.top(5)[[c for c in ("feature", "psi", "in_sample_percentile", "z") if c in d.table().columns]]
                .round(4).to_dict("records")
            ],
            "retrain_needed": self.decision.needed,
            "reasons": list(self.decision.reasons),
        }


def decide_retrain(
    drift: DriftResult,
    accuracy: AccuracyResult,
    staleness: StalenessResult,
    *,
    drifted_features_for_retrain: int,
    drift_rule: str = "calibrated",
) -> RetrainDecision:
    """The retrain rule (pure): major drift on enough features, low accuracy, or a stale model.

    ``drift_rule="calibrated"`` (default) uses :func:`signals.monitoring.null.drift_decision`:
    each feature's PSI against its own in-sample distribution, one test per check. Without an
    in-sample null (no training end known) it falls back to the plain count.
    ``drift_rule="psi"`` counts every feature with PSI above the major threshold (the spec's
    rule). ``"unusual"`` counts only those that are also above their own in-sample 90th
    percentile: slow features (quarterly fundamentals, 200-day statistics) have large PSI
    between any short window and a multi-year reference even without a regime change, so on a
    small universe the plain count fires on every check.
    """
    reasons = []
    calibrated = drift_rule == "calibrated" and drift.decision is not None
    if calibrated:
        if drift.decision.alarm:
            reasons.append(f"drift: {drift.decision.reason}")
        n, what = 0, ""
    elif drift_rule == "unusual" and drift.n_major_unusual is not None:
        n, what = drift.n_major_unusual, "PSI > major threshold and above their in-sample 90th percentile"
    else:
        n, what = drift.n_major, "PSI > major threshold"
    if not calibrated and n >= drifted_features_for_retrain:
        reasons.append(f"drift: {n} feature(s) with {what} (>= {drifted_features_for_retrain} triggers a retrain)")
    if accuracy.below and accuracy.judged_by_record:
        reasons.append(f"performance: worse than the champion's walk-forward OOS record: {accuracy.performance.describe()}")
    elif accuracy.below:
        reasons.append(
            f"accuracy (fixed threshold, no OOS record): rolling accuracy {accuracy.accuracy:.3f} over the last {accuracy.n} resolved "
            f"predictions is below {accuracy.threshold:.2f}"
        )
    if staleness.stale:
        reasons.append(
            f"staleness: champion's {'training data ends' if staleness.basis == 'data' else 'registration is'} "
            f"{staleness.deciding_age:.0f} days before the check (limit {staleness.max_days:g}, {staleness.basis} time)"
        )
    return RetrainDecision(needed=bool(reasons), reasons=reasons)


# --------------------------------------------------------------------------- monitor
class ModelMonitor:
    """Compares recent features with the champion's training reference; judges accuracy and age."""

    def __init__(
        self,
        reference: pd.DataFrame,
        *,
        psi_bins: int = 10,
        psi_minor: float = 0.1,
        psi_major: float = 0.2,
        drifted_features_for_retrain: int = 5,
        drift_rule: str = "calibrated",
        rolling_window: int = 100,
        accuracy_threshold: float = 0.5,
        staleness_days: float = 14,
        clock: Callable[[], datetime] = utc_now,
        exclude: Sequence[str] = (),
        drift_method: str = "maxstat",
        drift_level: float = 0.01,
        drift_min_features: int = 1,
        min_reference_share: float = 0.5,
        null_gap_days: int = 60,
        null_step_days: int = 5,
        null_warmup_days: int = 252,
        performance_level: float = 0.01,
    ) -> None:
        if reference is None or reference.empty:
            raise MonitoringError("the drift reference sample is empty")
        self.reference = reference.reset_index(drop=True)
        self.psi_bins = psi_bins
        self.psi_minor = psi_minor
        self.psi_major = psi_major
        self.drifted_features_for_retrain = drifted_features_for_retrain
        self.drift_rule = drift_rule
        self.rolling_window = rolling_window
        self.accuracy_threshold = accuracy_threshold
        self.staleness_days = staleness_days
        self.clock = clock
        self.exclude = tuple(c for c in exclude if c in self.reference.columns)
        self.drift_method = drift_method
        self.drift_level = drift_level
        self.drift_min_features = drift_min_features
        self.min_reference_share = min_reference_share
        self.null_gap_days = null_gap_days
        self.null_step_days = null_step_days
        self.null_warmup_days = null_warmup_days
        self.performance_level = performance_level
        self.binner = QuantileBinner(psi_bins).fit(self.reference)
        self._ref_codes = self.binner.transform(self.reference)

    @classmethod
    def from_settings(
        cls, settings: "Settings", reference: pd.DataFrame, *, clock: Callable[[], datetime] = utc_now
    ) -> "ModelMonitor":
        m = settings.monitoring
        return cls(
            reference,
            psi_bins=m.psi_bins,
            psi_minor=m.psi_minor,
            psi_major=m.psi_major,
            drifted_features_for_retrain=m.drifted_features_for_retrain,
            drift_rule=m.drift_rule,
            rolling_window=m.rolling_window,
            accuracy_threshold=m.accuracy_threshold,
            staleness_days=settings.ml.model_staleness_days,
            clock=clock,
            exclude=calendar_features(),
            drift_method=m.drift_method,
            drift_level=m.drift_level,
            drift_min_features=m.drift_min_features,
            min_reference_share=m.min_reference_share,
            null_gap_days=m.null_gap_days,
            null_step_days=m.null_step_days,
            null_warmup_days=m.null_warmup_days,
            performance_level=m.performance_level,
        )

    @property
    def features(self) -> list[str]:
        return list(self.binner.columns_)

    # ------------------------------------------------------------------ drift
    def check_drift(
        self, current: pd.DataFrame, *, engine: str = "evidently", history: pd.DataFrame | None = None,
        baseline_end: object = None, n_baseline_windows: int = 12, baseline_start: object = None,
        counts: DateCounts | None = None,
    ) -> DriftResult:
        """PSI per reference feature; ``engine`` = ``evidently`` (with an HTML report) or ``numpy``.

        With ``history`` (feature rows indexed by (symbol, date), covering the training period
        and ``current``) and ``baseline_end`` (the end of the model's training data): the
        null-calibrated check (:mod:`signals.monitoring.null`). The PSI judged is then the
        window's PSI against the training period minus the window (leave-window-out), the null
        is the same statistic over in-sample windows, and :func:`drift_decision` gives the
        verdict. Evidently's PSI against the logged reference sample is kept as its own view
        (``evidently_psi`` and the HTML snapshot). ``counts`` reuses the binned history
        (the replay benchmark does, across checks).
        """
        self._check_columns(current)
        if engine not in ("evidently", "numpy"):
            raise ValueError(f"engine must be 'evidently' or 'numpy', got {engine!r}")
        dates = _dates_of(current)
        window_len = max(1, len(pd.DatetimeIndex(dates).unique()))
        nd = decision = None
        if history is not None and baseline_end is not None:
            self._check_columns(history)
            hist = history if list(history.columns) == self.features else history[self.features]
            nd = null_drift(
                hist, self.binner, window=window_len, train_start=baseline_start,
                train_end=baseline_end, check_end=dates.max() if len(dates) else None, gap=self.null_gap_days,
                step=self.null_step_days, counts=counts, current=current[self.features],
                min_windows=min_windows(self.drift_method, self.drift_level, len(self.features) - len(self.exclude)),
                warmup=self.null_warmup_days,
            )
            decision = drift_decision(
                nd.observed, nd.null, comparable=nd.reference_share >= self.min_reference_share,
                exclude=self.exclude, method=self.drift_method, level=self.drift_level,
                min_features=self.drift_min_features,
            )
        ev_psi, snapshot = None, None
        if engine == "evidently":
            ev_psi, snapshot = evidently_psi(self._ref_codes, self.binner.transform(current))
        if nd is not None:
            psi = nd.observed.copy()
        elif ev_psi is not None:
            psi = ev_psi
        else:
            psi = psi_codes(self._ref_codes, self.binner.transform(current))
        levels = psi.map(lambda v: psi_level(v, self.psi_minor, self.psi_major))
        base = None
        if nd is not None and nd.n_windows:
            base = nd.null
        elif history is not None and baseline_end is not None:
            base = self.baseline_psi(history, end=baseline_end, window=window_len, n_windows=n_baseline_windows)
        return DriftResult(
            psi=psi,
            levels=levels,
            n_reference=len(self.reference),
            n_current=len(current),
            engine=engine,
            window_start=dates.min() if len(dates) else None,
            window_end=dates.max() if len(dates) else None,
            psi_major=self.psi_major,
            excluded=self.exclude,
            baseline_p90=None if base is None or base.empty else base.quantile(0.9, axis=1),
            n_baseline_windows=0 if base is None else base.shape[1],
            snapshot=snapshot,
            null=nd,
            decision=decision,
            evidently_psi=ev_psi if nd is not None else None,
        )

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise MonitoringError(
                f"the current window lacks {len(missing)} of the model's {len(self.features)} features, "
                f"e.g. {missing[:5]} (was the feature set changed since the champion was trained?)"
            )
        if frame.empty:
            raise MonitoringError("the current feature window is empty")

    def baseline_psi(self, history: pd.DataFrame, *, end: object, window: int, n_windows: int = 12) -> pd.DataFrame:
        """PSI (numpy, same binning) of ``n_windows`` in-sample windows vs the reference.

        Windows of ``window`` trading dates end at evenly spaced dates of ``history`` up to
        ``end`` (the model's training end). They show how large PSI gets for this window length
        when nothing has changed: persistent features (quarterly fundamentals, 60/200-day
        statistics) sampled over a short window of a small universe have few effectively
        independent values, so their PSI is large even in sample. Returns features x window-end.
        """
        dates = _dates_of(history)
        cal = pd.DatetimeIndex(dates.unique()).sort_values()
        cal = cal[cal <= pd.Timestamp(end)]
        if len(cal) < window + 1 or n_windows < 1:
            return pd.DataFrame(index=self.features)
        ends = np.unique(np.linspace(window - 1, len(cal) - 1, n_windows).round().astype(int))
        cols = {}
        for e in ends:
            span = cal[e - window + 1 : e + 1]
            rows = history[dates.isin(span)]
            if rows.empty:
                continue
            cols[cal[e]] = psi_codes(self._ref_codes, self.binner.transform(rows))
        return pd.DataFrame(cols)

    # ------------------------------------------------------------------ accuracy
    def check_accuracy(self, resolved: pd.DataFrame, oos: pd.DataFrame | None = None) -> AccuracyResult:
        """Accuracy over the newest ``rolling_window`` resolved predictions (by date, then symbol);
        with the champion's OOS predictions ``oos``, also the test against that record
        (:mod:`signals.monitoring.performance`)."""
        perf = performance_check(resolved, oos, window=self.rolling_window, level=self.performance_level)
        if resolved is None or resolved.empty:
            return AccuracyResult(None, 0, self.rolling_window, self.accuracy_threshold, perf)
        r = resolved.sort_values(["date", "symbol"], kind="stable").tail(self.rolling_window)
        acc = float(np.mean(r["correct"].astype(bool)))
        return AccuracyResult(acc, len(r), self.rolling_window, self.accuracy_threshold, perf)

    # ------------------------------------------------------------------ staleness
    def check_staleness(self, created_at: datetime, *, data_end: object = None, as_of: object = None) -> StalenessResult:
        return StalenessResult(
            _as_utc(created_at), _as_utc(self.clock()), float(self.staleness_days),
            pd.Timestamp(data_end) if data_end is not None else None, pd.Timestamp(as_of) if as_of is not None else None,
        )

    # ------------------------------------------------------------------ all together
    def evaluate(
        self, current: pd.DataFrame, resolved: pd.DataFrame, created_at: datetime, *, engine: str = "evidently",
        history: pd.DataFrame | None = None, baseline_end: object = None, baseline_start: object = None,
        data_end: object = None, oos: pd.DataFrame | None = None,
    ) -> MonitorReport:
        drift = self.check_drift(
            current, engine=engine, history=history, baseline_end=baseline_end, baseline_start=baseline_start
        )
        accuracy = self.check_accuracy(resolved, oos)
        staleness = self.check_staleness(
            created_at, data_end=data_end if data_end is not None else baseline_end, as_of=drift.window_end
        )
        decision = decide_retrain(
            drift, accuracy, staleness, drifted_features_for_retrain=self.drifted_features_for_retrain,
            drift_rule=self.drift_rule,
        )
        return MonitorReport(drift, accuracy, staleness, decision)


def calendar_features() -> tuple[str, ...]:
    """The feature spec's temporal (calendar) features: day of week, month, quarter, ...

    They are deterministic functions of the date, so a window of a few weeks can never match
    a multi-year reference (a 60-day window holds 2-3 months): their PSI is large by
    construction, not because the world changed. They are reported, never counted.
    """
    try:

        return tuple(names_for("temporal"))
    except Exception:  # noqa: BLE001 - no registry: nothing excluded
        return ()


def _dates_of(frame: pd.DataFrame) -> pd.DatetimeIndex:
    idx = frame.index
    if isinstance(idx, pd.MultiIndex):
        level = "date" if "date" in idx.names else idx.nlevels - 1
        return pd.DatetimeIndex(idx.get_level_values(level))
    if isinstance(idx, pd.DatetimeIndex):
        return idx
    if "date" in frame.columns:
        return pd.DatetimeIndex(frame["date"])
    return pd.DatetimeIndex([])


# --------------------------------------------------------------------------- alerts
def build_alerts(report: MonitorReport, subject: str, check_date: object) -> list["Alert"]:
    """One alert per problem (drift / accuracy / staleness); dedup key = kind + ``subject``.

    A drift alert is raised when the drift rule says so: the calibrated rule's alarm when it
    judged, else (no in-sample null) any counted feature with major PSI. It carries the model
    (``subject`` = name/version), the as-of date, the top features with their PSI and in-sample
    percentile, and the rule's decision in words.
    """

    day = pd.Timestamp(check_date).date().isoformat() if check_date is not None else ""
    out = []
    d, a, s = report.drift, report.accuracy, report.staleness
    raise_drift = d.alarm if d.alarm is not None else d.n_major > 0
    if raise_drift:
        top = d.top(5)
        pct = "in_sample_percentile" in top.columns
        items = [
            f"{r.feature} (PSI {r.psi:.3f}" + (f", in-sample pct {r.in_sample_percentile:.0f}" if pct else "") + ")"
            for r in top.itertuples()
        ]
        verdict = d.decision.reason if d.decision is not None else (
            f"{d.n_major} feature(s) with PSI > {d.psi_major:g} (no in-sample null to judge against)"
        )
        out.append(
            Alert(
                kind="drift",
                subject=subject,
                title=f"Feature drift on {subject}",
                message=f"as of {day}: {verdict}. Top features: {', '.join(items)}",
                severity="critical" if report.decision.needed else "warning",
                fields={
                    "model": subject,
                    "as_of": day,
                    "decision": "alarm" if raise_drift else "quiet",
                    "rule": verdict,
                    "top_features": "; ".join(items),
                    "not_comparable": ", ".join(d.not_comparable) or "none",
                    "retrain_needed": report.decision.needed,
                },
            )
        )
    if a.below:
        out.append(
            Alert(
                kind="accuracy",
                subject=subject,
                title=f"Rolling accuracy low on {subject}",
                message=(
                    f"as of {day}: {a.performance.describe()}" if a.judged_by_record
                    else f"accuracy {a.accuracy:.3f} over the last {a.n} resolved predictions < {a.threshold:.2f} "
                         "(fixed threshold: no OOS record of the champion)"
                ),
                severity="critical",
                fields={"model": subject, "as_of": day, "rolling_accuracy": a.accuracy, "n_resolved": a.n},
            )
        )
    if s.stale:
        out.append(
            Alert(
                kind="staleness",
                subject=subject,
                title=f"Model {subject} is stale",
                message=(
                    f"as of {day}: the champion's {'training data ends' if s.basis == 'data' else 'registration is'} "
                    f"{s.deciding_age:.0f} days earlier (limit {s.max_days:g} days, {s.basis} time)"
                ),
                severity="warning",
                fields={"model": subject, "as_of": day, "data_age_days": s.data_age_days,
                        "model_age_days": round(s.age_days, 2), "created_at": s.created_at.isoformat()},
            )
        )
    return out


# --------------------------------------------------------------------------- heatmap
def psi_heatmap(history: pd.DataFrame, path: str | Path, *, minor: float = 0.1, major: float = 0.2, title: str = "") -> Path:
    """PNG heatmap of PSI, features (rows) x check dates (columns); NaN cells (no check) blank."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = history.copy()
    h.columns = [pd.Timestamp(c).date().isoformat() for c in h.columns]
    n_rows, n_cols = max(len(h.index), 1), max(len(h.columns), 1)
    fig_h = min(2 + 0.22 * n_rows, 40)
    fig_w = min(4 + 0.45 * n_cols, 30)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    top = max(float(np.nanmax(h.to_numpy())) if h.size and np.isfinite(h.to_numpy()).any() else 0.0, major * 2.5)
    bounds = [0.0, minor / 2, minor, (minor + major) / 2, major, major * 1.5, major * 2.5, max(top, major * 2.5 + 1e-9)]
    cmap = ListedColormap(["#f7fcf5", "#c7e9c0", "#fff7bc", "#fee391", "#fdae6b", "#e6550d", "#a50f15"])
    norm = BoundaryNorm(bounds, cmap.N, clip=True)
    data = np.ma.masked_invalid(h.to_numpy(dtype=float))
    im = ax.imshow(data, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_yticks(range(len(h.index)))
    ax.set_yticklabels(list(h.index), fontsize=7)
    ax.set_xticks(range(len(h.columns)))
    ax.set_xticklabels(list(h.columns), rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("check date")
    ax.set_title(title or f"PSI by feature (minor >= {minor:g}, major > {major:g})", fontsize=9)
    cbar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cbar.set_label("PSI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def psi_bars(drift: DriftResult, path: str | Path, *, top: int = 30, title: str = "") -> Path:
    """PNG of one check: counted features sorted by PSI (bars), each with its in-sample 90th and
    99th percentile (ticks) so a long bar that is ordinary for its feature reads as such.
    Calendar and not-comparable features are left out."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    psi = drift.psi[drift.counted].sort_values(ascending=False).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, min(2 + 0.25 * max(len(psi), 1), 14)))
    rejected = set(drift.decision.rejected) if drift.decision is not None else set()
    colors = ["#a50f15" if f in rejected else "#6baed6" for f in psi.index]
    ax.barh(range(len(psi)), psi.to_numpy(), color=colors)
    if drift.null is not None and drift.null.n_windows:
        q = drift.null.null.reindex(psi.index)
        for i, f in enumerate(psi.index):
            ax.plot([q.loc[f].quantile(0.9)] * 2, [i - 0.4, i + 0.4], color="black", lw=1)
            ax.plot([q.loc[f].quantile(0.99)] * 2, [i - 0.4, i + 0.4], color="black", lw=1, ls=":")
    ax.set_yticks(range(len(psi)))
    ax.set_yticklabels(list(psi.index), fontsize=7)
    ax.set_xlabel("PSI vs training reference (ticks: in-sample 90th / 99th percentile; red: carries the alarm)")
    verdict = drift.decision.reason if drift.decision is not None else "no in-sample null"
    ax.set_title(title or f"drift check {drift.window_end.date() if drift.window_end is not None else ''}", fontsize=9)
    fig.text(0.01, 0.005, verdict[:140], fontsize=6)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evidently_summary_html(report: MonitorReport, model: str, check_date: str) -> str:
    """The project's verdict, put at the top of Evidently's HTML report (which is Evidently's own
    view: its per-column "drift detected" uses Evidently's default PSI threshold, not our rule)."""
    d = report.drift
    verdict = d.decision.reason if d.decision is not None else "no in-sample null (fixed PSI levels only)"
    state = "n/a" if d.alarm is None else ("ALARM" if d.alarm else "quiet")
    rows = "".join(
        f"<tr><td>{_html.escape(str(r.feature))}</td><td>{r.psi:.3f}</td>"
        f"<td>{'' if 'in_sample_percentile' not in d.table().columns else f'{r.in_sample_percentile:.0f}'}</td></tr>"
        for r in d.top(5).itertuples()
    )
    return (
        '<div style="font-family:sans-serif;border:2px solid #444;padding:12px;margin:12px;background:#fffbe6">'
        f"<h2>signals verdict for {_html.escape(model)}, as of {_html.escape(check_date)}: {state}</h2>"
        f"<p>{_html.escape(verdict)}</p>"
        "<p>Below is <b>Evidently's own view</b> over the same reference-quantile bins. Its per-column "
        "&laquo;drift detected&raquo; uses Evidently's fixed PSI threshold (0.1), which this project does not use: "
        "each feature is judged against its own in-sample distribution of the same statistic, and calendar and "
        "not-comparable features are not counted.</p>"
        f"<table><tr><th>feature</th><th>PSI</th><th>in-sample percentile</th></tr>{rows}</table></div>"
    )


def with_summary(evidently_html: str, summary: str) -> str:
    """Insert ``summary`` right after ``<body>`` (or at the top when there is no body tag)."""
    low = evidently_html.lower()
    i = low.find("<body")
    if i < 0:
        return summary + evidently_html
    j = evidently_html.find(">", i) + 1
    return evidently_html[:j] + summary + evidently_html[j:]


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value
