"""The promotion gate: does the challenger beat the champion on the *same* out-of-sample rows?

Pure computation (pandas/numpy in, a :class:`GateResult` out): no MLflow, no files, so the
statistics are testable on their own. The registry feeds it each version's
``holdout_predictions.parquet`` (columns ``symbol, date, y, p_down, p_flat, p_up``).

Why a paired, date-blocked bootstrap: both models are scored on identical rows, so the
per-row log-loss *differences* carry the signal and cancel the noise shared by the rows.
Rows of one date (across symbols) are correlated, and 5-day labels overlap across
consecutive dates, so rows are not independent: resampling whole dates in circular blocks of
``block_days`` keeps that dependence inside each resampled unit and keeps the p-value honest
(``block_days=1`` resamples single dates; ``by_date=False`` falls back to independent rows).

With no champion, the baseline is the class prior instead: the challenger's hold-out file
carries the prior it was trained with (``prior_down`` ...: the class frequencies of its fit
rows), and the same paired test must show the challenger beats it. A model that cannot beat
"predict the class mix" has learnt nothing that deserves to trade, and "there is no champion
yet" is no reason to promote it (``signals promote --auto --force`` overrides, recorded).

The one-sided p-value tests H0 "the challenger's mean log-loss is not lower" with the
shift method: ``p = (1 + #{mean*_b - mean >= mean}) / (B + 1)`` where ``mean`` is the observed
mean improvement (champion loss - challenger loss) and ``mean*_b`` its bootstrap replicates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.modeling.metrics import per_row_log_loss

KEYS = ("symbol", "date")
PROBA_COLUMNS = ("p_down", "p_flat", "p_up")
PRIOR_COLUMNS = ("prior_down", "prior_flat", "prior_up")
HOLDOUT_COLUMNS = (*KEYS, "y", *PROBA_COLUMNS)

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_ROWS = 100
DEFAULT_RESAMPLES = 2000
DEFAULT_BLOCK_DAYS = 5

Decision = Literal["promote", "keep", "insufficient_data"]
Baseline = Literal["champion", "class_prior"]


class GateError(SignalsError):
    """The holdout predictions cannot be compared (missing columns, contradicting labels)."""


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate evaluation; ``reason`` is the sentence shown to the operator."""

    decision: Decision
    reason: str
    n_rows: int = 0
    n_dates: int = 0
    champion_log_loss: float | None = None
    challenger_log_loss: float | None = None
    improvement: float | None = None  # champion - challenger mean log-loss; > 0: challenger better
    p_value: float | None = None
    alpha: float = DEFAULT_ALPHA
    n_resamples: int = DEFAULT_RESAMPLES
    block_days: int = DEFAULT_BLOCK_DAYS
    seed: int = 0
    baseline: Baseline = "champion"
    prior_log_loss: float | None = None  # the challenger's class prior on the same rows, when it carries one

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "promote": self.promote}


def _naive_dates(values: pd.Series) -> pd.Series:
    dates = pd.to_datetime(values)
    return dates.dt.tz_convert(None) if dates.dt.tz is not None else dates


def _validate(frame: pd.DataFrame, who: str) -> pd.DataFrame:
    missing = [c for c in HOLDOUT_COLUMNS if c not in frame.columns]
    if missing:
        raise GateError(f"{who} holdout predictions lack column(s) {missing}; expected {list(HOLDOUT_COLUMNS)}")
    out = frame.loc[:, list(HOLDOUT_COLUMNS)].copy()
    out["date"] = _naive_dates(out["date"])
    out["symbol"] = out["symbol"].astype(str)
    out = out.dropna(subset=["y", *PROBA_COLUMNS])
    if not out["y"].isin([0, 1, 2]).all():
        raise GateError(f"{who} holdout predictions have labels outside {{0, 1, 2}} (DOWN, FLAT, UP)")
    dup = out.duplicated(subset=list(KEYS))
    if dup.any():
        first = out.loc[dup, list(KEYS)].iloc[0].tolist()
        raise GateError(f"{who} holdout predictions repeat (symbol, date) rows, e.g. {first}")
    return out


def align_holdouts(champion: pd.DataFrame, challenger: pd.DataFrame) -> pd.DataFrame:
    """Inner-join both holdouts on (symbol, date): columns ``symbol, date, y, champion_*, challenger_*``.

    Rows where the two label columns disagree mean the versions were trained with different
    target definitions; comparing their log-losses would be meaningless, so that is an error.
    """
    a = _validate(champion, "champion")
    b = _validate(challenger, "challenger")
    joined = a.merge(b, on=list(KEYS), suffixes=("_champion", "_challenger"), how="inner")
    bad = joined["y_champion"].astype(np.int64) != joined["y_challenger"].astype(np.int64)
    if bad.any():
        raise GateError(
            f"champion and challenger disagree on the label of {int(bad.sum())} of {len(joined)} common rows "
            "(different target definitions?); the gate cannot compare them"
        )
    out = joined[list(KEYS)].copy()
    out["y"] = joined["y_champion"].astype(np.int64)
    for side in ("champion", "challenger"):
        for c in PROBA_COLUMNS:
            out[f"{side}_{c}"] = joined[f"{c}_{side}"].astype(np.float64)
    return out.sort_values(list(KEYS), kind="stable").reset_index(drop=True)


def paired_bootstrap_pvalue(
    diff: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    block: int = 1,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> float:
    """One-sided p-value for H0 ``mean(diff) <= 0`` by (block) bootstrap of paired differences.

    ``groups`` (e.g. dates) are resampled as whole units in circular blocks of ``block``
    consecutive groups (in sorted order); without ``groups`` every row is its own unit.
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("diff must be a non-empty 1-d array")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if groups is None:
        sums, counts = d, np.ones_like(d)
    else:
        codes, uniques = pd.factorize(pd.Series(groups), sort=True)
        sums = np.bincount(codes, weights=d, minlength=len(uniques))
        counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    n_units = len(sums)
    block = max(1, min(int(block), n_units))
    n_blocks = -(-n_units // block)  # ceil
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    exceed = 0
    chunk = max(1, min(n_resamples, 2_000_000 // max(n_units, 1)))
    offsets = np.arange(block)
    done = 0
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        starts = rng.integers(0, n_units, size=(m, n_blocks))
        idx = ((starts[:, :, None] + offsets) % n_units).reshape(m, -1)[:, :n_units]
        means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        exceed += int(np.count_nonzero(means - observed >= observed))
        done += m
    return (1 + exceed) / (n_resamples + 1)


def prior_as_holdout(challenger: pd.DataFrame) -> pd.DataFrame:
    """The challenger's class-prior predictions as a hold-out frame (what it must beat with no champion)."""
    missing = [c for c in PRIOR_COLUMNS if c not in challenger.columns]
    if missing:
        raise GateError(
            f"the challenger's hold-out predictions have no class-prior columns {missing} (trained by an older "
            "version?): retrain it, or promote explicitly with `signals promote VERSION`")
    out = challenger.loc[:, [*KEYS, "y"]].copy()
    for p, q in zip(PROBA_COLUMNS, PRIOR_COLUMNS):
        out[p] = challenger[q].to_numpy(dtype=np.float64)
    return out


def evaluate_gate(
    champion: pd.DataFrame | None,
    challenger: pd.DataFrame,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_rows: int = DEFAULT_MIN_ROWS,
    n_resamples: int = DEFAULT_RESAMPLES,
    block_days: int = DEFAULT_BLOCK_DAYS,
    seed: int = 0,
    by_date: bool = True,
) -> GateResult:
    """Decide whether ``challenger`` should replace ``champion`` (``None``: there is no champion,
    and the challenger must beat its own class prior instead).

    Promote only when the challenger's mean log-loss on the common rows is lower *and* the
    paired bootstrap p-value is below ``alpha``. Fewer than ``min_rows`` common rows is a
    refusal (``insufficient_data``): not enough evidence either way.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    baseline: Baseline = "champion" if champion is not None else "class_prior"
    common = dict(alpha=alpha, n_resamples=n_resamples, block_days=block_days, seed=seed, baseline=baseline)
    who = "champion" if champion is not None else "class prior"
    if champion is None:
        champion = prior_as_holdout(challenger)
    rows = align_holdouts(champion, challenger)
    n, n_dates = len(rows), int(rows["date"].nunique()) if len(rows) else 0
    if n < min_rows:
        what = ("are common to both holdouts" if baseline == "champion"
                else "are in the challenger's hold-out to compare with its class prior")
        return GateResult(
            "insufficient_data",
            f"only {n} (symbol, date) rows {what}; the gate needs at least {min_rows}. Promote explicitly "
            "with `signals promote VERSION` (or `signals promote --auto --force`) if you are sure.",
            n_rows=n,
            n_dates=n_dates,
            **common,
        )
    y = rows["y"].to_numpy()
    loss_champ = per_row_log_loss(y, rows[[f"champion_{c}" for c in PROBA_COLUMNS]].to_numpy())
    loss_chall = per_row_log_loss(y, rows[[f"challenger_{c}" for c in PROBA_COLUMNS]].to_numpy())
    diff = loss_champ - loss_chall
    improvement = float(diff.mean())
    p = paired_bootstrap_pvalue(
        diff,
        groups=rows["date"].to_numpy() if by_date else None,
        block=block_days if by_date else 1,
        n_resamples=n_resamples,
        seed=seed,
    )
    prior_ll = None
    if all(c in challenger.columns for c in PRIOR_COLUMNS):
        pri = prior_as_holdout(challenger)
        pri = pri.assign(date=_naive_dates(pri["date"]), symbol=pri["symbol"].astype(str))
        on_rows = rows[list(KEYS)].merge(pri, on=list(KEYS), how="left")
        if not on_rows[list(PROBA_COLUMNS)].isna().any().any():
            prior_ll = float(per_row_log_loss(y, on_rows[list(PROBA_COLUMNS)].to_numpy(np.float64)).mean())
    stats = dict(
        prior_log_loss=prior_ll,
        n_rows=n,
        n_dates=n_dates,
        champion_log_loss=float(loss_champ.mean()),
        challenger_log_loss=float(loss_chall.mean()),
        improvement=improvement,
        p_value=float(p),
    )
    summary = (
        f"mean log-loss {stats['challenger_log_loss']:.5f} (challenger) vs {stats['champion_log_loss']:.5f} "
        f"({who}) on {n} common rows / {n_dates} dates; improvement {improvement:+.5f}, "
        f"one-sided paired bootstrap p = {p:.4f} (alpha {alpha})"
    )
    if improvement > 0 and p < alpha:
        lead = "challenger is better" if baseline == "champion" else "no champion yet; the challenger beats the class prior"
        return GateResult("promote", f"{lead}: {summary}", **stats, **common)
    why = "its mean log-loss is not lower" if improvement <= 0 else "the improvement is not significant"
    if baseline == "champion":
        return GateResult("keep", f"champion kept, {why}: {summary}", **stats, **common)
    return GateResult("keep", f"no champion, and the challenger stays a challenger: it does not beat the class prior "
                              f"({why}): {summary}", **stats, **common)
