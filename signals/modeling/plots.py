"""Diagnostic figures logged as PNG artifacts.

Built on ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no global backend
switch, no display needed, and nothing left open in a global figure registry (safe in threads
and in long-running processes). Every function returns the ``Figure``; callers log or save it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from signals.modeling import metrics as M

CLASS_NAMES = M.CLASS_NAMES


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path) -> None:  # noqa: ANN001
    fig.savefig(path, format="png")


def feature_importance(importance: Mapping[str, float], top: int = 25, title: str = "Feature importance (gain)"):
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig = _figure(7.5, max(3.0, 0.28 * len(items) + 1.2))
    ax = fig.add_subplot()
    if items:
        names, values = zip(*items)
        pos = np.arange(len(items))[::-1]
        ax.barh(pos, values, color="#4c72b0")
        ax.set_yticks(pos, labels=names, fontsize=8)
    ax.set_xlabel("total gain share" if items and abs(sum(v for _, v in items) - 1) < 1e-6 else "gain")
    ax.set_title(title)
    return fig


def confusion_matrix(y: np.ndarray, proba_or_pred: np.ndarray, title: str = "Confusion matrix"):
    arr = np.asarray(proba_or_pred)
    pred = arr.argmax(axis=1) if arr.ndim == 2 else arr
    cm = M.confusion_matrix(y, pred)
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(3), labels=CLASS_NAMES)
    ax.set_yticks(range(3), labels=CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    total = max(int(cm.sum()), 1)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{cm[i, j]}\n{cm[i, j] / total:.1%}", ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title(title)
    return fig


def reliability_diagram(
    y: np.ndarray, curves: Mapping[str, np.ndarray], n_bins: int = 10, title: str = "Reliability (top label)"
):
    """One line per probability set (e.g. {"raw": p0, "calibrated": p1}); ECE in the legend."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, proba in curves.items():
        t = M.reliability_table(y, proba, n_bins)
        mask = t["count"] > 0
        ece = M.expected_calibration_error(y, proba, n_bins)
        ax.plot(t["confidence"][mask], t["accuracy"][mask], marker="o", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted confidence")
    ax.set_ylabel("observed accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    return fig


def window_metrics(frame: pd.DataFrame, metrics: Sequence[tuple[str, str | None]] | None = None,
                   title: str = "Out-of-sample metrics per walk-forward window"):
    """``frame`` has a ``test_start`` column and metric columns; pairs (metric, baseline or None)."""
    metrics = metrics or [("log_loss", "baseline_prior_log_loss"), ("log_loss_raw", "baseline_prior_log_loss"),
                          ("ece", "ece_raw"), ("rank_ic", None)]
    fig = _figure(8.0, 2.4 * len(metrics) + 0.6)
    x = pd.to_datetime(frame["test_start"])
    for i, (name, base) in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, i + 1)
        if name in frame:
            ax.plot(x, frame[name], marker="o", label=name)
        if base and base in frame:
            ax.plot(x, frame[base], marker="x", linestyle="--", label=base)
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_title(title)
    return fig


def cumulative_returns(daily: pd.DataFrame, title: str = "Strategy (net of costs) vs buy-and-hold"):
    """Growth of 1 from a backtest's daily frame (columns ``strategy_return``,
    ``benchmark_return``; see :func:`signals.trading.backtest.run_backtest`)."""
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot()
    for col, label, style in (("strategy_return", "strategy", "-"), ("benchmark_return", "buy and hold", "--")):
        if col in daily:
            ax.plot(daily.index, (1.0 + daily[col].fillna(0.0)).cumprod(), linestyle=style, label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_ylabel("growth of 1")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return fig
