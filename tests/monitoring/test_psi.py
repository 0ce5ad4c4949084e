"""PSI: quantile binning, Evidently's empty-bin rule, NaN policy, levels; Evidently == hand == numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from signals.monitoring.psi import (
    MISSING_BIN,
    QuantileBinner,
    bin_codes,
    evidently_psi,
    fill_empty,
    numpy_psi,
    psi_codes,
    psi_from_counts,
    psi_level,
    quantile_edges,
)


def hand_psi(expected: list[float], actual: list[float]) -> float:
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual))


def test_quantile_edges_and_codes_on_a_hand_checkable_sample():
    ref = np.arange(100, dtype=float)  # 0..99
    edges = quantile_edges(ref, 4)
    np.testing.assert_allclose(edges, [24.0, 49.0, 74.0])  # observed values, no interpolation
    codes = bin_codes(np.array([-5.0, 24.0, 30.0, 99.0, 1e9, np.nan, np.inf, -np.inf]), edges)
    # equal-to-edge goes up; beyond the reference range stays in the outer bins; non-finite -> missing
    assert codes.tolist() == [0, 1, 1, 3, 3, MISSING_BIN, MISSING_BIN, MISSING_BIN]


def test_tied_quantiles_are_merged_for_mass_points():
    ref = np.array([0.0] * 70 + [1.0] * 30)
    edges = quantile_edges(ref, 10)
    assert edges.tolist() == [0.0, 1.0]
    assert np.bincount(bin_codes(ref, edges), minlength=3).tolist() == [0, 70, 30]


def test_fill_empty_follows_evidently_rule():
    # smallest non-zero share above 1e-4 -> zeros become 1e-4
    np.testing.assert_allclose(fill_empty(np.array([0.5, 0.5, 0.0])), [0.5, 0.5, 1e-4])
    # smallest non-zero share <= 1e-4 -> zeros become min / 1e6
    np.testing.assert_allclose(fill_empty(np.array([1e-4, 1 - 1e-4, 0.0])), [1e-4, 1 - 1e-4, 1e-10])
    with pytest.raises(ValueError):
        fill_empty(np.zeros(3))


def test_psi_from_counts_matches_hand_formula_with_an_empty_bin():
    e_counts = [25, 25, 25, 25]
    a_counts = [50, 30, 20, 0]
    expected = [0.25, 0.25, 0.25, 0.25]
    actual = [0.5, 0.3, 0.2, 1e-4]  # empty bin filled with Evidently's epsilon
    assert psi_from_counts(e_counts, a_counts) == pytest.approx(hand_psi(expected, actual), rel=1e-12)
    # a bin empty in both samples contributes nothing
    assert psi_from_counts([25, 25, 0, 50], [30, 20, 0, 50]) == pytest.approx(
        hand_psi([0.25, 0.25, 0.5], [0.3, 0.2, 0.5]), rel=1e-12
    )
    assert psi_from_counts([1, 2, 3], [1, 2, 3]) == 0.0


def _hand_case() -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Reference 0..99 in 4 quantile bins; current with known bin shares, an empty bin and NaNs."""
    ref = pd.DataFrame({"x": np.arange(100, dtype=float)})
    # reference 0..99 -> bin shares .24, .25, .25, .26
    # bins: [<24]=10, [24,49)=20, [49,74)=0, [>=74]=50, missing=20  (n=100)
    cur_values = [1.0] * 10 + [30.0] * 20 + [80.0] * 50 + [np.nan] * 20
    cur = pd.DataFrame({"x": cur_values})
    # shares, missing bin first: ref (0, .24, .25, .25, .26); cur (.2, .1, .2, 0, .5)
    # ref's empty missing bin and cur's empty bin 2 -> 1e-4 (min non-zero shares are > 1e-4)
    expected = [1e-4, 0.24, 0.25, 0.25, 0.26]
    actual = [0.2, 0.1, 0.2, 1e-4, 0.5]
    return ref, cur, hand_psi(expected, actual)


def test_numpy_psi_matches_hand_computation():
    ref, cur, hand = _hand_case()
    assert numpy_psi(ref, cur, n_bins=4)["x"] == pytest.approx(hand, rel=1e-12)


def test_evidently_psi_over_bin_categories_equals_hand_computation():
    ref, cur, hand = _hand_case()
    binner = QuantileBinner(4).fit(ref)
    psi, snapshot = evidently_psi(binner.transform(ref), binner.transform(cur))
    assert psi["x"] == pytest.approx(hand, rel=1e-9)
    assert snapshot is not None


def test_evidently_and_numpy_agree_on_many_features_including_nan_policy():
    rng = np.random.default_rng(7)
    n = 2000
    ref = pd.DataFrame(
        {
            "normal": rng.normal(size=n),
            "fat": rng.standard_t(1.5, size=n),
            "binary": rng.integers(0, 2, size=n).astype(float),
            "all_nan": np.full(n, np.nan),
            "some_nan": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "ref_nan_only": np.full(n, np.nan),
        }
    )
    cur = pd.DataFrame(
        {
            "normal": rng.normal(0.3, 1.0, size=500),
            "fat": rng.standard_t(1.5, size=500) + 0.5,
            "binary": (rng.random(500) < 0.7).astype(float),
            "all_nan": np.full(500, np.nan),
            "some_nan": np.where(rng.random(500) < 0.4, np.nan, rng.normal(size=500)),
            "ref_nan_only": rng.normal(size=500),
        }
    )
    binner = QuantileBinner(10).fit(ref)
    ev, _ = evidently_psi(binner.transform(ref), binner.transform(cur))
    np_ = psi_codes(binner.transform(ref), binner.transform(cur))
    pd.testing.assert_series_equal(ev, np_, rtol=1e-9, check_names=False)
    assert ev["all_nan"] == 0.0  # missing throughout both: no drift
    assert ev["some_nan"] > 0.1  # missing share 10% -> 40% is drift
    assert ev["ref_nan_only"] > 1.0  # a feature that starts to have values is drift


def test_quantile_binning_sees_drift_that_evidentlys_equal_width_bins_hide():
    """A fat tail (one extreme reference value) squeezes Evidently's equal-width bins; a
    shift of the bulk then goes unseen. Reference-quantile bins see it."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": np.append(rng.normal(size=5000), 1e4)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1.0, size=1000)})
    definition = DataDefinition(numerical_columns=["x"], categorical_columns=[])
    raw = Report([ValueDrift(column="x", method="psi")]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    raw_psi = float(raw.dict()["metrics"][0]["value"])
    robust = numpy_psi(ref, cur, n_bins=10)["x"]
    assert raw_psi < 0.1
    assert robust > 0.2


def test_identical_samples_have_zero_psi():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.exponential(size=1000)})
    assert numpy_psi(ref, ref, 10).abs().max() == pytest.approx(0.0, abs=1e-15)


def test_binner_rejects_missing_columns_and_unfitted_use():
    with pytest.raises(RuntimeError):
        QuantileBinner(10).transform(pd.DataFrame({"a": [1.0]}))
    binner = QuantileBinner(10).fit(pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="lacks 1 reference feature"):
        binner.transform(pd.DataFrame({"a": [1.0]}))


@pytest.mark.parametrize(
    "value,level",
    [(0.0, "none"), (0.0999, "none"), (0.1, "minor"), (0.2, "minor"), (0.2001, "major"), (float("nan"), "major")],
)
def test_psi_levels(value: float, level: str):
    assert psi_level(value, 0.1, 0.2) == level
