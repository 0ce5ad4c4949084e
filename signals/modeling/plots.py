"""Diagnostic figures logged as PNG artifacts.

Built on ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no global backend
switch, no display needed, and nothing left open in a global figure registry (safe in threads
and in long-running processes). Every function returns the ``Figure``; callers log or save it.
"""

from __future__ import annotations

import textwrap
from typing import Collection, Mapping, Sequence

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


def _title(ax, title: str, fontsize: float = 11.0) -> None:  # noqa: ANN001
    """A title that fits: wrapped to the figure's width (a long title is otherwise cut on both sides)."""
    width_px = 0.85 * ax.figure.get_figwidth() * ax.figure.dpi  # the axes span, within the figure's margins
    em_px = fontsize * ax.figure.dpi / 72
    chars = max(20, int(width_px / (0.6 * em_px)))  # ~0.6 em per character in the default font
    ax.set_title(textwrap.fill(title, chars), fontsize=fontsize)


def feature_importance(importance: Mapping[str, float], top: int = 25, title: str = "Feature importance (gain)",
                       marked: Collection[str] = (), marked_label: str = "built from synthetic data"):
    """Top features by gain; those in ``marked`` (e.g. computed from synthetic tables) are drawn in
    another colour, suffixed ``*`` and counted in the legend, so nobody reads them as real signal."""
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top]
    marked = set(marked)
    fig = _figure(7.5, max(3.0, 0.28 * len(items) + 1.4))
    ax = fig.add_subplot()
    if items:
        names, values = zip(*items)
        pos = np.arange(len(items))[::-1]
        hit = [n in marked for n in names]
        colors = ["#dd8452" if h else "#4c72b0" for h in hit]
        ax.barh(pos, values, color=colors)
        ax.set_yticks(pos, labels=[f"{n} *" if h else n for n, h in zip(names, hit)], fontsize=8)
        if any(hit):
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color="#dd8452", label=f"* {marked_label} ({sum(hit)} of {len(items)})"),
                               Patch(color="#4c72b0", label="real inputs")], fontsize=8, loc="lower right")
    ax.set_xlabel("total gain share" if items and abs(sum(v for _, v in items) - 1) < 1e-6 else "gain")
    _title(ax, title)
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
    _title(ax, title)
    return fig


def reliability_diagram(
    y: np.ndarray, curves: Mapping[str, np.ndarray], n_bins: int = 10, title: str = "Reliability (top label)"
):
    """One line per probability set (e.g. {"raw": p0, "calibrated": p1}); ECE in the legend.

    The axes are zoomed to where the points are (3-class top-label confidence rarely leaves
    0.35-0.8), and a lower panel shows how many rows each bin holds: a point far from the
    diagonal on 12 rows is noise, on 2,000 rows it is not."""
    from matplotlib.gridspec import GridSpec

    fig = _figure(6.5, 6.0)
    grid = GridSpec(2, 1, figure=fig, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0])
    counts_ax = fig.add_subplot(grid[1], sharex=ax)
    lo, hi = 1.0, 0.0
    tables = {name: (M.reliability_table(y, proba, n_bins), M.expected_calibration_error(y, proba, n_bins))
              for name, proba in curves.items()}
    width = 0.8 / max(n_bins, 1) / max(len(tables), 1)
    for i, (name, (t, ece)) in enumerate(tables.items()):
        mask = t["count"] > 0
        conf, acc, n = t["confidence"][mask], t["accuracy"][mask], t["count"][mask]
        line = ax.plot(conf, acc, marker="o", label=f"{name} (ECE {ece:.3f})")[0]
        counts_ax.bar(conf + (i - (len(tables) - 1) / 2) * width, n, width=width, color=line.get_color(), label=name)
        if len(conf):
            lo, hi = min(lo, float(np.min(conf)), float(np.min(acc))), max(hi, float(np.max(conf)), float(np.max(acc)))
    if hi < lo:
        lo, hi = 0.0, 1.0
    pad = max(0.03, 0.08 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("observed accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    counts_ax.set_xlabel("mean predicted confidence (top label)")
    counts_ax.set_ylabel("rows per bin")
    counts_ax.grid(alpha=0.3)
    _title(ax, title)
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
            _title(ax, title)
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
    _title(ax, title)
    return fig
