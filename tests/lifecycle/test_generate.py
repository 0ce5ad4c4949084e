"""``signals generate`` against a real registered champion: replay without lookahead, the
predictions log, the Redis mirror and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.support import shared_env

pytestmark = pytest.mark.integration


@pytest.fixture
def env(monkeypatch):
    e = shared_env()
    monkeypatch.chdir(e.workdir)
    return e


def test_replay_logs_every_prediction_and_each_date_sees_only_its_past(env, tmp_path):
    from signals.lifecycle.generate import run_generate
    from signals.monitoring.predictions_log import PredictionsLog

    path = tmp_path / "predictions.parquet"
    sink: list = []
    signals = run_generate(env.settings, as_of="2012-06-30", replay_days=9, predictions_path=path, publish=False, outcome=sink)
    out = sink[0]
    assert out.as_of == pd.Timestamp("2012-06-29")  # a Saturday resolves to the Friday before
    assert len(out.dates) == 10 and out.dates[-1] == out.as_of
    logged = PredictionsLog(path).read()
    assert len(logged) == 40 and set(logged["symbol"]) == {"AAPL", "GOOG", "IBM", "MSFT"}
    assert (logged["model_version"] == env.champion.version_id).all()
    assert logged["replay"].sum() == 36 and not logged["in_sample"].any()  # after the model's train_end
    np.testing.assert_allclose(logged[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)
    for s in signals:
        assert pd.Timestamp(s.timestamp) == out.as_of and s.strength > 0.40 and s.direction.value in ("LONG", "SHORT")

    # Replaying 2012-06-22 inside a run as of 2012-06-29 gives exactly what a run as of 06-22 gives.
    single: list = []
    run_generate(env.settings, as_of="2012-06-22", predictions_path=tmp_path / "other.parquet", publish=False, outcome=single)
    a = logged[logged["date"] == "2012-06-22"].reset_index(drop=True)
    b = single[0].predictions.reset_index(drop=True)
    pd.testing.assert_frame_equal(a[["symbol", "p_down", "p_flat", "p_up"]], b[["symbol", "p_down", "p_flat", "p_up"]])

    # Re-running a date replaces its rows instead of double counting them.
    run_generate(env.settings, as_of="2012-06-29", predictions_path=path, publish=False)
    assert len(PredictionsLog(path).read()) == 40


def test_serving_features_cut_at_as_of_equal_the_training_features(env):
    """The strategy cuts bars, market data and event tables at the as-of date; the feature store
    computes on full history. If features are point-in-time, the two rows are identical."""
    from signals.data import get_provider
    from signals.features import FeatureStore
    from signals.serving.pyfunc import load_predictor
    from signals.trading.strategy import MLSignalStrategy

    provider = get_provider(env.settings)
    strat = MLSignalStrategy(provider, env.settings, predictor=load_predictor(env.champion.path), model_version="x")
    day = pd.Timestamp("2010-03-31")
    served = strat.feature_rows({s: provider.bars(s).loc[:day] for s in provider.symbols()})
    stored = FeatureStore.from_settings(env.settings).get_features(provider.symbols(), day, day, provider)
    pd.testing.assert_frame_equal(served.sort_index(), stored.sort_index(), check_exact=False, rtol=1e-9, check_names=False)


def test_signals_are_published_to_redis(env, tmp_path, redis_server_url, redis_prefix):
    from signals.adapters.mirror import Mirror
    from signals.lifecycle.generate import run_generate

    settings = env.with_settings(redis={"enabled": True, "url": redis_server_url, "prefix": redis_prefix})
    sink: list = []
    run_generate(settings, as_of="2012-06-29", predictions_path=tmp_path / "p.parquet", outcome=sink)
    assert sink[0].published == 4
    latest = Mirror.from_settings(settings).latest_signals()
    assert set(latest) == {"AAPL", "GOOG", "IBM", "MSFT"}  # every symbol, FLAT included
    today = sink[0].predictions.set_index("symbol")
    for sym, sig in latest.items():
        assert sig["signal"] == today.loc[sym, "signal"]
        assert sig["as_of"] == "2012-06-29T00:00:00+00:00" and sig["model_version"] == env.champion.version_id


def _cli(monkeypatch, capsys, env, *args):
    from signals.cli import main

    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", env.settings.mlflow.tracking_uri)
    monkeypatch.setenv("SA_FEATURES__CACHE_DIR", env.settings.features.cache_dir)
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    monkeypatch.setenv("SA_ML__CONFIDENCE_THRESHOLD", "0.4")
    monkeypatch.setattr(sys, "argv", ["signals", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_generate_json_and_clear_errors(env, monkeypatch, capsys):
    code, out, _ = _cli(monkeypatch, capsys, env, "generate", "--as-of", "2012-06-29", "--json", "--no-publish")
    assert code == 0
    doc = json.loads(out)
    assert doc["as_of"] == "2012-06-29" and doc["predictions_logged"] == 4 and doc["model_version"] == env.champion.version_id
    assert (env.workdir / "data" / "predictions" / "predictions.parquet").exists()

    code, out, _ = _cli(monkeypatch, capsys, env, "generate", "--as-of", "2012-06-29", "--no-publish")
    assert code == 0 and "as of 2012-06-29" in out and "AAPL" in out

    code, _, err = _cli(monkeypatch, capsys, env, "generate", "-s", "NOPE", "--no-publish")
    assert code == 1 and "unknown symbol 'NOPE'" in err

    code, _, err = _cli(monkeypatch, capsys, env, "generate", "--as-of", "1990-01-02", "--no-publish")
    assert code == 1 and "before the data starts" in err

    monkeypatch.setenv("SA_MLFLOW__MODEL_NAME", "no-such-model")
    code, _, err = _cli(monkeypatch, capsys, env, "generate", "--no-publish")
    assert code == 1 and "no champion model" in err
