"""The predictions log (atomic Parquet, dedup on symbol/date/version) and outcome resolution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.monitoring.predictions_log import PredictionsLog, PredictionsLogError, resolve_outcomes

D = pd.bdate_range("2013-01-01", periods=12)


def _preds(dates, symbol="A", version="3", cls=2, replay=False):
    return pd.DataFrame(
        {
            "symbol": symbol,
            "date": dates,
            "model_version": version,
            "predicted_class": cls,
            "p_down": 0.1,
            "p_flat": 0.2,
            "p_up": 0.7,
            "confidence": 0.7,
            "direction": "LONG",
            "replay": replay,
        }
    )


def test_append_dedupes_and_reads_back(tmp_path):
    log = PredictionsLog(tmp_path / "p" / "predictions.parquet")
    assert log.read().empty
    assert log.append(_preds(D[:3])) == 3
    log.append(_preds(D[2:4], cls=0))  # re-run of D[2] replaces the earlier row
    log.append(_preds(D[:2], version="4"))
    df = log.read()
    assert len(df) == 6
    assert df.loc[(df["date"] == D[2]) & (df["model_version"] == "3"), "predicted_class"].tolist() == [0]
    assert len(log.read(model_version="4")) == 2
    assert log.read(end=D[1])["date"].max() == D[1]
    assert not list((tmp_path / "p").glob("*.tmp"))  # atomic writes leave no temp files
    assert df["generated_at"].notna().all()


def test_append_rejects_malformed_rows(tmp_path):
    with pytest.raises(PredictionsLogError, match="confidence"):
        PredictionsLog(tmp_path / "x.parquet").append(_preds(D[:1]).drop(columns="confidence"))


def test_resolve_outcomes_only_once_the_horizon_has_passed():
    close = pd.Series([100, 102, 100, 98, 100, 100, 100, 100, 100, 100, 100, 100], index=D, dtype=float)
    preds = _preds(D[:6])  # predicted UP every day
    r = resolve_outcomes(preds, {"A": close}, horizon=2, up_threshold=0.01, down_threshold=-0.01, as_of=D[5])
    # as of D[5], predictions at D[0..3] are resolved (D[t+2] <= D[5]); D[4], D[5] are not
    assert r["date"].tolist() == list(D[:4])
    np.testing.assert_allclose(r["forward_return"], [0.0, 98 / 102 - 1, 0.0, 100 / 98 - 1])
    assert r["actual_class"].tolist() == [1, 0, 1, 2]
    assert r["correct"].tolist() == [False, False, False, True]
    assert r["outcome_date"].tolist() == list(D[2:6])


def test_resolution_never_reads_prices_after_as_of():
    close = pd.Series(100.0, index=D)
    spiked = close.copy()
    spiked.iloc[6:] = 1000.0  # the future
    preds = _preds(D[:6])
    a = resolve_outcomes(preds, {"A": close}, horizon=2, up_threshold=0.01, down_threshold=-0.01, as_of=D[5])
    b = resolve_outcomes(preds, {"A": spiked}, horizon=2, up_threshold=0.01, down_threshold=-0.01, as_of=D[5])
    pd.testing.assert_frame_equal(a, b)


def test_resolution_skips_unknown_symbols_and_dates():
    close = pd.Series(100.0, index=D)
    preds = pd.concat([_preds(D[:2]), _preds(D[:2], symbol="B"), _preds([pd.Timestamp("2013-01-05")])])  # a Saturday
    r = resolve_outcomes(preds, {"A": close}, horizon=1, up_threshold=0.01, down_threshold=-0.01, as_of=D[-1])
    assert r["symbol"].tolist() == ["A", "A"]
    empty = resolve_outcomes(preds, {}, horizon=1, up_threshold=0.01, down_threshold=-0.01, as_of=D[-1])
    assert empty.empty and "correct" in empty.columns
