"""The served model: an MLflow pyfunc logged with *models-from-code*.

Nothing is pickled. The model's code is ``signals/serving/served_model.py`` (it calls
``mlflow.models.set_model``); its artifacts are the booster in XGBoost's own format, the
calibrator and config as JSON, and the training reference sample as Parquet (what the
drift monitor compares against). ``code_paths`` ships the ``signals`` package with the
model, so it loads in a fresh process even where ``signals`` is not installed.
"""

from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd

from signals.registry.client import ModelRegistry
from signals.registry.types import NoChampionError
from signals.serving.predictor import (
    BOOSTER_FILE,
    CALIBRATOR_FILE,
    CONFIG_FILE,
    OUTPUT_COLUMNS,
    REFERENCE_FILE,
    SignalPredictor,
)

if TYPE_CHECKING:
    from signals.settings.model import Settings

SIGNALS_PACKAGE_DIR = Path(__file__).resolve().parent.parent
SERVED_MODEL_CODE = Path(__file__).resolve().parent / "served_model.py"

# What the model needs at inference; pinned to the versions it was trained with.
_RUNTIME_PACKAGES = ("mlflow", "xgboost", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow")


def pinned_requirements() -> list[str]:
    return [f"{pkg}=={metadata.version(pkg)}" for pkg in _RUNTIME_PACKAGES]


class SignalModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around :class:`SignalPredictor`."""

    def load_context(self, context: Any) -> None:
        a = context.artifacts
        self.predictor = SignalPredictor.load(a["booster"], a["calibrator"], a["config"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        out = self.predictor.predict_frame(frame)
        return out.reset_index(drop=True)


def model_signature(feature_names: list[str]):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec("double", name) for name in feature_names])
    outputs = Schema(
        [
            ColSpec("double", "p_down"),
            ColSpec("double", "p_flat"),
            ColSpec("double", "p_up"),
            ColSpec("long", "predicted_class"),
            ColSpec("double", "confidence"),
            ColSpec("string", "signal"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_signal_model(
    predictor: SignalPredictor,
    *,
    reference: pd.DataFrame,
    input_example: pd.DataFrame | None = None,
    name: str = "model",
    registered_model_name: str | None = None,
    metadata_extra: dict[str, Any] | None = None,
):
    """Log the served model into the active MLflow run; returns MLflow's ``ModelInfo``.

    ``reference`` is a sample of the training feature matrix (feature columns only); it
    travels with the model as ``reference.parquet`` so the monitor always compares against
    exactly what this version was trained on.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_signal_model must be called inside an active MLflow run")
    feats = predictor.feature_names
    ref = reference.reindex(columns=feats).astype("float64")
    example = (input_example if input_example is not None else ref.head(5)).reindex(columns=feats).astype("float64")
    with tempfile.TemporaryDirectory(prefix="signals-model-") as tmp:
        paths = predictor.save(tmp)
        ref_path = Path(tmp) / REFERENCE_FILE
        ref.reset_index(drop=True).to_parquet(ref_path, engine="pyarrow")
        artifacts = {**paths, "reference": str(ref_path)}
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(SERVED_MODEL_CODE),
            artifacts=artifacts,
            code_paths=[str(SIGNALS_PACKAGE_DIR)],
            signature=model_signature(feats),
            input_example=example,
            pip_requirements=pinned_requirements(),
            registered_model_name=registered_model_name,
            metadata={
                "feature_names": feats,
                "confidence_threshold": predictor.confidence_threshold,
                "classes": ["DOWN", "FLAT", "UP"],
                "output_columns": list(OUTPUT_COLUMNS),
                **(metadata_extra or {}),
            },
        )
    return info


def load_predictor(model_uri: str) -> SignalPredictor:
    """Load the in-process predictor from a logged model URI (runs:/, models:/, a path)."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    art = local / "artifacts"
    return SignalPredictor.load(str(art / BOOSTER_FILE), str(art / CALIBRATOR_FILE), str(art / CONFIG_FILE))


def load_reference(model_uri: str) -> pd.DataFrame:
    """The training reference sample logged with a model version."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return pd.read_parquet(local / "artifacts" / REFERENCE_FILE)


def reference_sample(features: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """A reproducible random sample of training rows (the whole frame when it is small)."""
    if len(features) <= max_rows:
        return features.copy()
    idx = np.sort(np.random.default_rng(seed).choice(len(features), size=max_rows, replace=False))
    return features.iloc[idx].copy()


def load_champion(settings: "Settings") -> tuple["SignalPredictor", str]:
    """The champion's in-process predictor and version id; :class:`NoChampionError` if none."""
    champion = get_champion(settings)
    return load_predictor(champion.path), str(champion.version_id)


def get_champion(settings: "Settings") -> Any:
    """The registry's active ``ModelVersion``; :class:`NoChampionError` if there is none."""

    import mlflow


    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # loading a models:/ URI resolves through MLflow's global URIs: point them at the configured store
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    if settings.mlflow.registry_uri:
        mlflow.set_registry_uri(settings.mlflow.registry_uri)
    champion = ModelRegistry.from_settings(settings).get_active()
    if champion is None:
        raise NoChampionError(settings.mlflow.model_name)
    return champion
