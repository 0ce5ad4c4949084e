"""Bad-input corpus, prediction and serving side (issue 13.8): every case asserts the status or exit
code, that the message names the problem, and that nothing is left behind (no trade, no file).

The data/config/cache side of the corpus lives in tests/bad_input/.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.support import shared_env

pytestmark = pytest.mark.integration

AS_OF = "2012-06-29"


@pytest.fixture
def env(monkeypatch):
    e = shared_env()
    monkeypatch.chdir(e.workdir)
    return e


class NewListing:
    """The sample provider, except that ``symbol`` has only its last ``n`` bars (a new listing)."""

    def __init__(self, provider, symbol: str = "AAPL", n: int = 3):
        self._p, self.symbol, self.n = provider, symbol, n

    def bars(self, symbol, start=None, end=None):
        frame = self._p.bars(symbol, start, end)
        return frame.loc[:AS_OF].tail(self.n) if symbol == self.symbol else frame

    def __getattr__(self, name):
        return getattr(self._p, name)


def test_generate_gives_a_new_listing_none_with_a_warning(env, tmp_path, caplog):
    from signals.data import get_provider
    from signals.lifecycle.generate import run_generate
    from signals.monitoring.predictions_log import PredictionsLog
    from signals.serving.schema import validate_record

    sink: list = []
    with caplog.at_level(logging.WARNING, logger="signals"):
        signals = run_generate(env.settings, as_of=AS_OF, provider=NewListing(get_provider(env.settings)),
                               predictions_path=tmp_path / "p.parquet", publish=False, outcome=sink)
    out = sink[0]
    aapl = next(r for r in out.records if r["symbol"] == "AAPL")
    assert aapl["signal"] == "NONE" and aapl["reason"] == "insufficient_history"
    assert 0 <= aapl["p_up"] <= 1  # probabilities are still reported
    assert "AAPL" not in {s.symbol for s in signals}  # no trade
    assert {r["symbol"] for r in out.records} == {"AAPL", "GOOG", "IBM", "MSFT"}  # every symbol
    assert all(validate_record(r) == [] for r in out.records)
    assert any("AAPL" in m and "insufficient_history" in m for m in caplog.messages)
    assert out.guarded == {"AAPL": "insufficient_history"}
    logged = PredictionsLog(tmp_path / "p.parquet").read().set_index("symbol")
    assert logged.loc["AAPL", "direction"] == "NONE"


def test_strategy_never_trades_a_three_bar_listing(env):
    from signals.data import get_provider
    from signals.serving.pyfunc import load_predictor
    from signals.trading.strategy import MLSignalStrategy, bars_to_frame, frame_to_bars

    provider = get_provider(env.settings)
    strat = MLSignalStrategy(provider, env.settings.model_copy(
        update={"ml": env.settings.ml.model_copy(update={"confidence_threshold": 0.0})}),
        predictor=load_predictor(env.champion.path), model_version="x")
    bars = {"AAPL": frame_to_bars(provider.bars("AAPL").loc[:AS_OF].tail(3)),
            "MSFT": frame_to_bars(provider.bars("MSFT").loc[:AS_OF])}
    preds = strat.predict_frames({s: bars_to_frame(b) for s, b in bars.items()}).set_index("symbol")
    assert preds.loc["AAPL", "signal"] == "NONE" and preds.loc["AAPL", "reason"] == "insufficient_history"
    signals = strat.generate_signals(bars)
    assert [s.symbol for s in signals] == ["MSFT"]  # threshold 0: every judged row trades, AAPL does not
