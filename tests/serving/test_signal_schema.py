"""One signal record everywhere: the builder, the validator, and the outputs of ``generate --json``
and the Redis mirror (the model server's response is checked in tests/serving/test_serve.py)."""

from __future__ import annotations

import json
import sys

import pytest

from signals.serving.schema import SIGNAL_SCHEMA, signal_record, valid_until_iso, validate_record


def _record(**over):
    base = dict(model_name="signals-xgb", model_version="3", symbol="AAPL", as_of="2013-03-01", horizon=5,
                threshold=0.55, p_down=0.1, p_flat=0.2, p_up=0.7, predicted_class=2, confidence=0.7,
                signal="LONG", reason=None)
    return signal_record(**{**base, **over})


def test_the_builder_writes_a_valid_timezone_aware_record():
    rec = _record()
    assert validate_record(rec) == []
    assert list(rec) == SIGNAL_SCHEMA["required"]
    assert rec["as_of"] == "2013-03-01T00:00:00+00:00" and rec["predicted_class"] == "UP"
    assert rec["valid_until"] == "2013-03-08T00:00:00+00:00"  # Friday + 5 trading days (weekdays)
    assert valid_until_iso("2013-03-01", None) is None
    assert json.loads(json.dumps(rec)) == rec


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"signal": "FLAT"}, "signal='FLAT' not one of"),
        ({"predicted_class": 1, "signal": "NONE", "reason": None}, "signal NONE needs a reason"),
        ({"reason": "because"}, "a trade has reason null"),
        ({"p_up": 1.5}, "p_up=1.5 out of range"),
        ({"confidence": float("nan")}, "not finite"),
        ({"as_of": "2013-03-01T00:00:00"}, "has no timezone offset"),
        ({"horizon": "5"}, "horizon='5' is not integer or null"),
    ],
)
def test_the_validator_names_what_is_wrong(change, problem):
    rec = {**_record(), **change}
    assert any(problem in e for e in validate_record(rec)), validate_record(rec)
    assert validate_record({k: v for k, v in _record().items() if k != "threshold"}) == ["missing threshold"]


@pytest.mark.integration
def test_generate_json_and_redis_records_follow_the_schema(tmp_path, monkeypatch, capsys, redis_server_url, redis_prefix):
    from signals.adapters.mirror import Mirror
    from signals.cli import main
    from tests.monitoring.support import shared_env

    env = shared_env()
    monkeypatch.chdir(env.workdir)
    for k, v in dict(SA_MLFLOW__TRACKING_URI=env.settings.mlflow.tracking_uri, SA_REDIS__ENABLED="true",
                     SA_REDIS__URL=redis_server_url, SA_REDIS__PREFIX=redis_prefix,
                     SA_FEATURES__CACHE_DIR=env.settings.features.cache_dir, SA_ML__CONFIDENCE_THRESHOLD="0.4").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["signals", "generate", "--as-of", "2012-06-29", "--json"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["published"] == 4
    printed = {r["symbol"]: r for r in doc["signals"]}
    assert set(printed) == {"AAPL", "GOOG", "IBM", "MSFT"}  # every symbol, NONE ones too
    for rec in printed.values():
        assert validate_record(rec) == [], rec
        assert rec["model_name"] == "signals-xgb" and rec["model_version"] == env.champion.version_id

    settings = env.with_settings(redis={"enabled": True, "url": redis_server_url, "prefix": redis_prefix})
    mirrored = Mirror.from_settings(settings).latest_signals()
    assert set(mirrored) == set(printed)
    for sym, rec in mirrored.items():
        assert validate_record(rec) == [], rec
        assert {k: rec[k] for k in SIGNAL_SCHEMA["required"]} == printed[sym]  # the same record
        assert rec["published_at"].endswith("+00:00")


def test_the_served_models_column_wise_records_equal_the_builder():
    import numpy as np
    import pandas as pd

    from signals.serving.predictor import proba_to_frame
    from signals.serving.pyfunc import _as_of_column, records_frame

    p = np.random.default_rng(0).dirichlet([1, 1, 1], 50)
    out = proba_to_frame(p, 0.5, guard=[None] * 49 + ["insufficient_history"])
    days = ["2013-03-01", "2013-03-04"] * 24 + [None, "2013-03-05"]
    frame = records_frame(out, model_name="m", model_version="2", symbols=[f"S{i}" for i in range(50)],
                          as_of=_as_of_column(pd.DataFrame({"as_of": days})), horizon=5, threshold=0.5)
    for i, rec in enumerate(frame.to_dict("records")):
        o = out.iloc[i]
        assert rec == signal_record(model_name="m", model_version="2", symbol=f"S{i}", as_of=days[i], horizon=5,
                                    threshold=0.5, p_down=o.p_down, p_flat=o.p_flat, p_up=o.p_up,
                                    predicted_class=int(o.predicted_class), confidence=o.confidence,
                                    signal=o.signal, reason=o.reason)
        assert validate_record(rec) == []
    assert records_frame(out.head(0), model_name="m", model_version="2", symbols=None, as_of=None, horizon=5,
                         threshold=0.5).empty
