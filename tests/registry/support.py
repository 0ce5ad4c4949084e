"""Shared builders for the registry / mirror / serving tests (no tests here).

A session-wide *template* MLflow store holds a few training runs, each with a tiny real served
model (XGBoost booster + calibrator, logged with ``log_signal_model``) and a synthetic
``holdout_predictions.parquet`` of controlled quality. Each test copies only the SQLite file
into its own directory (artifact locations are absolute, so the copies share the read-only
artifacts), which keeps registry tests around a second each.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
N_FEATURES = 8
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def make_features(n: int, seed: int = 0, n_features: int = N_FEATURES) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, n_features)), columns=[f"f{i}" for i in range(n_features)])


def make_predictor(seed: int = 0, n_features: int = N_FEATURES, n_rows: int = 800, rounds: int = 15) -> tuple[Any, pd.DataFrame]:
    """A small real SignalPredictor (booster + sigmoid calibrator) and its training features."""
    import xgboost as xgb

    from signals.modeling.calibration import ConfidenceCalibrator
    from signals.serving.guard import FeatureCoverage
    from signals.serving.predictor import SignalPredictor

    x = make_features(n_rows, seed, n_features)
    signal = x["f0"] + 0.5 * x["f1"] + np.random.default_rng(seed + 1).normal(0, 0.5, n_rows)
    y = np.where(signal > 0.5, 2, np.where(signal < -0.5, 0, 1))
    fit, cal = slice(0, n_rows * 3 // 4), slice(n_rows * 3 // 4, n_rows)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "seed": seed, "nthread": 1},
        xgb.DMatrix(x.iloc[fit], label=y[fit]),
        rounds,
    )
    calibrator = ConfidenceCalibrator("sigmoid").fit(booster.inplace_predict(x.iloc[cal].to_numpy(np.float32)), y[cal])
    predictor = SignalPredictor(booster, calibrator, list(x.columns), confidence_threshold=0.55,
                                metadata={"prediction_horizon": 5}, coverage=FeatureCoverage.from_training(x))
    return predictor, x


def make_holdout(skill: float, seed: int, n_symbols: int = 5, n_dates: int = 60, start: str = "2024-01-02") -> pd.DataFrame:
    """Holdout predictions in the training step's shape; ``skill`` shifts mass onto the true class."""
    truth_rng = np.random.default_rng(1234)  # same labels for every model: same target definition
    dates = pd.bdate_range(start, periods=n_dates)
    frame = pd.DataFrame(
        [(s, d) for d in dates for s in [f"S{i}" for i in range(n_symbols)]], columns=["symbol", "date"]
    )
    frame["y"] = truth_rng.integers(0, 3, size=len(frame))
    p = np.random.default_rng(seed).dirichlet([4, 4, 4], size=len(frame))
    p = (1 - skill) * p + skill * np.eye(3)[frame["y"].to_numpy()]
    frame[["p_down", "p_flat", "p_up"]] = p / p.sum(axis=1, keepdims=True)
    frame[["prior_down", "prior_flat", "prior_up"]] = 1 / 3  # labels are uniform: the class prior
    return frame


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    model_uri: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Template:
    db: Path
    runs: dict[str, TrainedRun]
    features: pd.DataFrame
    experiment_id: str


# name -> (holdout skill, holdout seed, number of dates or None for "no holdout artifact")
TEMPLATE_RUNS = {
    "base": (0.05, 1, 60),
    "better": (0.40, 2, 60),
    "worse": (0.00, 3, 60),
    "short": (0.60, 4, 19),  # 19 dates x 5 symbols = 95 common rows (< 100)
    "noholdout": (0.0, 5, None),
}


def build_template(root: Path) -> Template:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from signals.modeling.metrics import accuracy, log_loss
    from signals.serving.pyfunc import log_signal_model

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("signals", artifact_location=(root / "mlruns").as_uri())
    predictor, features = make_predictor()
    runs: dict[str, TrainedRun] = {}
    with tracking_utils._use_tracking_uri(uri):  # log_signal_model needs a fluent run
        for name, (skill, seed, n_dates) in TEMPLATE_RUNS.items():
            with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{name}") as run:
                mlflow.log_params({"train_start": "2020-01-01", "train_end": "2023-12-29", "holdout_start": "2024-01-02"})
                mlflow.set_tag("holdout_end", "2024-03-25")
                info = log_signal_model(predictor, reference=features.head(200))
                metrics: dict[str, float] = {}
                if n_dates is not None:
                    holdout = make_holdout(skill, seed, n_dates=n_dates)
                    path = root / f"holdout-{name}" / "holdout_predictions.parquet"
                    path.parent.mkdir()
                    holdout.to_parquet(path)
                    mlflow.log_artifact(str(path))
                    proba = holdout[["p_down", "p_flat", "p_up"]].to_numpy()
                    metrics = {
                        "holdout_log_loss": log_loss(holdout["y"].to_numpy(), proba),
                        "holdout_accuracy": accuracy(holdout["y"].to_numpy(), proba),
                    }
                    mlflow.log_metrics(metrics)
            runs[name] = TrainedRun(run.info.run_id, info.model_uri, metrics)
    return Template(db=db, runs=runs, features=features, experiment_id=exp_id)


_TEMPLATE: list[Template] = []


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Built once per test session even though several modules import this fixture
    (each import registers its own fixture definition; the cache makes them share)."""
    if not _TEMPLATE:
        _TEMPLATE.append(build_template(tmp_path_factory.mktemp("registry-template")))
    return _TEMPLATE[0]


def settings_for(
    workdir: Path,
    *,
    redis_url: str | None = None,
    prefix: str = "ml",
    enabled: bool = True,
    tracking_uri: str | None = None,
    **extra: Any,
):
    from signals.settings.model import load_settings

    return load_settings(
        REPO_ROOT / "config" / "settings.yaml",
        mlflow={"tracking_uri": tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"},
        redis={
            "enabled": enabled,
            "url": redis_url,
            "prefix": prefix,
            "embedded_path": str(workdir / ".redis" / "signals.rdb"),
            "socket_timeout": 0.5,
        },
        **extra,
    )


@dataclass
class Store:
    workdir: Path
    settings: Any
    runs: dict[str, TrainedRun]
    template: Template

    def registry(self, mirror: bool = True):
        from signals.lifecycle.wiring import open_registry

        return open_registry(self.settings, mirror=mirror)

    def register(self, *names: str) -> list[str]:
        reg = self.registry(mirror=False)
        return [reg.register(None, self.runs[n].model_uri, self.runs[n].metrics, run_id=self.runs[n].run_id).version_id for n in names]


@pytest.fixture
def store(registry_template: Template, workdir: Path, redis_server_url: str, redis_prefix: str) -> Store:
    """A private copy of the template store, mirrored to the test Redis under a unique prefix."""
    shutil.copy(registry_template.db, workdir / "mlflow.db")
    settings = settings_for(workdir, redis_url=redis_server_url, prefix=redis_prefix)
    return Store(workdir, settings, registry_template.runs, registry_template)
