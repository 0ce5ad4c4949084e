"""Helpers (no tests) for the monitor / generate integration tests: a small real champion.

The champion is a genuine logged + registered + promoted pyfunc model (XGBoost booster,
reference sample, registry alias), trained quickly on the sample data up to ``TRAIN_END`` so
the tests exercise MLflow, the registry and the pyfunc loaders for real.
"""

from __future__ import annotations

import numpy as np

TRAIN_END = "2011-12-30"


def make_champion(settings, *, train_end: str = TRAIN_END, rounds: int = 15, reference_rows: int = 3000):
    """Train, log, register and promote a small model; returns the registry's ModelVersion."""
    import os

    import mlflow
    import xgboost as xgb

    from signals.data import get_provider
    from signals.dataset import close_panel, make_target
    from signals.features import FeatureStore
    from signals.registry.client import ModelRegistry
    from signals.serving.predictor import SignalPredictor
    from signals.serving.pyfunc import log_signal_model, reference_sample

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    provider = get_provider(settings)
    syms = provider.symbols()
    feats = FeatureStore.from_settings(settings).get_features(syms, None, train_end, provider)
    closes = close_panel({s: provider.bars(s, None, train_end) for s in syms})
    y = make_target(closes, horizon=settings.ml.prediction_horizon, up_threshold=settings.ml.up_threshold,
                    down_threshold=settings.ml.down_threshold).reindex(feats.index)
    keep = y.notna().to_numpy()
    X, yk = feats[keep], y[keep].astype(int)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0},
        xgb.DMatrix(X.to_numpy(np.float32), label=yk.to_numpy()),
        num_boost_round=rounds,
    )
    from signals.serving.guard import FeatureCoverage

    predictor = SignalPredictor(booster, None, list(X.columns), settings.ml.confidence_threshold,
                                metadata={"prediction_horizon": settings.ml.prediction_horizon},
                                coverage=FeatureCoverage.from_training(X))
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="test-champion") as run:
        info = log_signal_model(predictor, reference=reference_sample(X, reference_rows))
    reg = ModelRegistry.from_settings(settings, mirror=False)
    first, last = X.index.get_level_values("date").min(), X.index.get_level_values("date").max()
    mv = reg.register(None, info.model_uri, {"accuracy": 0.5}, run_id=run.info.run_id,
                      tags={"train_start": str(first.date()), "train_end": str(last.date())})
    reg.promote(mv.version_id, reason="test")
    return reg.get_active()


class Env:
    """A working directory with a SQLite MLflow store, a warm feature cache and a champion."""

    def __init__(self, workdir, settings, champion):
        self.workdir = workdir
        self.settings = settings
        self.champion = champion

    def with_settings(self, **sections):
        """Settings with some sections updated (e.g. redis=..., ml=..., alerts=...)."""
        update = {k: getattr(self.settings, k).model_copy(update=v) for k, v in sections.items()}
        return self.settings.model_copy(update=update)


_ENV: Env | None = None


def shared_env() -> Env:
    """Built once per test process (an MLflow SQLite store costs ~6 s to create, the champion
    a few more); tests using it isolate their own outputs (predictions path, Redis prefix,
    run ids) instead of relying on an empty store."""
    global _ENV
    if _ENV is None:
        import atexit
        import os
        import shutil
        import tempfile
        from pathlib import Path

        from signals.settings.model import load_settings
        from tests.conftest import REPO_ROOT

        workdir = Path(tempfile.mkdtemp(prefix="signals-monitor-it-"))
        atexit.register(shutil.rmtree, workdir, True)
        settings = load_settings(
            REPO_ROOT / "config" / "settings.yaml",
            mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
            features={"cache_dir": str(workdir / "features"), "n_jobs": 1},
            redis={"enabled": False},
            ml={"confidence_threshold": 0.40},  # the small test model is rarely more confident than 0.55
        )
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            champion = make_champion(settings)
        finally:
            os.chdir(cwd)
        _ENV = Env(workdir, settings, champion)
    return _ENV
