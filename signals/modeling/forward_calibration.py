"""Forward-chained calibration: every calibrator is fitted on predictions nobody selected.

Why not calibrate on a slice of the training window: that slice is where Optuna's validation
and early stopping already picked the model that looks best, so a calibrator fitted there
learns the slice, not the future (in-slice it always improves; out of sample it mostly hurt).

The rule here: the calibrator applied in walk-forward window ``k`` is fitted only on the *raw*
out-of-sample predictions of the windows before ``k`` whose labels were known before ``k``'s
test window starts (label end date < ``boundary``). Those rows were never seen by the booster
that predicted them, by its early stopping or by its trial selection. Overlapping test windows
are stitched (one row per (symbol, date), the latest window's prediction), so no row counts twice.

Which method: the candidates (``identity``, ``temperature``, ``sigmoid``, ``isotonic``) are
themselves judged forward-chained. Each window stores every eligible candidate's prediction,
fitted on that window's own pool; the choice for window ``k`` compares the candidates on the
earlier windows' rows (again only rows labelled before ``k``'s boundary). ``identity`` is kept
unless a candidate's mean per-row log-loss there is lower by at least ``min_improvement``
nats (default 0.0002: about what fitting a 6-parameter Platt calibrator on ~15,000 rows costs
out of sample, k / 2n, so a smaller "win" is the candidate's own fitting noise) and by
``min_z`` date-blocked standard errors (default 0). Why no significance test by default: the
candidates are already scored out of sample, so a lucky choice is paid for in the reported
numbers, and a wrongly chosen calibrator on a calibrated model costs about k / 2n; a correctly
chosen one gained 0.002-0.003 nats per row on real data. Measured on the logged walk-forward
predictions of the sample and the 20-stock skfolio universe, requiring z >= 2 kept identity
for the first 10 of 30 windows and cost 0.0006 (skfolio) and 0.0024 (sample) nats per row of
forward log-loss, and left the confident rows over-confident (mean confidence 0.09 above
accuracy instead of 0.05). The deployable model's calibrator is the same choice over all windows
(:meth:`ForwardChainedCalibration.choose` without a boundary).

Pure: frames and arrays in, calibrators and numbers out; no MLflow, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from signals.modeling.calibration import METHODS, ConfidenceCalibrator
from signals.modeling.metrics import blocked_mean_se, per_row_log_loss

RAW_COLUMNS = ("raw_down", "raw_flat", "raw_up")
#: columns a window's frame must carry (``label_end``: the date the row's label became known)
FRAME_COLUMNS = ("symbol", "date", "label_end", "y", *RAW_COLUMNS)


@dataclass(frozen=True)
class CalibrationPolicy:
    """How candidates are chosen (see the module docstring for why these defaults).

    ``methods``: the candidates (``identity`` is always included: it is what the others must
    beat). A single method other than identity means "always that one once the pool allows it".
    """

    methods: tuple[str, ...] = METHODS
    min_rows: int = 500  # pool rows before temperature / sigmoid may be fitted
    isotonic_min_rows: int = 1000  # pool rows before isotonic may be fitted
    min_selection_rows: int = 250  # forward-chained rows needed to judge a candidate
    min_improvement: float = 0.0002  # a candidate must beat identity by this many nats per row ...
    min_z: float = 0.0  # ... and by this many date-blocked standard errors
    block: int = 5  # dates per bootstrap/SE block (the label horizon: labels overlap this long)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown calibration method(s) {bad}; use {', '.join(METHODS)}")
        if not self.methods:
            raise ValueError("at least one calibration method is needed")

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("identity", *self.methods)))

    @property
    def fixed(self) -> str | None:
        """The one non-identity method when the policy names exactly one (no selection)."""
        others = [m for m in self.methods if m != "identity"]
        return others[0] if len(self.methods) == 1 and others else None

    def eligible(self, method: str, n_rows: int) -> bool:
        if method == "identity":
            return True
        return n_rows >= (self.isotonic_min_rows if method == "isotonic" else self.min_rows)


@dataclass
class CalibrationChoice:
    """The calibrator for one boundary and the evidence it was chosen on."""

    method: str
    calibrator: ConfidenceCalibrator
    boundary: pd.Timestamp | None
    pool_rows: int
    selection_rows: int
    candidate_log_loss: dict[str, float] = field(default_factory=dict)  # forward-chained, per candidate
    identity_log_loss: dict[str, float] = field(default_factory=dict)  # identity on each candidate's rows
    z: dict[str, float] = field(default_factory=dict)  # improvement over identity / its standard error
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "boundary": None if self.boundary is None else self.boundary.date().isoformat(),
            "pool_rows": self.pool_rows,
            "selection_rows": self.selection_rows,
            "candidate_log_loss": self.candidate_log_loss,
            "identity_log_loss_same_rows": self.identity_log_loss,
            "z_vs_identity": self.z,
            "reason": self.reason,
            "calibrator": self.calibrator.to_dict(),
        }


@dataclass
class _Window:
    index: int
    boundary: pd.Timestamp
    frame: pd.DataFrame
    candidates: dict[str, np.ndarray]  # forward-chained predictions of each eligible candidate
    choice: CalibrationChoice


def _stitch(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per (symbol, date): the latest window's."""
    if not frames:
        return pd.DataFrame(columns=[*FRAME_COLUMNS, "window"])
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values("window", kind="stable").drop_duplicates(["symbol", "date"], keep="last")
    return out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"forward-chained calibration needs column(s) {missing}")
    out = frame.loc[:, list(FRAME_COLUMNS)].copy()
    out["date"] = pd.to_datetime(out["date"])
    out["label_end"] = pd.to_datetime(out["label_end"])
    out["y"] = out["y"].astype(np.int64)
    return out.reset_index(drop=True)


class ForwardChainedCalibration:
    """Accumulates raw out-of-sample predictions window by window and hands out calibrators
    that only ever saw earlier, already-labelled rows (see the module docstring).

    Use :meth:`add_window` in walk-forward order; it returns window ``k``'s calibrated
    probabilities and the choice made for it. :meth:`choose` gives the calibrator for any later
    boundary (the train step's hold-out) or for deployment (no boundary: every row).
    """

    def __init__(self, policy: CalibrationPolicy | None = None) -> None:
        self.policy = policy or CalibrationPolicy()
        self._windows: list[_Window] = []

    @classmethod
    def from_predictions(cls, frame: pd.DataFrame, policy: CalibrationPolicy | None = None
                         ) -> "ForwardChainedCalibration":
        """Replay a walk-forward's logged out-of-sample predictions (columns ``window``,
        ``test_start`` and :data:`FRAME_COLUMNS`) window by window: the same choices the
        walk-forward made, ready for :meth:`choose` at any later boundary."""
        missing = [c for c in ("window", "test_start", *FRAME_COLUMNS) if c not in frame.columns]
        if missing:
            raise ValueError(f"out-of-sample predictions lack column(s) {missing} (logged by an older version?)")
        out = cls(policy)
        starts = frame.groupby("window")["test_start"].first().map(pd.Timestamp).sort_values(kind="stable")
        for window, start in starts.items():
            out.add_window(int(window), start, frame[frame["window"] == window])
        return out

    # ------------------------------------------------------------------ inputs
    @property
    def windows(self) -> list[int]:
        return [w.index for w in self._windows]

    def choices(self) -> dict[int, CalibrationChoice]:
        return {w.index: w.choice for w in self._windows}

    def _known_before(self, boundary: pd.Timestamp | None) -> list[pd.DataFrame]:
        parts = []
        for w in self._windows:
            f = w.frame.assign(window=w.index)
            if boundary is not None:
                f = f[f["label_end"] < boundary]
            parts.append(f)
        return parts

    def pool(self, boundary: pd.Timestamp | None = None) -> pd.DataFrame:
        """Stitched raw predictions of the stored windows whose labels were known before ``boundary``."""
        return _stitch(self._known_before(boundary))

    def add_window(self, index: int, boundary: Any, frame: pd.DataFrame) -> tuple[np.ndarray, CalibrationChoice]:
        """Calibrate window ``index`` (test window starting at ``boundary``) from earlier windows only."""
        boundary = pd.Timestamp(boundary)
        if self._windows and boundary < self._windows[-1].boundary:
            raise ValueError(f"windows must be added in time order: {boundary.date()} after "
                             f"{self._windows[-1].boundary.date()}")
        frame = _check_frame(frame)
        choice = self.choose(boundary)
        raw = frame[list(RAW_COLUMNS)].to_numpy(dtype=np.float64)
        pool = self.pool(boundary)
        candidates: dict[str, np.ndarray] = {}
        for method in self.policy.candidates:
            if method == choice.method:
                candidates[method] = choice.calibrator.transform(raw)
            elif self.policy.eligible(method, len(pool)):
                candidates[method] = _fit(method, pool).transform(raw)
        self._windows.append(_Window(int(index), boundary, frame, candidates, choice))
        return candidates[choice.method], choice

    # ------------------------------------------------------------------ choosing
    def _selection(self, boundary: pd.Timestamp | None) -> pd.DataFrame:
        """Stitched rows (known before ``boundary``) with each stored candidate's prediction."""
        parts = []
        for w in self._windows:
            keep = np.ones(len(w.frame), dtype=bool) if boundary is None else (w.frame["label_end"] < boundary).to_numpy()
            if not keep.any():
                continue
            part = w.frame.loc[keep, ["symbol", "date", "y"]].copy()
            part["window"] = w.index
            for method in self.policy.candidates:
                pred = w.candidates.get(method)
                part[f"ll_{method}"] = np.nan if pred is None else per_row_log_loss(w.frame["y"].to_numpy()[keep], pred[keep])
            parts.append(part)
        return _stitch(parts)

    def choose(self, boundary: Any = None) -> CalibrationChoice:
        """The calibrator for predictions after ``boundary`` (None: deployment, every stored row)."""
        boundary = None if boundary is None else pd.Timestamp(boundary)
        pool = self.pool(boundary)
        pol = self.policy
        if pol.fixed is not None:
            method = pol.fixed if pol.eligible(pol.fixed, len(pool)) else "identity"
            reason = (f"fixed method {pol.fixed}" if method == pol.fixed
                      else f"{len(pool)} pool rows are too few for {pol.fixed}; identity")
            return CalibrationChoice(method, _fit(method, pool), boundary, len(pool), 0, reason=reason)
        sel = self._selection(boundary)
        lls: dict[str, float] = {}
        base: dict[str, float] = {}
        zs: dict[str, float] = {}
        if len(sel):
            lls["identity"] = float(sel["ll_identity"].mean())
        best, best_gain = "identity", 0.0
        for method in pol.candidates:
            if method == "identity" or f"ll_{method}" not in sel:
                continue
            rows = sel[f"ll_{method}"].notna().to_numpy()
            if rows.sum() < pol.min_selection_rows or not pol.eligible(method, len(pool)):
                continue
            diff = sel["ll_identity"].to_numpy()[rows] - sel[f"ll_{method}"].to_numpy()[rows]
            gain, se = blocked_mean_se(diff, sel["date"].to_numpy()[rows], pol.block)
            lls[method] = float(sel[f"ll_{method}"].to_numpy()[rows].mean())
            base[method] = float(sel["ll_identity"].to_numpy()[rows].mean())
            zs[method] = float(gain / se) if se > 0 else (float("inf") if gain > 0 else 0.0)
            if gain >= pol.min_improvement and zs[method] >= pol.min_z and gain > best_gain:
                best, best_gain = method, gain
        if best == "identity":
            reason = (f"no candidate beats identity forward-chained by >= {pol.min_improvement:g} nats per row"
                      + (f" and >= {pol.min_z:g} standard errors" if pol.min_z > 0 else "")
                      if zs else f"too few forward-chained rows to judge a calibrator ({len(sel)})")
        else:
            reason = (f"{best} beats identity forward-chained by {best_gain:.5f} nats/row "
                      f"(z = {zs[best]:.2f}) on {int(sel[f'll_{best}'].notna().sum())} rows")
        return CalibrationChoice(best, _fit(best, pool), boundary, len(pool), len(sel), lls, base, zs, reason)


def _fit(method: str, pool: pd.DataFrame) -> ConfidenceCalibrator:
    cal = ConfidenceCalibrator(method)  # type: ignore[arg-type]
    if method == "identity":
        return cal.fit(np.full((0, 3), 1 / 3), np.empty(0, dtype=np.int64))
    return cal.fit(pool[list(RAW_COLUMNS)].to_numpy(dtype=np.float64), pool["y"].to_numpy(dtype=np.int64))
