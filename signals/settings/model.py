"""Typed settings loaded from ``config/settings.yaml`` with ``SA_`` environment overrides.

Precedence (highest first): explicit keyword overrides, ``SA_*`` environment variables
(nested with ``__``), the YAML file, the defaults below. The YAML file is the documented
source of every default; the defaults here only mirror it so a missing file still works.

Nothing questionable is accepted quietly, because a bad value here becomes a bad model later:
unknown keys and unknown ``SA_*`` variables (with a "did you mean" for near misses), NaN and
infinite floats, booleans given for numbers, and thresholds that cannot label returns are all
:class:`ConfigError`. Each message names where the value came from: the variable (with its
value, credentials masked) or the YAML file and key.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from signals.core.errors import SignalsError
from signals.core.redaction import redact_text, redact_value

#: The defaults ship inside the package (an installed wheel has no config/ directory);
#: config/settings.yaml in a checkout is a link to this same file.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "defaults.yaml"


class ConfigError(SignalsError, ValueError):
    """Raised when the configuration is invalid; the message names the offending key."""


ENV_PREFIX = "SA_"
# SA_-prefixed variables that are not settings but are ours: SA_CONFIG picks the settings file
# (what `signals --config` reads). Anything else starting with SA_ must name a setting.
NON_SETTING_VARIABLES: dict[str, str] = {"SA_CONFIG": "path of the settings file (same as --config)"}


def _cross_field_error(keys: tuple[str, ...], message: str) -> PydanticCustomError:
    """A model-level error that remembers which keys it is about, so the message can say where
    each of them came from (an ``SA_`` variable, the YAML file, a default)."""
    return PydanticCustomError("cross_field", message, {"keys": ",".join(keys)})


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


class _Section(BaseModel):
    # allow_inf_nan=False: "nan" / ".inf" pass float parsing but make every comparison false,
    # so a NaN threshold silently labels nothing UP.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """``prediction_horizon: true`` would otherwise be read as 1: a boolean is never a number here."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = _unwrap_optional(cls.model_fields[info.field_name].annotation)
            if annotation in (int, float):
                raise PydanticCustomError("bool_for_number", "must be a number, not a boolean")
        return value


class XGBParams(_Section):
    n_estimators: int = Field(300, ge=1)
    max_depth: int = Field(6, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
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
    # share of the features present in >= 99 % of training rows a row must have to get a signal
    min_feature_coverage: float = Field(0.9, ge=0, le=1)
    # auto: identity / temperature / sigmoid / isotonic chosen by forward-chained log-loss
    # (signals/modeling/forward_calibration.py); a method name fixes it
    calibration_method: Literal["auto", "identity", "temperature", "sigmoid", "isotonic"] = "auto"
    calibration_margin: float = Field(0.0002, ge=0)
    calibration_min_z: float = Field(0.0, ge=0)
    class_weight: Literal["none", "balanced"] = "none"
    seed: int = 42
    xgb_params: XGBParams = Field(default_factory=XGBParams)

    # Thresholds are fractional forward returns (0.01 = +1 %). UP needs a rise and DOWN a fall, so
    # the signs are fixed; |threshold| >= 1 (100 %) is almost surely a percent typed as a fraction,
    # and below -1 no return can ever be DOWN. Together they also keep up > down.
    @field_validator("up_threshold")
    @classmethod
    def _up_is_a_rise(cls, value: float) -> float:
        if not 0 < value < 1:
            raise PydanticCustomError(
                "threshold_range", "must be a fractional return in (0, 1), e.g. 0.01 for +1 %, got {value}",
                {"value": value},
            )
        return value

    @field_validator("down_threshold")
    @classmethod
    def _down_is_a_fall(cls, value: float) -> float:
        if not -1 < value < 0:
            raise PydanticCustomError(
                "threshold_range", "must be a fractional return in (-1, 0), e.g. -0.01 for -1 %, got {value}",
                {"value": value},
            )
        return value

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "MLSettings":
        # Implied by the ranges above; kept so that relaxing a range can never let UP and DOWN overlap.
        if self.up_threshold <= self.down_threshold:
            raise _cross_field_error(
                ("up_threshold", "down_threshold"),
                f"ml.up_threshold ({self.up_threshold}) must be greater than ml.down_threshold ({self.down_threshold})",
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
    final_params_windows: int = Field(4, ge=1)
    storage: str | None = None
    study_name: str = "signals-walk-forward"
    # cost controls (benchmarks/tuning_scale.py measures each): see signals.modeling.tuning.objective
    pruner: Literal["asha", "hyperband", "median", "none"] = "asha"
    reuse_matrix: bool = True
    warm_start_trials: int = Field(5, ge=0)
    full_every: int = Field(4, ge=1)
    short_trials: int = Field(2, ge=1)
    fidelity_rows: float = Field(0.25, gt=0, le=1)
    promote_top: int = Field(3, ge=1)


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
            raise _cross_field_error(("provider", "path"), "data.path is required when data.provider is 'parquet'")
        if self.provider == "sql" and not self.sql_url:
            raise _cross_field_error(("provider", "sql_url"), "data.sql_url is required when data.provider is 'sql'")
        return self


class FeatureSettings(_Section):
    cache_dir: str = "data/features"
    n_jobs: int = Field(2, ge=1)

    @field_validator("cache_dir")
    @classmethod
    def _a_path_not_a_url(cls, value: str) -> str:
        # the cache is written with pathlib; a URL would become a local directory named "s3:"
        if "://" in value:
            raise PydanticCustomError(
                "cache_url", "URLs such as s3:// are not supported yet: give a filesystem path (for a Dask cluster, "
                "a shared volume mounted at the same path on every host), got {value}", {"value": value},
            )
        return value


class MLflowSettings(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    registry_uri: str | None = None
    experiment: str = "signals"
    monitoring_experiment: str = "signals-monitoring"
    model_name: str = "signals-xgb"
    # where new experiments keep their artifacts; required with a direct database tracking URI
    # (postgresql://...), else every client would write to its own ./mlruns
    artifact_location: str | None = None


class RedisSettings(_Section):
    enabled: bool = True
    url: str | None = None
    embedded_path: str = ".redis/signals.rdb"
    prefix: str = "ml"
    stream_maxlen: int = Field(10000, ge=1)
    socket_timeout: float = Field(2.0, gt=0)
    serve_host: str = "127.0.0.1"  # `signals redis serve`: where the embedded server listens for others
    serve_port: int = Field(6390, ge=0, le=65535)  # 0: the unix socket under .redis/ only


class MonitoringSettings(_Section):
    reference_rows: int = Field(10000, ge=100)
    window_days: int = Field(60, ge=1)
    psi_bins: int = Field(10, ge=2)
    psi_minor: float = Field(0.1, ge=0)
    psi_major: float = Field(0.2, ge=0)
    drifted_features_for_retrain: int = Field(5, ge=1)
    drift_rule: Literal["calibrated", "psi", "unusual"] = "calibrated"
    rolling_window: int = Field(100, ge=1)
    accuracy_threshold: float = Field(0.5, ge=0, le=1)
    drift_method: Literal["maxstat", "bh"] = "maxstat"
    drift_level: float = Field(0.01, gt=0, lt=1)
    drift_min_features: int = Field(1, ge=1)
    min_reference_share: float = Field(0.5, ge=0, le=1)
    null_gap_days: int = Field(60, ge=0)
    null_step_days: int = Field(5, ge=1)
    null_warmup_days: int = Field(252, ge=0)
    performance_level: float = Field(0.01, gt=0, lt=1)

    @model_validator(mode="after")
    def _levels_ordered(self) -> "MonitoringSettings":
        if self.psi_major < self.psi_minor:
            raise _cross_field_error(("psi_minor", "psi_major"), "monitoring.psi_major must be >= monitoring.psi_minor")
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
    # the lock serialising promotions and rollbacks across hosts: postgresql://... (advisory lock) or
    # redis://... (a Redis lock); null: a file lock beside SQLite, an advisory lock on a PostgreSQL
    # registry, else a file lock in the local temp directory (this machine only)
    lock_url: str | None = None
    lock_timeout_s: float = Field(60.0, gt=0)

    @field_validator("lock_url")
    @classmethod
    def _lock_scheme(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme.split("+")[0] not in ("postgresql", "postgres", "redis", "rediss"):
            raise PydanticCustomError(
                "lock_url", "must be a postgresql:// or redis:// (rediss://) URL, got {value}", {"value": redact_value("url", value)},
            )
        return value or None


class ServeSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5001, ge=1, le=65535)


class StrategySettings(_Section):
    min_hold_days: int = Field(3, ge=1)
    cost_bps: float = Field(5.0, ge=0)


DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


class ComputeSettings(_Section):
    # local: this machine (loky processes, the tuning worker pool); else a Dask scheduler's address
    address: str = "local"
    retries: int = Field(2, ge=0)  # reruns of a Dask task that raised (a dead worker's task is rescheduled anyway)
    connect_timeout_s: float = Field(30.0, gt=0)
    distributed_final_fit: bool = False  # train's final fit with xgboost.dask across the cluster

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value == "local":
            return value
        parts = urlsplit(value)
        if parts.scheme not in DASK_SCHEMES or not parts.netloc:
            raise PydanticCustomError(
                "compute_address", "must be 'local' or a Dask scheduler address such as tcp://host:8786, got {value}",
                {"value": value},
            )
        return value

    @model_validator(mode="after")
    def _cluster_for_distributed_fit(self) -> "ComputeSettings":
        if self.distributed_final_fit and self.address == "local":
            raise _cross_field_error(("distributed_final_fit", "address"),
                                     "compute.distributed_final_fit needs compute.address set to a Dask scheduler")
        return self


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    compute: ComputeSettings = Field(default_factory=ComputeSettings)

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


# ------------------------------------------------------------------------------- SA_ variables
@dataclass(frozen=True)
class _EnvTarget:
    path: tuple[str, ...]
    annotation: Any


def _submodel(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _is_complex(annotation: Any) -> bool:
    """Values pydantic-settings decodes as JSON (sections, lists, dicts)."""
    inner = _unwrap_optional(annotation)
    return _submodel(inner) is not None or (typing.get_origin(inner) or inner) in (list, dict, tuple, set, frozenset)


@functools.cache
def _setting_variables() -> tuple[dict[str, _EnvTarget], tuple[str, ...]]:
    """Every ``SA_`` name that sets something (sections and nested keys included), and the
    prefixes under which any name is valid (dict-valued settings take arbitrary keys)."""
    names: dict[str, _EnvTarget] = {}
    open_prefixes: list[str] = []

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            sub_path = (*path, name)
            var = ENV_PREFIX + "__".join(sub_path).upper()
            names[var] = _EnvTarget(sub_path, info.annotation)
            sub = _submodel(info.annotation)
            if sub is not None:
                walk(sub, sub_path)
            elif typing.get_origin(_unwrap_optional(info.annotation)) is dict:
                open_prefixes.append(var + "__")

    walk(Settings, ())
    return names, tuple(open_prefixes)


def setting_variable_names() -> list[str]:
    """All valid ``SA_`` variable names: one per section and key, plus the non-setting ones."""
    return sorted([*_setting_variables()[0], *NON_SETTING_VARIABLES])


def _sa_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``SA_*`` variables (pydantic-settings matches them case-insensitively, so do we)."""
    return {k: v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}


def _shown(var: str, value: str) -> str:
    """``VAR='value'`` with any credential in the value masked."""
    return f"{var}={redact_value(var, value)!r}"


def _unknown_variable_problem(var: str, value: str) -> str:
    names, _ = _setting_variables()
    candidates = [*names, *NON_SETTING_VARIABLES]
    close = difflib.get_close_matches(var.upper(), candidates, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else 'nested keys are joined with "__", e.g. SA_ML__PREDICTION_HORIZON'
    return f"{_shown(var, value)}: no such setting ({hint})"


def _json_problem(var: str, value: str, target: _EnvTarget) -> str | None:
    """pydantic-settings decodes sections and lists as JSON and reports a failure without naming
    the variable; check first so the message can."""
    try:
        json.loads(value)
    except ValueError:
        kind = "section" if _submodel(target.annotation) else "list/mapping"
        return f"{_shown(var, value)}: {'.'.join(target.path)} is a {kind}, so the value must be JSON"
    return None


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for every ``SA_*`` variable that sets nothing or cannot be decoded."""
    names, open_prefixes = _setting_variables()
    problems = []
    for var, value in sorted(_sa_environment(os.environ if environ is None else environ).items()):
        key = var.upper()
        if key in NON_SETTING_VARIABLES or key.startswith(open_prefixes):
            continue
        target = names.get(key)
        if target is None:
            problems.append(_unknown_variable_problem(var, value))
        elif _is_complex(target.annotation) and (problem := _json_problem(var, value, target)):
            problems.append(problem)
    if problems:
        raise ConfigError("invalid environment:\n" + "\n".join(f"  {p}" for p in problems))


# ------------------------------------------------------------------------------- error messages
_MISSING = object()


def _lookup(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and 0 <= part < len(tree):
            tree = tree[part]
        else:
            return _MISSING
    return tree


@dataclass
class _Origins:
    """Where each key's value came from, to name it in an error."""

    yaml_path: Path
    yaml: Mapping[str, Any]
    overrides: Mapping[str, Any]
    override_labels: dict[tuple[str, ...], str] = field(default_factory=dict)  # path -> env var it came from
    environ: Mapping[str, str] = field(default_factory=dict)

    def _env_var(self, loc: tuple[Any, ...]) -> tuple[str, str] | None:
        """The most specific ``SA_`` variable covering ``loc`` (``SA_ML__X`` before ``SA_ML``)."""
        by_name = {k.upper(): (k, v) for k, v in _sa_environment(self.environ).items()}
        strs = tuple(str(p) for p in loc)
        for n in range(len(strs), 0, -1):
            hit = by_name.get(ENV_PREFIX + "__".join(strs[:n]).upper())
            if hit is not None:
                return hit
        return None

    def describe(self, loc: tuple[Any, ...]) -> str:
        key = ".".join(str(p) for p in loc)
        if (value := _lookup(self.overrides, loc)) is not _MISSING:
            label = next((v for p, v in self.override_labels.items() if tuple(loc[: len(p)]) == p), None)
            return f"from {_shown(label, str(value))}" if label else "from a keyword override"
        if (hit := self._env_var(loc)) is not None:
            return f"from {_shown(*hit)}"
        if (value := _lookup(self.yaml, loc)) is not _MISSING:
            shown = repr(redact_value(key, value))
            return f"in {self.yaml_path}, value {shown if len(shown) <= 80 else shown[:77] + '...'}"
        return "built-in default"


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    """"unknown key", with the closest valid sibling when there is one."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        info = model.model_fields.get(str(part)) if model is not None else None
        model = _submodel(info.annotation) if info is not None else None
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.75) if model else []
    if close:
        return f"unknown key (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)"
    return "unknown key"


_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})


def _message(err: Any) -> str:
    """pydantic's message, reworded where ours says more."""
    loc, kind, given = tuple(err["loc"]), err["type"], err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind == "finite_number":
        return "must be a finite number (NaN and infinity are not accepted)"
    if kind in ("int_parsing", "float_parsing") and isinstance(given, str) and given.strip().lower() in _BOOL_WORDS:
        return "must be a number, not a boolean"
    return err["msg"]


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(map(str, loc)) or "<root>"


def _error_line(err: Any, origins: _Origins) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "cross_field":
        locs = [(*loc, k) for k in str(err["ctx"]["keys"]).split(",")]
        where = "; ".join(f"{_dotted(one)} {origins.describe(one)}" for one in locs)
        return f"{', '.join(map(_dotted, locs))}: {err['msg']} ({where})"
    return f"{_dotted(loc)}: {_message(err)} ({origins.describe(loc)})"


def _format_validation_error(exc: ValidationError, origins: _Origins) -> str:
    return "\n".join(["invalid configuration:", *(f"  {_error_line(e, origins)}" for e in exc.errors())])


# ------------------------------------------------------------------------------- loading
def _config_file(path: str | os.PathLike[str] | None) -> Path:
    if path:
        chosen, source = Path(path), ""
    elif os.environ.get("SA_CONFIG"):
        chosen, source = Path(os.environ["SA_CONFIG"]), " (from SA_CONFIG)"
    else:
        chosen, source = DEFAULT_CONFIG_PATH, ""
    if not chosen.is_file():
        raise ConfigError(f"configuration file not found: {chosen}{source}")
    return chosen


def _read_yaml(yaml_path: Path) -> dict[str, Any]:

    try:
        raw = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.MarkedYAMLError as exc:  # where and what, without PyYAML's snippet of the (maybe secret) line
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"cannot parse configuration file {yaml_path}{where}: {exc.problem or exc.context}") from None
    except Exception as exc:  # noqa: BLE001 - any other YAML error is a config error too
        raise ConfigError(f"cannot parse configuration file {yaml_path}: {redact_text(str(exc))}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {yaml_path} must hold a mapping at the top level")
    return raw


def _with_mlflow_variables(overrides: dict[str, Any], labels: dict[tuple[str, ...], str]) -> dict[str, Any]:
    """MLflow's own variables are honoured (below SA_*), so `mlflow run` and the code it starts
    always talk to the same store."""
    sa = {k.upper() for k in _sa_environment(os.environ)}
    for env_key, name in (("MLFLOW_TRACKING_URI", "tracking_uri"), ("MLFLOW_REGISTRY_URI", "registry_uri")):
        if os.environ.get(env_key) and f"SA_MLFLOW__{name.upper()}" not in sa and "SA_MLFLOW" not in sa:
            section = dict(overrides.get("mlflow") or {})
            if name not in section:
                section[name] = os.environ[env_key]
                labels[("mlflow", name)] = env_key
            overrides["mlflow"] = section
    return overrides


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (default ``config/settings.yaml`` or ``$SA_CONFIG``).

    Raises :class:`ConfigError` naming every bad key and where its value came from.
    """
    check_environment()
    yaml_path = _config_file(path)
    raw = _read_yaml(yaml_path)
    labels: dict[tuple[str, ...], str] = {}
    overrides = _with_mlflow_variables(dict(overrides), labels)
    origins = _Origins(yaml_path, raw, overrides, labels, dict(os.environ))
    bound = type("_BoundSettings", (Settings,), {"yaml_source": yaml_path})
    try:
        settings = bound(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origins)) from None
    except SettingsError as exc:  # a value the environment source could not decode
        raise ConfigError(f"invalid environment: {exc}") from None
    # Return a plain Settings so pickling / repr do not expose the throwaway subclass.
    return Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})
