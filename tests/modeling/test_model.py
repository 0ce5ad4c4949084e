"""MLPipeline: balanced weights, 3-class probabilities, errors, determinism, early stopping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.core.errors import SignalsError
from signals.dataset import forward_returns
from signals.modeling import model as pipeline_module
from signals.modeling.model import InsufficientDataError, MLPipeline, NotFittedError, balanced_sample_weights


@pytest.fixture(autouse=True, scope="module")
def single_thread_xgboost():
    """Tests fit tiny matrices: one XGBoost thread is as fast there and immune to OpenMP
    spin-wait slowdowns when the test machine is busy (production default: 2 threads). Other
    test modules import this fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("signals.modeling.model.DEFAULT_N_JOBS", 1)
        yield


SMALL = {"n_estimators": 20, "max_depth": 3, "learning_rate": 0.2, "subsample": 1.0, "colsample_bytree": 1.0,
         "min_child_weight": 1}


def make_panel(
    n_symbols: int = 3,
    start: str = "2018-01-01",
    end: str = "2019-12-31",
    n_features: int = 8,
    seed: int = 0,
    signal: float = 0.01,
) -> tuple[pd.DataFrame, pd.Series]:
    """A (symbol, date) float64 feature panel shaped like the feature store's, and adjusted closes.

    Feature ``f00`` at date t drives the return of t+1 (learnable, not leaked); ``f03`` has NaNs.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    feats, closes = [], []
    for s in range(n_symbols):
        sym = f"S{s}"
        z = rng.standard_normal((len(dates), n_features))
        drift = np.r_[0.0, signal * z[:-1, 0]]
        close = 100 * np.exp(np.cumsum(drift + rng.standard_normal(len(dates)) * 0.01))
        idx = pd.MultiIndex.from_arrays([np.full(len(dates), sym, dtype=object), dates], names=["symbol", "date"])
        f = pd.DataFrame(z, index=idx, columns=[f"f{i:02d}" for i in range(n_features)])
        f.iloc[rng.random(len(dates)) < 0.02, 3] = np.nan
        feats.append(f)
        closes.append(pd.Series(close, index=idx, name="close"))
    return pd.concat(feats).astype("float64"), pd.concat(closes)


@pytest.fixture(scope="module")
def panel() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    X, close = make_panel(signal=0.02)
    pipe = MLPipeline(horizon=1, up_threshold=0.005, down_threshold=-0.005)
    return X, close, pipe.prepare_target(close)


def test_balanced_weights_formula() -> None:
    y = np.array([0, 1, 1, 1, 2, 2])
    w = balanced_sample_weights(y)
    # n / (n_classes * count[y]) = 6 / (3 * [1, 3, 2])
    assert np.allclose(w, [2.0, 2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    assert w.sum() == pytest.approx(len(y))
    from sklearn.utils.class_weight import compute_sample_weight

    assert np.allclose(w, compute_sample_weight("balanced", y))


def test_train_predict_shapes_and_metrics(panel) -> None:
    X, _, y = panel
    pipe = MLPipeline(SMALL, horizon=1, min_training_samples=100, n_jobs=1)
    m = pipe.train(X, y)
    assert set(m) >= {"accuracy", "log_loss", "class_distribution"}
    assert m["n_samples"] == int(y.notna().sum())  # NaN targets (each symbol's last row) dropped
    assert len(m["class_distribution"]) == 3 and sum(m["class_distribution"]) == pytest.approx(1.0)
    p = pipe.predict(X.head(50))
    assert p.shape == (50, 3) and p.dtype == np.float64
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p > 0).all()
    assert pipe.feature_names_ == list(X.columns)
    # reordered columns are mapped by name
    assert np.allclose(pipe.predict(X.head(50)[X.columns[::-1]]), p)


def test_model_learns_the_planted_signal(panel) -> None:
    X, _, y = panel
    cut = X.index.get_level_values("date") < pd.Timestamp("2019-07-01")
    pipe = MLPipeline(SMALL, horizon=1, min_training_samples=100, n_jobs=1)
    pipe.train(X[cut], y[cut])
    yt = y[~cut]
    keep = yt.notna().to_numpy()
    p = pipe.predict(X[~cut][keep])
    acc = float(np.mean(p.argmax(axis=1) == yt[keep].to_numpy()))
    assert acc > 0.45  # 3 classes, chance ~1/3; f00 carries next-day drift
    imp = pipe.feature_importance("gain")
    assert max(imp, key=imp.get) == "f00"


def test_balanced_weights_shift_predictions_toward_minority() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(900, 3)), columns=["a", "b", "c"])
    y = pd.Series(np.r_[np.zeros(90), np.ones(720), np.full(90, 2)])  # 80% FLAT, pure noise features
    pipe = MLPipeline(SMALL, min_training_samples=10, n_jobs=1, class_weight="balanced").fit(X, y)
    mean_p = pipe.predict(X).mean(axis=0)
    # unweighted the model predicts ~[0.1, 0.8, 0.1]; balanced weights pull toward 1/3 each
    assert mean_p[0] > 0.2 and mean_p[2] > 0.2 and mean_p[1] < 0.6
    plain = MLPipeline(SMALL, min_training_samples=10, n_jobs=1).fit(X, y).predict(X).mean(axis=0)
    assert plain[1] > 0.7 and plain[0] < 0.15


def test_too_few_rows_is_a_signals_error(panel) -> None:
    X, _, y = panel
    with pytest.raises(InsufficientDataError, match="min_training_samples") as exc:
        MLPipeline(SMALL, min_training_samples=10_000).train(X, y)
    assert isinstance(exc.value, SignalsError)


def test_predict_before_fit() -> None:
    with pytest.raises(NotFittedError):
        MLPipeline().predict(pd.DataFrame({"a": [1.0]}))


def test_seeded_training_is_deterministic(panel) -> None:
    X, _, y = panel
    params = {**SMALL, "subsample": 0.7, "colsample_bytree": 0.7}
    X, y = X.iloc[::3], y.iloc[::3]

    def fit(seed: int) -> np.ndarray:  # two threads, as in production
        return MLPipeline(params, horizon=1, min_training_samples=10, seed=seed, n_jobs=2).fit(X, y).predict(X.head(200))

    p1, p2, p3 = fit(7), fit(7), fit(8)
    assert np.array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_early_stopping_truncates_to_best_iteration(panel) -> None:
    X, _, y = panel
    cut = X.index.get_level_values("date") < pd.Timestamp("2019-07-01")
    params = {**SMALL, "n_estimators": 400, "learning_rate": 0.3, "max_depth": 6}
    pipe = MLPipeline(params, horizon=1, min_training_samples=10, n_jobs=1)
    m = pipe.train(X[cut], y[cut], eval_set=(X[~cut], y[~cut]), early_stopping_rounds=10)
    assert m["n_rounds"] < 400
    assert pipe.booster_.num_boosted_rounds() == m["n_rounds"]
    curve = pipe.evals_result_["validation"]["mlogloss"]
    assert m["n_rounds"] == int(np.argmin(curve)) + 1
    assert "val_log_loss" in m


def test_pipeline_target_matches_forward_returns(panel) -> None:
    _, close, _ = panel
    pipe = MLPipeline(horizon=5, up_threshold=0.01, down_threshold=-0.01)
    y = pipe.prepare_target(close)
    fwd = forward_returns(close, 5)
    assert y.isna().sum() == 3 * 5
    up = fwd > 0.01
    assert (y[up] == 2).all() and (y[fwd < -0.01] == 0).all()


def test_from_settings(settings) -> None:
    pipe = MLPipeline.from_settings(settings)
    assert pipe.horizon == 5 and pipe.min_training_samples == 500
    bp = pipe.booster_params()
    assert bp["objective"] == "multi:softprob" and bp["num_class"] == 3
    assert MLPipeline(n_jobs=3).booster_params()["nthread"] == 3
    assert MLPipeline().booster_params()["nthread"] == pipeline_module.DEFAULT_N_JOBS == 1  # the fixture
    assert bp["eta"] == 0.05 and pipe.n_rounds() == 300
    with pytest.raises(ValueError, match="unknown XGBoost"):
        MLPipeline({"n_estimators": 3, "gamma": 1}).booster_params()
