"""The prediction guard: rows the model cannot judge get signal NONE and a reason, never a trade."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from signals.serving.guard import (
    DEFAULT_MIN_COVERAGE,
    REASON_INSUFFICIENT_HISTORY,
    FeatureCoverage,
    check_rows,
)
from signals.serving.predictor import SignalPredictor, decide

HIST = ["dist_52w_high", "dist_52w_low", "price_vs_sma_200"]
OTHER = [f"f{i}" for i in range(20)]
NAMES = OTHER + HIST + ["sparse"]


def _training(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, len(NAMES))), columns=NAMES)
    x.loc[: n // 10, HIST] = np.nan  # warm-up rows: 10 % without the long windows
    x.loc[rng.random(n) < 0.6, "sparse"] = np.nan  # a feature usually missing in training
    return x


@pytest.fixture(scope="module")
def predictor() -> SignalPredictor:
    import xgboost as xgb

    x = _training()
    y = np.random.default_rng(1).integers(0, 3, len(x))
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1, "seed": 0},
                        xgb.DMatrix(x.to_numpy(np.float32), label=y), 5)
    return SignalPredictor(booster, None, NAMES, 0.0, metadata={"prediction_horizon": 5},
                           coverage=FeatureCoverage.from_training(x))


def test_coverage_records_what_training_saw() -> None:
    cov = FeatureCoverage.from_training(_training())
    assert cov.present_share["f0"] == 1.0 and cov.present_share["sparse"] < 0.5
    assert set(cov.required) == set(OTHER)  # the long windows are 90 % present: a history check, not required
    assert set(cov.history_features) == set(HIST)
    assert cov.min_coverage == DEFAULT_MIN_COVERAGE
    back = FeatureCoverage.from_dict(json.loads(json.dumps(cov.to_dict())))
    assert back.required == cov.required and back.history_features == cov.history_features


def test_each_rule_names_its_reason() -> None:
    cov = FeatureCoverage.from_training(_training())
    good = dict.fromkeys(NAMES, 0.5)
    rows = pd.DataFrame([
        good,                                              # fine
        {**good, "sparse": np.nan},                        # missing only what training often missed: fine
        dict.fromkeys(NAMES, np.nan),                      # all null
        dict.fromkeys(NAMES, np.inf),                      # +Infinity everywhere counts as missing
        {**good, "dist_52w_high": np.nan},                 # a new listing: no 52-week window yet
        {**good, **dict.fromkeys(OTHER[:3], np.nan)},      # 3 of 20 always-present features missing (85 %)
        {**good, **dict.fromkeys(OTHER[:2], -np.inf)},     # 2 of 20 missing (90 %): still allowed
        {**good, **dict.fromkeys(OTHER[:12], np.nan)},     # many missing: the list is truncated
    ])
    reasons = check_rows(rows, NAMES, cov)
    assert reasons[0] is None and reasons[1] is None
    assert reasons[2] == reasons[3] == f"missing_features: all {len(NAMES)}"
    assert reasons[4] == REASON_INSUFFICIENT_HISTORY
    assert reasons[5] == "missing_features: f0, f1, f2"
    assert reasons[6] is None
    assert reasons[7] == "missing_features: f0, f1, f2, f3, f4 (+7 more)"
    assert check_rows(rows.iloc[[6]], NAMES, cov, min_coverage=0.95) == ["missing_features: f0, f1"]


def test_an_artifact_without_coverage_only_rejects_all_missing_rows() -> None:
    good = dict.fromkeys(NAMES, 0.5)
    rows = pd.DataFrame([good, {**good, "dist_52w_high": np.nan, **dict.fromkeys(OTHER, np.nan)},
                         dict.fromkeys(NAMES, None)])
    assert check_rows(rows, NAMES, None) == [None, None, f"missing_features: all {len(NAMES)}"]


def test_guarded_rows_keep_probabilities_but_never_trade(predictor: SignalPredictor) -> None:
    good = dict.fromkeys(NAMES, 0.5)
    rows = pd.DataFrame([good, dict.fromkeys(NAMES, np.nan), {**good, "price_vs_sma_200": np.nan}])
    out = predictor.predict_frame(rows)  # threshold 0: every judged row trades
    assert out.loc[0, "signal"] in ("LONG", "SHORT", "NONE") and out.loc[0, "reason"] in (None, "predicted_flat")
    assert list(out.loc[1:, "signal"]) == ["NONE", "NONE"]
    assert list(out.loc[1:, "reason"]) == [f"missing_features: all {len(NAMES)}", "insufficient_history"]
    np.testing.assert_allclose(out[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)


def test_coverage_survives_save_and_load_and_old_artifacts_still_load(predictor: SignalPredictor, tmp_path) -> None:
    predictor.save(tmp_path / "new")
    back = SignalPredictor.load_dir(tmp_path / "new")
    assert back.coverage is not None and back.coverage.required == predictor.coverage.required

    predictor.save(tmp_path / "old")
    cfg_path = tmp_path / "old" / "model_config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["coverage"]  # what a model logged before the guard existed looks like
    cfg_path.write_text(json.dumps(cfg))
    old = SignalPredictor.load_dir(tmp_path / "old")
    assert old.coverage is None
    rows = pd.DataFrame([dict.fromkeys(NAMES, np.nan), {**dict.fromkeys(NAMES, 0.5), "dist_52w_low": np.nan}])
    out = old.predict_frame(rows)
    assert out.loc[0, "signal"] == "NONE" and out.loc[0, "reason"].startswith("missing_features: all")
    assert out.loc[1, "reason"] != "insufficient_history"  # no record of history: only rules 1-2 apply


def test_the_decision_rule() -> None:
    assert decide(2, 0.56, 0.55) == ("LONG", None)
    assert decide(0, 0.56, 0.55) == ("SHORT", None)
    assert decide(1, 0.99, 0.55) == ("NONE", "predicted_flat")
    assert decide(2, 0.55, 0.55) == ("NONE", "below_threshold")  # must exceed
    assert decide(2, 0.99, 0.55, "insufficient_history") == ("NONE", "insufficient_history")


def test_bad_columns_are_named_first(predictor: SignalPredictor) -> None:
    from signals.serving.predictor import FeatureMismatchError

    frame = pd.DataFrame([dict.fromkeys(NAMES, 0.5)])
    with pytest.raises(FeatureMismatchError, match=r"^missing feature column\(s\): f3, sparse \(2 of the 24"):
        predictor.predict_frame(frame.drop(columns=["f3", "sparse"]))
    with pytest.raises(FeatureMismatchError, match=r"^non-numeric feature column\(s\): f5 \(object\)"):
        predictor.predict_frame(frame.assign(f5="x"))
