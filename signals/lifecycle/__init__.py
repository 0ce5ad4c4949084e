"""The lifecycle steps: one module per step (features, tune, train, register, promote, rollback,
monitor, generate, backtest) and the whole run (``run``). They open MLflow runs, wire the
adapters in and call the library; the CLI and the MLproject entry points call them."""
