"""From probabilities to trades: :class:`~signals.trading.strategy.MLSignalStrategy` and the
out-of-sample backtest (with the one Sharpe definition this product reports)."""
