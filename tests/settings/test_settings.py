"""Configuration: YAML defaults, SA_ environment overrides, --config files, fail-fast validation,
and error messages that name where a bad value came from (never echoing a credential)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signals.settings.model import ConfigError, load_settings
from tests.conftest import REPO_ROOT

DEFAULT = REPO_ROOT / "config" / "settings.yaml"


def test_yaml_holds_the_spec_defaults() -> None:
    s = load_settings(DEFAULT)
    assert s.ml.prediction_horizon == 5
    assert (s.ml.up_threshold, s.ml.down_threshold) == (0.01, -0.01)
    assert s.ml.min_training_samples == 500
    assert s.ml.retrain_interval_days == 7
    assert s.ml.model_staleness_days == 14
    assert s.ml.confidence_threshold == 0.55
    xgb = s.ml.xgb_params
    assert (xgb.n_estimators, xgb.max_depth, xgb.learning_rate) == (300, 6, 0.05)
    assert (xgb.subsample, xgb.colsample_bytree, xgb.min_child_weight) == (0.8, 0.8, 5)
    assert (xgb.objective, xgb.num_class, xgb.eval_metric) == ("multi:softprob", 3, "mlogloss")
    wf = s.walk_forward
    assert (wf.train_months, wf.test_months, wf.step_months) == (24, 6, 3)
    assert s.tuning.n_trials == 100


def test_yaml_and_code_defaults_agree() -> None:
    """The YAML file is the documented source of defaults; the code must not drift from it."""
    from signals.settings.model import Settings

    assert load_settings(DEFAULT).model_dump() == Settings().model_dump()


def test_env_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_ML__PREDICTION_HORIZON", "3")
    monkeypatch.setenv("SA_ML__XGB_PARAMS__N_ESTIMATORS", "500")
    monkeypatch.setenv("SA_ML__UP_THRESHOLD", "0.015")
    s = load_settings(DEFAULT)
    assert s.ml.prediction_horizon == 3
    assert s.ml.xgb_params.n_estimators == 500
    assert s.ml.up_threshold == 0.015
    # untouched siblings keep their YAML values
    assert s.ml.xgb_params.max_depth == 6
    assert s.ml.confidence_threshold == 0.55


def test_other_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "alt.yaml"
    cfg.write_text("ml:\n  prediction_horizon: 10\nwalk_forward:\n  train_months: 12\n")
    s = load_settings(cfg)
    assert s.ml.prediction_horizon == 10
    assert s.walk_forward.train_months == 12
    assert s.walk_forward.test_months == 6  # default for keys the file leaves out
    monkeypatch.setenv("SA_ML__PREDICTION_HORIZON", "2")
    assert load_settings(cfg).ml.prediction_horizon == 2  # env beats the file


@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("ml:\n  prediction_horizon: -1\n", {}, "ml.prediction_horizon"),
        ("ml:\n  up_threshold: -0.02\n", {}, "ml.up_threshold"),
        ("", {"SA_ML__DOWN_THRESHOLD": "0.5"}, "ml.down_threshold"),
        ("ml:\n  horizon: 5\n", {}, "ml.horizon: unknown key"),
        ("mystery: 1\n", {}, "mystery: unknown key"),
        ("", {"SA_ML__XGB_PARAMS__MAX_DEPHT": "4"}, "SA_ML__XGB_PARAMS__MAX_DEPHT='4': no such setting"),
        ("ml:\n  confidence_threshold: 1.5\n", {}, "ml.confidence_threshold"),
        ("data:\n  provider: parquet\n", {}, "data.path is required"),
    ],
)
def test_invalid_values_fail_fast_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, env: dict, needle: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert needle in str(exc.value)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ml: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_settings(bad)


def test_optuna_storage_defaults_beside_sqlite_store(tmp_path: Path) -> None:
    s = load_settings(DEFAULT, mlflow={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"})
    assert s.optuna_storage() == f"sqlite:///{tmp_path}/optuna.db"
    s = load_settings(DEFAULT, tuning={"storage": "postgresql://x/y"})
    assert s.optuna_storage() == "postgresql://x/y"


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import signals, signals.settings.model, signals.data, signals.cli, signals.serving.pyfunc, os;"
        "print(sorted(os.listdir('.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mlflow_env_vars_are_honoured_below_sa_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/from-mlflow.db")
    assert load_settings(DEFAULT).mlflow.tracking_uri == "sqlite:////tmp/from-mlflow.db"
    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", "sqlite:////tmp/from-sa.db")
    assert load_settings(DEFAULT).mlflow.tracking_uri == "sqlite:////tmp/from-sa.db"


# ----------------------------------------------------------------------------- non-finite numbers
@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("", {"SA_ML__UP_THRESHOLD": "nan"}, "ml.up_threshold: must be a finite number"),
        ("", {"SA_ML__DOWN_THRESHOLD": "-inf"}, "ml.down_threshold: must be a finite number"),
        ("", {"SA_ML__XGB_PARAMS__LEARNING_RATE": "NaN"}, "ml.xgb_params.learning_rate: must be a finite number"),
        ("", {"SA_STRATEGY__COST_BPS": "1e400"}, "strategy.cost_bps: must be a finite number"),  # overflows to inf
        ("ml:\n  up_threshold: .nan\n", {}, "ml.up_threshold: must be a finite number"),
        ("monitoring:\n  psi_major: .inf\n", {}, "monitoring.psi_major: must be a finite number"),
        ("redis:\n  socket_timeout: .inf\n", {}, "redis.socket_timeout: must be a finite number"),
    ],
)
def test_nan_and_infinity_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, env: dict,
                                       needle: str) -> None:
    message = _error(tmp_path, monkeypatch, yaml_text, env)
    assert needle in message


# ----------------------------------------------------------------------------- booleans for numbers
@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("ml:\n  prediction_horizon: true\n", {}, "ml.prediction_horizon: must be a number, not a boolean"),
        ("ml:\n  up_threshold: false\n", {}, "ml.up_threshold: must be a number, not a boolean"),
        ("ml:\n  xgb_params:\n    n_estimators: yes\n", {}, "ml.xgb_params.n_estimators: must be a number, not a boolean"),
        ("tuning:\n  n_trials: on\n", {}, "tuning.n_trials: must be a number, not a boolean"),
        ("", {"SA_ML__PREDICTION_HORIZON": "true"}, "ml.prediction_horizon: must be a number, not a boolean"),
        ("", {"SA_ML__CONFIDENCE_THRESHOLD": "False"}, "ml.confidence_threshold: must be a number, not a boolean"),
        ("", {"SA_ML": '{"seed": true}'}, "ml.seed: must be a number, not a boolean"),
    ],
)
def test_booleans_are_not_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, env: dict,
                                  needle: str) -> None:
    assert needle in _error(tmp_path, monkeypatch, yaml_text, env)


def test_booleans_still_work_for_boolean_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_REDIS__ENABLED", "false")
    assert load_settings(DEFAULT).redis.enabled is False


# ----------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize(("up", "down"), [(0.01, -0.01), (0.005, -0.02), (0.5, -0.5), (0.999, -0.999)])
def test_sensible_thresholds_load(up: float, down: float) -> None:
    s = load_settings(DEFAULT, ml={"up_threshold": up, "down_threshold": down})
    assert (s.ml.up_threshold, s.ml.down_threshold) == (up, down)


@pytest.mark.parametrize(
    ("up", "down", "needle"),
    [
        (0.0, -0.01, "ml.up_threshold: must be a fractional return in (0, 1)"),
        (-0.02, -0.01, "ml.up_threshold: must be a fractional return in (0, 1)"),
        (1.0, -0.01, "ml.up_threshold: must be a fractional return in (0, 1)"),  # 1 meant as 1 %?
        (0.01, 0.0, "ml.down_threshold: must be a fractional return in (-1, 0)"),
        (0.01, 0.5, "ml.down_threshold: must be a fractional return in (-1, 0)"),  # also up <= down
        (0.01, -1.0, "ml.down_threshold: must be a fractional return in (-1, 0)"),  # no return is below -100 %
        (0.01, 0.01, "ml.down_threshold"),
    ],
)
def test_thresholds_that_cannot_label_are_rejected(up: float, down: float, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT, ml={"up_threshold": up, "down_threshold": down})
    assert needle in str(exc.value)


# ----------------------------------------------------------------------------- SA_ variables
@pytest.mark.parametrize(
    ("var", "suggestion"),
    [
        ("SA_MLFLOW_TRACKING_URI", "SA_MLFLOW__TRACKING_URI"),
        ("SA_ML_PREDICTION_HORIZON", "SA_ML__PREDICTION_HORIZON"),
        ("SA_ML__XGB_PARAMS__N_ESTIMATOR", "SA_ML__XGB_PARAMS__N_ESTIMATORS"),
        ("SA_ML__XGBPARAMS__MAX_DEPTH", "SA_ML__XGB_PARAMS__MAX_DEPTH"),
        ("SA_REDIS_URL", "SA_REDIS__URL"),
        ("SA_CONFIGS", "SA_CONFIG"),
        ("sa_mlflow_tracking_uri", "SA_MLFLOW__TRACKING_URI"),  # matched case-insensitively, like pydantic-settings
    ],
)
def test_unknown_variables_fail_with_a_suggestion(monkeypatch: pytest.MonkeyPatch, var: str, suggestion: str) -> None:
    monkeypatch.setenv(var, "sqlite:///elsewhere.db")
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT)
    assert f"{var}='sqlite:///elsewhere.db': no such setting (did you mean {suggestion}?)" in str(exc.value)


def test_unknown_variable_far_from_any_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_WHATEVER", "1")
    with pytest.raises(ConfigError, match=r"SA_WHATEVER='1': no such setting \(nested keys are joined with \"__\""):
        load_settings(DEFAULT)


def test_every_unknown_variable_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_MLFLOW_TRACKING_URI", "x")
    monkeypatch.setenv("SA_ML__HORIZON", "3")
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT)
    assert "SA_MLFLOW_TRACKING_URI=" in str(exc.value) and "SA_ML__HORIZON=" in str(exc.value)


def test_valid_variable_names_cover_sections_and_nested_keys() -> None:
    from signals.settings.model import Settings, setting_variable_names

    names = setting_variable_names()
    assert {"SA_CONFIG", "SA_ML", "SA_ML__XGB_PARAMS", "SA_ML__XGB_PARAMS__N_ESTIMATORS", "SA_REDIS__URL",
            "SA_MLFLOW__TRACKING_URI", "SA_DATA__SYMBOLS"} <= set(names)
    leaves = [k for k in Settings().flat()]
    assert {"SA_" + k.replace(".", "__").upper() for k in leaves} <= set(names)


def test_sa_config_selects_the_file_and_is_not_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "alt.yaml"
    cfg.write_text("ml:\n  prediction_horizon: 9\n")
    monkeypatch.setenv("SA_CONFIG", str(cfg))
    assert load_settings().ml.prediction_horizon == 9
    monkeypatch.setenv("SA_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"not found: .*missing.yaml \(from SA_CONFIG\)"):
        load_settings()


def test_json_sections_and_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_ML__XGB_PARAMS", '{"max_depth": 4}')
    monkeypatch.setenv("SA_DATA__SYMBOLS", '["AAPL", "IBM"]')
    s = load_settings(DEFAULT)
    assert s.ml.xgb_params.max_depth == 4 and s.data.symbols == ["AAPL", "IBM"]
    monkeypatch.setenv("SA_DATA__SYMBOLS", "AAPL,IBM")
    with pytest.raises(ConfigError, match=r"SA_DATA__SYMBOLS='AAPL,IBM': data.symbols is a list/mapping, so the value must be JSON"):
        load_settings(DEFAULT)


# ----------------------------------------------------------------------------- blame the right source
def test_an_environment_error_names_the_variable_not_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_ML__PREDICTION_HORIZON", "0")
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT)
    message = str(exc.value)
    assert "ml.prediction_horizon: Input should be greater than or equal to 1 (from SA_ML__PREDICTION_HORIZON='0')" in message
    assert "settings.yaml" not in message


def test_a_json_section_variable_is_named_for_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_ML", '{"prediction_horizon": 0}')
    with pytest.raises(ConfigError, match=r"ml.prediction_horizon: .* \(from SA_ML='\{\"prediction_horizon\": 0\}'\)"):
        load_settings(DEFAULT)


def test_a_file_error_names_the_file_and_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("ml:\n  prediction_horizon: 0\n  horizn: 3\n  sed: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    message = str(exc.value)
    assert f"ml.prediction_horizon: Input should be greater than or equal to 1 (in {cfg}, value 0)" in message
    assert f"ml.horizn: unknown key (in {cfg}, value 3)" in message
    assert "ml.sed: unknown key (did you mean ml.seed?)" in message


def test_a_cross_field_error_names_each_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_DATA__PROVIDER", "parquet")
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT)
    message = str(exc.value)
    assert "data.provider, data.path: data.path is required when data.provider is 'parquet'" in message
    assert "data.provider from SA_DATA__PROVIDER='parquet'" in message
    assert f"data.path in {DEFAULT}, value None" in message


def test_mlflow_variables_are_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from signals.settings.model import _Origins

    origins = _Origins(DEFAULT, {}, {"mlflow": {"tracking_uri": "postgresql://u:s3cr3t@db/x"}},
                       {("mlflow", "tracking_uri"): "MLFLOW_TRACKING_URI"})
    assert origins.describe(("mlflow", "tracking_uri")) == "from MLFLOW_TRACKING_URI='postgresql://u:***@db/x'"


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        ({"SA_REDIS__SOCKET_TIMEOUT": "redis://:s3cr3t@h:6379/0"}, "s3cr3t"),  # a URL in the wrong variable
        ({"SA_REDIS__URLL": "redis://tok3n@h:6379/0"}, "tok3n"),  # a near miss holding a token
        ({"SA_PASSWORD": "hunter2"}, "hunter2"),  # e.g. SQL Server's container variable: not ours, named, masked
        ({"SA_ALERTS__SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/s3cr3t"}, "s3cr3t"),
        ({"SA_DATA": '{"sql_url": "postgresql://u:s3cr3t@db/x", "provider": "nope"}'}, "s3cr3t"),
    ],
)
def test_error_messages_never_echo_a_credential(monkeypatch: pytest.MonkeyPatch, env: dict, secret: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings(DEFAULT)
    message = str(exc.value)
    assert secret not in message
    assert next(iter(env)) in message


def test_a_yaml_parse_error_does_not_echo_a_credential(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("redis:\n  url: redis://:s3cr3t@h:6379/0: x\n")  # PyYAML quotes the offending line
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert str(exc.value) == f"cannot parse configuration file {cfg}, line 2, column 32: mapping values are not allowed here"


def _error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, env: dict) -> str:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml_text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    message = str(exc.value)
    if env:
        assert str(cfg) not in message and next(iter(env)) in message
    else:
        assert str(cfg) in message
    return message
