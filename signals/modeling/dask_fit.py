"""The final fit with ``xgboost.dask`` across a Dask cluster (``compute.distributed_final_fit``).

For a panel whose training matrix does not fit one machine's memory next to XGBoost's own
working set: the rows are cut into one partition per worker, each worker builds the histogram
matrix of its rows, and the boosting rounds allreduce the workers' gradient histograms.

Not bit-identical to the local fit, and dependent on the worker count, which is why
:func:`fit` returns it (the train step logs it as ``final_fit.dask_workers``):

* the hist method's bin edges come from quantile sketches; with several workers each sketches
  its own rows and the sketches are merged, so the cut points can differ slightly from the
  single-machine sketch of all rows;
* the histograms are summed across workers in floating point in another order, so gains of
  near-tied splits can break the other way;
* row / column subsampling draws per worker.

What stays the same: the objective, the parameters, the rounds, the missing-value handling
(NaN), and the booster it returns (a plain ``xgboost.Booster``, predicted locally like any other).

``dask`` and ``xgboost.dask`` are imported lazily (optional, heavy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from signals.modeling import metrics as M
from signals.modeling.final_fit import FittedBooster, fitted_booster, stopping_split
from signals.modeling.model import MLPipeline, xgb_params_from

_LABEL, _WEIGHT = "__label__", "__weight__"


@dataclass
class DaskFit:
    booster: Any  # xgboost.Booster
    n_workers: int  # the result depends on it: record it
    history: dict[str, Any]


def _workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def _partitioned(client: Any, X: pd.DataFrame, y: np.ndarray, weights: np.ndarray | None, n_workers: int):
    """X, y, weights as dask collections with aligned partitions (one frame cut once), a
    partition per worker."""
    import dask.dataframe as dd

    frame = pd.DataFrame(X.to_numpy(dtype=np.float32, na_value=np.nan), columns=[str(c) for c in X.columns])
    frame[_LABEL] = np.asarray(y, dtype=np.float32)
    if weights is not None:
        frame[_WEIGHT] = np.asarray(weights, dtype=np.float32)
    parts = dd.from_pandas(frame, npartitions=max(1, n_workers), sort=False)
    parts = client.persist(parts)
    features = parts[[str(c) for c in X.columns]]
    return features, parts[_LABEL], (parts[_WEIGHT] if weights is not None else None)


def fit(
    client: Any,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray | None,
    n_rounds: int,
    *,
    eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
    early_stopping_rounds: int | None = None,
) -> DaskFit:
    """Train ``n_rounds`` rounds of ``params`` (native XGBoost names, e.g. from
    :meth:`MLPipeline.booster_params`) on the cluster of ``client``; ``eval_set`` with
    ``early_stopping_rounds`` stops early and truncates to the best round."""
    n_workers = _workers(client)
    if n_workers < 1:
        raise RuntimeError("the Dask cluster has no workers")
    native = {k: v for k, v in params.items() if k != "nthread"}  # each worker uses its own threads
    with client.as_current():  # dask collections and xgboost.dask look the client up, not only take it
        return _fit(client, native, X, y, weights, int(n_rounds), n_workers, eval_set, early_stopping_rounds)


def _fit(client: Any, native: dict[str, Any], X: pd.DataFrame, y: np.ndarray, weights: np.ndarray | None, n_rounds: int,
         n_workers: int, eval_set: tuple[pd.DataFrame, np.ndarray] | None, early_stopping_rounds: int | None) -> DaskFit:
    import xgboost.dask as dxgb

    Xd, yd, wd = _partitioned(client, X, y, weights, n_workers)
    dtrain = dxgb.DaskDMatrix(client, Xd, yd, weight=wd, missing=np.nan)
    evals = []
    if eval_set is not None:
        Xv, yv, _ = _partitioned(client, eval_set[0], eval_set[1], None, n_workers)
        evals = [(dxgb.DaskDMatrix(client, Xv, yv, missing=np.nan), "validation")]
    out = dxgb.train(client, native, dtrain, num_boost_round=n_rounds, evals=evals,
                     early_stopping_rounds=early_stopping_rounds if evals else None, verbose_eval=False)
    booster = out["booster"]
    best = getattr(booster, "best_iteration", None) if (evals and early_stopping_rounds) else None
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    return DaskFit(booster=booster, n_workers=n_workers, history=dict(out.get("history") or {}))


def _adopt(pipe: MLPipeline, booster: Any, X: pd.DataFrame, y: np.ndarray) -> MLPipeline:
    """``pipe`` fitted with ``booster`` (trained elsewhere on ``X``, ``y``): the state and
    in-sample metrics :meth:`MLPipeline.train` would have left."""
    pipe.feature_names_ = [str(c) for c in X.columns]
    pipe.booster_ = booster
    pipe.best_iteration_ = int(booster.num_boosted_rounds()) - 1
    pipe.evals_result_ = {}
    proba = pipe.predict(X)
    pipe.train_metrics_ = {"accuracy": M.accuracy(y, proba), "log_loss": M.log_loss(y, proba),
                           "class_distribution": M.class_distribution(y), "n_samples": int(len(y)),
                           "n_rounds": int(pipe.best_iteration_ + 1)}
    return pipe


def fit_booster_on_dask(
    client: Any,
    features: pd.DataFrame,
    y: pd.Series | np.ndarray,
    params: dict[str, Any] | Any,
    *,
    horizon: int,
    validation_fraction: float = 0.2,
    early_stopping_rounds: int = 30,
    embargo_days: int = 0,
    seed: int = 42,
    n_jobs: int | None = None,
    class_weight: str = "none",
    min_training_samples: int = 1,
) -> tuple[FittedBooster, int]:
    """:func:`signals.modeling.final_fit.fit_booster` on the cluster: rounds by early stopping on
    the purged last slice, then a refit on every row; returns it and the worker count."""
    y_arr, fit_idx, val_idx = stopping_split(features, y, horizon=horizon, validation_fraction=validation_fraction,
                                             embargo_days=embargo_days, min_training_samples=min_training_samples)
    common = dict(horizon=horizon, min_training_samples=1, seed=seed, n_jobs=n_jobs, class_weight=class_weight)
    probe = MLPipeline(params, **common)
    Xf, yf = features.iloc[fit_idx], y_arr[fit_idx]
    stopped = fit(client, probe.booster_params(), Xf, yf, probe.sample_weights(yf), probe.n_rounds(),
                  eval_set=(features.iloc[val_idx], y_arr[val_idx]), early_stopping_rounds=early_stopping_rounds)
    n_rounds = int(stopped.booster.num_boosted_rounds())
    stopping_loss = M.log_loss(y_arr[val_idx], _adopt(probe, stopped.booster, Xf, yf).predict(features.iloc[val_idx]))
    chosen = {**xgb_params_from(params), "n_estimators": n_rounds}
    final = MLPipeline(chosen, **common)
    done = fit(client, final.booster_params(), features, y_arr, final.sample_weights(y_arr), n_rounds)
    _adopt(final, done.booster, features, y_arr)
    return fitted_booster(final, chosen, features, val_idx, stopping_loss), done.n_workers


__all__ = ["DaskFit", "fit", "fit_booster_on_dask"]
