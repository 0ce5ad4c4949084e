"""Typed settings loaded from ``config/settings.yaml`` with ``SA_`` environment overrides.

Precedence (highest first): explicit keyword overrides, ``SA_*`` environment variables
(nested with ``__``), the YAML file, the defaults below. The YAML file is the documented
source of every default; the defaults here only mirror it so a missing file still works.
Unknown keys anywhere are rejected so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from signals.errors import SignalsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "settings.yaml"


class ConfigError(SignalsError, ValueError):
    """Raised when the configuration is invalid; the message names the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class XGBParams(_Section):
    n_estimators: int = Field(300, ge=1)
    max_depth: int = Field(6, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5, ge=0)
    objective: Literal["multi:softprob"] = "multi:softprob"
    num_class: Literal[3] = 3
    eval_metric: str = "mlogloss"


class MLSettings(_Section):
    prediction_horizon: int = Field(5, ge=1)
    up_threshold: float = 0.01
    down_threshold: float = -0.01
    min_training_samples: int = Field(500, ge=1)
    retrain_interval_days: int = Field(7, ge=1)
    model_staleness_days: int = Field(14, ge=1)
    confidence_threshold: float = Field(0.55, ge=0, le=1)
    calibration_method: Literal["sigmoid", "temperature", "isotonic"] = "sigmoid"
    calibration_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    xgb_params: XGBParams = Field(default_factory=XGBParams)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "MLSettings":
        if self.up_threshold <= self.down_threshold:
            raise ValueError(
                f"ml.up_threshold ({self.up_threshold}) must be greater than "
                f"ml.down_threshold ({self.down_threshold})"
            )
        return self


class WalkForwardSettings(_Section):
    train_months: int = Field(24, ge=1)
    test_months: int = Field(6, ge=1)
    step_months: int = Field(3, ge=1)
    embargo_days: int = Field(0, ge=0)


class TuningSettings(_Section):
    n_trials: int = Field(100, ge=1)
    n_jobs: int = Field(1, ge=1)
    # processes joining each window's Optuna study (coordinator + workers-1 spawned); >1 needs a
    # storage every process can reach: PostgreSQL intended, SQLite works with a warning, in-memory is refused
    workers: int = Field(1, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    early_stopping_rounds: int = Field(30, ge=1)
    storage: str | None = None
    study_name: str = "signals-walk-forward"


class DataSettings(_Section):
    provider: Literal["sample", "skfolio", "parquet", "sql"] = "sample"
    path: str | None = None
    sql_url: str | None = None
    sql_schema: str | None = None
    symbols: list[str] = Field(default_factory=list)
    start: str | None = None
    end: str | None = None

    @model_validator(mode="after")
    def _provider_has_location(self) -> "DataSettings":
        if self.provider == "parquet" and not self.path:
            raise ValueError("data.path is required when data.provider is 'parquet'")
        if self.provider == "sql" and not self.sql_url:
            raise ValueError("data.sql_url is required when data.provider is 'sql'")
        return self


class FeatureSettings(_Section):
    cache_dir: str = "data/features"
    n_jobs: int = Field(2, ge=1)


class MLflowSettings(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    registry_uri: str | None = None
    experiment: str = "signals"
    monitoring_experiment: str = "signals-monitoring"
    model_name: str = "signals-xgb"


class RedisSettings(_Section):
    enabled: bool = True
    url: str | None = None
    embedded_path: str = ".redis/signals.rdb"
    prefix: str = "ml"
    stream_maxlen: int = Field(10000, ge=1)
    socket_timeout: float = Field(2.0, gt=0)


class MonitoringSettings(_Section):
    reference_rows: int = Field(10000, ge=100)
    window_days: int = Field(60, ge=1)
    psi_bins: int = Field(10, ge=2)
    psi_minor: float = Field(0.1, ge=0)
    psi_major: float = Field(0.2, ge=0)
    drifted_features_for_retrain: int = Field(5, ge=1)
    drift_rule: Literal["psi", "unusual"] = "unusual"
    rolling_window: int = Field(100, ge=1)
    accuracy_threshold: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _levels_ordered(self) -> "MonitoringSettings":
        if self.psi_major < self.psi_minor:
            raise ValueError("monitoring.psi_major must be >= monitoring.psi_minor")
        return self


class AlertSettings(_Section):
    slack_webhook_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_chat_id: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    dedup_minutes: float = Field(60, ge=0)


class RegistrySettings(_Section):
    gate_alpha: float = Field(0.05, gt=0, lt=1)
    gate_min_rows: int = Field(100, ge=1)
    gate_resamples: int = Field(2000, ge=100)
    gate_block_days: int = Field(5, ge=1)


class ServeSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5001, ge=1, le=65535)


class StrategySettings(_Section):
    min_hold_days: int = Field(3, ge=1)
    cost_bps: float = Field(5.0, ge=0)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="SA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        case_sensitive=False,
    )

    ml: MLSettings = Field(default_factory=MLSettings)
    walk_forward: WalkForwardSettings = Field(default_factory=WalkForwardSettings)
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    mlflow: MLflowSettings = Field(default_factory=MLflowSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)

    # Set on a throwaway subclass by load_settings so the YAML source knows its file.
    yaml_source: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = getattr(settings_cls, "yaml_source", None)
        if yaml_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)

    # ------------------------------------------------------------------ helpers
    def optuna_storage(self) -> str:
        """The Optuna storage URL; defaults to a SQLite file beside a SQLite MLflow store."""
        if self.tuning.storage:
            return self.tuning.storage
        uri = self.mlflow.tracking_uri
        if uri.startswith("sqlite:///"):
            db = Path(uri[len("sqlite:///") :])
            return f"sqlite:///{db.with_name('optuna.db')}"
        return "sqlite:///optuna.db"

    def flat(self) -> dict[str, Any]:
        """The resolved configuration as ``section.key`` -> value (for MLflow params)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = value

        walk("", self.model_dump())
        return out


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (default ``config/settings.yaml`` or ``$SA_CONFIG``).

    Raises :class:`ConfigError` naming every bad key.
    """
    chosen = path or os.environ.get("SA_CONFIG") or DEFAULT_CONFIG_PATH
    yaml_path = Path(chosen)
    if not yaml_path.is_file():
        raise ConfigError(f"configuration file not found: {yaml_path}")
    try:
        import yaml

        raw = yaml.safe_load(yaml_path.read_text()) or {}
    except Exception as exc:  # noqa: BLE001 - any YAML error is a config error
        raise ConfigError(f"cannot parse configuration file {yaml_path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {yaml_path} must hold a mapping at the top level")

    # MLflow's own variables are honoured (below SA_*), so `mlflow run` and the code it starts
    # always talk to the same store.
    for env_key, field in (("MLFLOW_TRACKING_URI", "tracking_uri"), ("MLFLOW_REGISTRY_URI", "registry_uri")):
        if os.environ.get(env_key) and not os.environ.get(f"SA_MLFLOW__{field.upper()}"):
            section = dict(overrides.get("mlflow") or {})
            section.setdefault(field, os.environ[env_key])
            overrides["mlflow"] = section
    bound = type("_BoundSettings", (Settings,), {"yaml_source": yaml_path})
    try:
        settings = bound(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(yaml_path))) from None
    # Return a plain Settings so pickling / repr do not expose the throwaway subclass.
    return Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})
