"""Modelling: the XGBoost classifier, purged walk-forward splits, Optuna tuning, calibration,
metrics, final fits and the known-signal market. No MLflow: runs are the lifecycle's business.
Submodules import their heavy dependencies (XGBoost, Optuna, scikit-learn) themselves."""
