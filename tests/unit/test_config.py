"""Configuration: YAML defaults, SA_ environment overrides, --config files, fail-fast validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from signals.config import ConfigError, load_settings
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
    from signals.config import Settings

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
        ("", {"SA_ML__DOWN_THRESHOLD": "0.5"}, "ml.up_threshold"),
        ("ml:\n  horizon: 5\n", {}, "ml.horizon: unknown key"),
        ("mystery: 1\n", {}, "mystery: unknown key"),
        ("", {"SA_ML__XGB_PARAMS__MAX_DEPHT": "4"}, "ml.xgb_params.max_depht: unknown key"),
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
        "import signals, signals.config, signals.data, signals.cli, signals.ml.pyfunc, os;"
        "print(sorted(os.listdir('.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mlflow_env_vars_are_honoured_below_sa_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/from-mlflow.db")
    assert load_settings(DEFAULT).mlflow.tracking_uri == "sqlite:////tmp/from-mlflow.db"
    monkeypatch.setenv("SA_MLFLOW__TRACKING_URI", "sqlite:////tmp/from-sa.db")
    assert load_settings(DEFAULT).mlflow.tracking_uri == "sqlite:////tmp/from-sa.db"
