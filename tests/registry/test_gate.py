"""The promotion gate's statistics, on synthetic holdout predictions (no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.registry.gate import (
    GateError,
    align_holdouts,
    evaluate_gate,
    paired_bootstrap_pvalue,
)


def _truth(n_symbols: int = 5, n_dates: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-02", periods=n_dates)
    frame = pd.DataFrame(
        [(s, d) for d in dates for s in [f"S{i}" for i in range(n_symbols)]], columns=["symbol", "date"]
    )
    frame["y"] = rng.integers(0, 3, size=len(frame))
    return frame


def _predictions(truth: pd.DataFrame, skill: float, seed: int) -> pd.DataFrame:
    """Probabilities putting ``skill`` extra mass on the true class (0: pure noise)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([4, 4, 4], size=len(truth))
    onehot = np.eye(3)[truth["y"].to_numpy()]
    p = (1 - skill) * p + skill * onehot
    out = truth.copy()
    out[["p_down", "p_flat", "p_up"]] = p / p.sum(axis=1, keepdims=True)
    return out


def test_clearly_better_challenger_is_promoted_with_small_p() -> None:
    truth = _truth()
    res = evaluate_gate(_predictions(truth, 0.0, 1), _predictions(truth, 0.3, 2), n_resamples=500)
    assert res.decision == "promote" and res.promote
    assert res.p_value is not None and res.p_value < 0.01
    assert res.improvement is not None and res.improvement > 0
    assert res.challenger_log_loss < res.champion_log_loss
    assert res.n_rows == len(truth) and res.n_dates == 60


def test_worse_or_identical_challenger_is_kept() -> None:
    truth = _truth()
    champ = _predictions(truth, 0.2, 1)
    worse = evaluate_gate(champ, _predictions(truth, 0.0, 2), n_resamples=300)
    assert worse.decision == "keep" and not worse.promote
    assert worse.improvement < 0 and worse.p_value > 0.5
    assert "not lower" in worse.reason
    same = evaluate_gate(champ, champ, n_resamples=300)
    assert same.decision == "keep" and same.improvement == 0.0 and same.p_value == 1.0


def test_insignificant_improvement_is_kept_and_says_why() -> None:
    truth = _truth(n_symbols=2, n_dates=60)
    # Same skill, different noise: any improvement is luck.
    for seed in range(5):
        res = evaluate_gate(_predictions(truth, 0.1, 10 + seed), _predictions(truth, 0.1, 20 + seed), n_resamples=300)
        if res.improvement > 0:
            assert res.decision == "keep", res.reason
            assert "not significant" in res.reason
            return
    pytest.fail("expected at least one lucky positive improvement among the seeds")


def test_too_few_common_rows_refuses_and_says_so() -> None:
    truth = _truth(n_symbols=5, n_dates=60)
    champ = _predictions(truth, 0.0, 1)
    chall = _predictions(truth, 0.5, 2)
    # Only 19 dates x 5 symbols = 95 common rows.
    res = evaluate_gate(champ[champ["date"] < truth["date"].unique()[19]], chall, n_resamples=100)
    assert res.decision == "insufficient_data" and not res.promote
    assert res.n_rows == 95
    assert "95" in res.reason and "100" in res.reason and "signals promote VERSION" in res.reason


def test_only_common_rows_are_compared() -> None:
    truth = _truth(n_symbols=4, n_dates=50)
    champ = _predictions(truth, 0.0, 1)
    chall = _predictions(truth, 0.4, 2)
    champ_extra = pd.concat([champ, champ.assign(symbol="ONLY_CHAMP_" + champ["symbol"])])
    chall_extra = pd.concat([chall.assign(symbol="ONLY_CHALL_" + chall["symbol"]), chall])
    res = evaluate_gate(champ_extra, chall_extra, n_resamples=100)
    assert res.n_rows == len(truth)


def _with_prior(frame: pd.DataFrame, prior=(1 / 3, 1 / 3, 1 / 3)) -> pd.DataFrame:
    out = frame.copy()
    out[["prior_down", "prior_flat", "prior_up"]] = np.tile(prior, (len(out), 1))
    return out


def test_no_champion_promotes_only_a_challenger_that_beats_the_class_prior() -> None:
    truth = _truth()
    good = evaluate_gate(None, _with_prior(_predictions(truth, 0.3, 1)), n_resamples=500)
    assert good.decision == "promote" and good.promote and good.baseline == "class_prior"
    assert good.p_value < 0.01 and "beats the class prior" in good.reason
    assert good.champion_log_loss == pytest.approx(np.log(3))  # the baseline's loss: the uniform prior
    noise = evaluate_gate(None, _with_prior(_predictions(truth, 0.0, 1)), n_resamples=500)
    assert noise.decision == "keep" and not noise.promote
    assert "stays a challenger" in noise.reason and "class prior" in noise.reason
    with pytest.raises(GateError, match="no class-prior columns"):
        evaluate_gate(None, _predictions(truth, 0.3, 1))


def test_contradicting_labels_and_missing_columns_are_errors() -> None:
    truth = _truth()
    champ = _predictions(truth, 0.1, 1)
    chall = _predictions(truth, 0.1, 2)
    chall.loc[chall.index[:3], "y"] = (chall.loc[chall.index[:3], "y"] + 1) % 3
    with pytest.raises(GateError, match="disagree on the label of 3"):
        align_holdouts(champ, chall)
    with pytest.raises(GateError, match="lack column"):
        align_holdouts(champ.drop(columns=["p_up"]), chall)
    with pytest.raises(GateError, match="repeat"):
        align_holdouts(pd.concat([champ, champ.head(1)]), chall)


def test_dates_as_strings_and_timestamps_join() -> None:
    truth = _truth(n_dates=30)
    champ = _predictions(truth, 0.1, 1)
    chall = _predictions(truth, 0.1, 2)
    chall["date"] = chall["date"].dt.strftime("%Y-%m-%d")
    assert len(align_holdouts(champ, chall)) == len(truth)


def test_bootstrap_is_seeded_and_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 1, size=400)
    assert paired_bootstrap_pvalue(d, seed=3, n_resamples=500) == paired_bootstrap_pvalue(d, seed=3, n_resamples=500)
    # Under H0 (mean 0) p-values are ~uniform: about 5% fall below 0.05.
    ps = [paired_bootstrap_pvalue(rng.normal(0, 1, size=200), seed=i, n_resamples=200) for i in range(300)]
    rejected = np.mean(np.array(ps) < 0.05)
    assert 0.01 <= rejected <= 0.11, rejected
    # A real effect is detected.
    assert paired_bootstrap_pvalue(rng.normal(0.3, 1, size=200), n_resamples=500) < 0.01


def test_date_blocks_widen_the_p_value_when_rows_share_a_date_effect() -> None:
    """Rows of one date move together: treating them as independent overstates the evidence."""
    rng = np.random.default_rng(1)
    n_dates, n_symbols = 60, 20
    date_effect = rng.normal(0.0, 1.0, size=n_dates)
    dates = np.repeat(np.arange(n_dates), n_symbols)
    d = 0.15 + date_effect[dates] + rng.normal(0, 0.1, size=len(dates))
    p_rows = paired_bootstrap_pvalue(d, n_resamples=1000, seed=0)
    p_dates = paired_bootstrap_pvalue(d, groups=dates, block=5, n_resamples=1000, seed=0)
    assert p_rows < 0.01
    assert p_dates > 5 * p_rows


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap_pvalue(np.array([]))
    with pytest.raises(ValueError):
        evaluate_gate(None, _predictions(_truth(), 0.1, 1), alpha=1.5)
