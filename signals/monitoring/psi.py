"""Population Stability Index with robust (reference-quantile) binning.

Why not hand Evidently the raw numbers
--------------------------------------
Evidently 0.7's PSI bins a numerical column into equal-width Sturges bins over the
*combined* reference + current values. One extreme value (a fat tail, a data error)
stretches the range so that almost everything lands in one or two bins, and a real shift
in the bulk of the distribution becomes invisible. So we bin first, robustly:

1. :class:`QuantileBinner` learns, per feature, the ``n_bins`` quantile edges of the
   *reference* (training) sample only (``inverted_cdf`` quantiles: each edge is an
   observed reference value). The outer edges are open (``-inf``/``+inf``), so
   every current value has a bin. Tied quantiles (a mass point such as a binary or
   zero-inflated feature) are merged, so such features get fewer, non-empty bins.
2. Both samples are mapped to the bin index (``searchsorted`` on the interior edges,
   ``side="right"``: a value equal to an edge goes to the bin above it).
3. The bin index is given to Evidently as a *categorical* column. Evidently's categorical
   PSI takes the share of each category in each sample, so its PSI equals the
   quantile-binned PSI ``sum((a - e) * ln(a / e))`` exactly.

Empty bins: Evidently replaces a zero share by ``min(non-zero shares) / 1e6`` when that
minimum is <= 1e-4, else by 1e-4, separately for each sample
(``evidently.legacy.calculations.stattests.utils.get_binned_data``). :func:`fill_empty`
reproduces that rule, so the numpy PSI here and Evidently's agree to float precision.
A bin empty in *both* samples is not a category Evidently sees, and contributes 0 here.

Missing values
--------------
NaN, and +-inf (Evidently would treat infinities as missing too), form their own bin,
:data:`MISSING_BIN`. A feature whose missing share changes is therefore drift, as it
should be (a data source that stops delivering shows up). A feature that is missing
throughout both samples has PSI 0. A feature with no finite reference value has no edges:
every finite value falls into the single bin 0, so PSI measures the change in the missing
share.

Everything here is pure (arrays / frames in, numbers out); :func:`evidently_psi` is the
only function that touches Evidently, and it imports it lazily (a 2 s import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: bin index used for NaN / +-inf values
MISSING_BIN = -1

LEVEL_NONE, LEVEL_MINOR, LEVEL_MAJOR = "none", "minor", "major"


def psi_level(value: float, minor: float = 0.1, major: float = 0.2) -> str:
    """``none`` below ``minor``; ``minor`` from ``minor`` up to and including ``major``;
    ``major`` strictly above ``major`` (the issue's "PSI > 0.2: major drift")."""
    if not np.isfinite(value):
        return LEVEL_MAJOR
    if value > major:
        return LEVEL_MAJOR
    if value >= minor:
        return LEVEL_MINOR
    return LEVEL_NONE


def quantile_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior edges (sorted, unique) of ``n_bins`` quantile bins of the finite reference values."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    x = np.asarray(reference, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    # inverted_cdf: every edge is an observed reference value (no interpolation), so a
    # discrete feature never gets an artificial edge between two of its values.
    qs = np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="inverted_cdf")
    return np.unique(qs)


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value (0..len(edges)); :data:`MISSING_BIN` for NaN / +-inf."""
    x = np.asarray(values, dtype=np.float64)
    codes = np.searchsorted(edges, x, side="right").astype(np.int64)
    codes[~np.isfinite(x)] = MISSING_BIN
    return codes


@dataclass
class QuantileBinner:
    """Learns per-feature quantile edges from a reference frame; maps frames to bin codes.

    scikit-learn style: parameters in ``__init__``, learned state ``edges_`` / ``columns_``.
    """

    n_bins: int = 10

    def fit(self, reference: pd.DataFrame) -> "QuantileBinner":
        self.columns_: list[str] = [str(c) for c in reference.columns]
        self.edges_: dict[str, np.ndarray] = {
            c: quantile_edges(reference[c].to_numpy(dtype=np.float64, na_value=np.nan), self.n_bins)
            for c in self.columns_
        }
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "edges_"):
            raise RuntimeError("QuantileBinner is not fitted; call fit(reference) first")
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks {len(missing)} reference feature(s), e.g. {missing[:5]}")
        return pd.DataFrame(
            {c: bin_codes(frame[c].to_numpy(dtype=np.float64, na_value=np.nan), self.edges_[c]) for c in self.columns_},
            index=frame.index,
        )


def fill_empty(shares: np.ndarray) -> np.ndarray:
    """Evidently's replacement for zero shares (see the module docstring)."""
    out = np.asarray(shares, dtype=np.float64).copy()
    nonzero = out[out != 0]
    if nonzero.size == 0:
        raise ValueError("cannot compute PSI of an empty sample")
    m = nonzero.min()
    out[out == 0] = m / 1e6 if m <= 1e-4 else 1e-4
    return out


def psi_from_counts(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    """PSI of two count vectors over the same bins: ``sum((a - e) * ln(a / e))``.

    Bins empty in both are dropped (Evidently never sees them); remaining zero shares
    are filled as Evidently fills them.
    """
    e = np.asarray(expected_counts, dtype=np.float64)
    a = np.asarray(actual_counts, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError("count vectors must have the same shape")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("cannot compute PSI of an empty sample")
    keep = (e > 0) | (a > 0)
    e_share = fill_empty(e[keep] / e.sum())
    a_share = fill_empty(a[keep] / a.sum())
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _counts(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Counts per code, the missing bin first (index 0), then bins 0..n_codes-1."""
    return np.bincount(np.asarray(codes, dtype=np.int64) + 1, minlength=n_codes + 1)


def psi_codes(ref_codes: pd.DataFrame, cur_codes: pd.DataFrame) -> pd.Series:
    """Numpy PSI per column of two bin-code frames (as produced by :class:`QuantileBinner`)."""
    out = {}
    for c in ref_codes.columns:
        r = ref_codes[c].to_numpy()
        k = cur_codes[c].to_numpy()
        n_codes = int(max(r.max(initial=0), k.max(initial=0))) + 1
        out[c] = psi_from_counts(_counts(r, n_codes), _counts(k, n_codes))
    return pd.Series(out, dtype=np.float64, name="psi")


def numpy_psi(reference: pd.DataFrame, current: pd.DataFrame, n_bins: int = 10) -> pd.Series:
    """Quantile-binned PSI per feature in plain numpy (the benchmark baseline and cross-check)."""
    binner = QuantileBinner(n_bins).fit(reference)
    return psi_codes(binner.transform(reference), binner.transform(current))


def evidently_psi(ref_codes: pd.DataFrame, cur_codes: pd.DataFrame) -> tuple[pd.Series, Any]:
    """PSI per column computed by Evidently over bin codes given as categorical columns.

    Returns ``(psi, snapshot)``; ``snapshot.save_html(path)`` writes Evidently's report.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    cols = [str(c) for c in ref_codes.columns]
    if not cols:
        return pd.Series(dtype=np.float64, name="psi"), None
    definition = DataDefinition(categorical_columns=cols, numerical_columns=[])
    report = Report([ValueDrift(column=c, method="psi") for c in cols])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur_codes.reset_index(drop=True), data_definition=definition),
        reference_data=Dataset.from_pandas(ref_codes.reset_index(drop=True), data_definition=definition),
    )
    values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        column = metric.get("config", {}).get("column")
        if column in ref_codes.columns:
            values[column] = float(metric["value"])
    missing = [c for c in cols if c not in values]
    if missing:  # pragma: no cover - would mean Evidently changed its snapshot layout
        raise RuntimeError(f"Evidently returned no PSI for {missing[:5]}")
    return pd.Series([values[c] for c in cols], index=cols, dtype=np.float64, name="psi"), snapshot
