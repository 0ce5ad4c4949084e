"""Modelling: target, XGBoost pipeline, purged walk-forward, tuning, calibration, the served
model, registry and monitoring. Submodules import their heavy dependencies themselves, so
importing this package stays cheap (the served model loads it in a fresh process)."""
