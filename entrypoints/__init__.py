"""MLflow project entry points: one module per lifecycle step (``python -m entrypoints.<step>``).

Each step opens its MLflow runs, logs, and calls the library. This package also holds what the
steps share: loading the labelled training panel and validating string parameters (MLflow passes
every entry-point parameter as a string).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from signals.config import Settings

log = logging.getLogger("signals.entrypoints")


# ------------------------------------------------------------------------------- data
@dataclass
class TrainingData:
    """The labelled panel: features, labels and forward returns on the same (symbol, date) rows."""

    features: pd.DataFrame
    y: pd.Series
    forward_return: pd.Series
    symbols: list[str]
    start: str | None
    end: str | None
    source: dict[str, Any]
    feature_version: str
    n_unlabelled: int = 0
    closes: pd.Series | None = field(default=None, repr=False)  # adjusted closes by (symbol, date): prices trades
    _digest: str | None = field(default=None, repr=False)

    def prices(self) -> pd.DataFrame | None:
        """Adjusted closes as a date x symbol frame (what the strategy backtest prices with)."""
        if self.closes is None:
            return None
        from signals.backtest import wide_closes

        return wide_closes(self.closes)

    @property
    def first_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.features.index.get_level_values("date").min())

    @property
    def last_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.features.index.get_level_values("date").max())

    def frame(self) -> pd.DataFrame:
        """Flat frame (symbol, date, features..., target, forward_return) for MLflow datasets."""
        out = self.features.copy()
        out["target"] = self.y.to_numpy()
        out["forward_return"] = self.forward_return.to_numpy()
        return out.reset_index()

    @property
    def digest(self) -> str:
        if self._digest is None:
            from signals.digest import frame_digest

            self._digest = frame_digest(self.features, self.y, self.forward_return)
        return self._digest

    def window(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "start": self.first_date.date().isoformat(),
            "end": self.last_date.date().isoformat(),
            "n_rows": int(len(self.features)),
        }


def build_training_data(
    features: pd.DataFrame,
    closes: pd.Series,
    *,
    horizon: int,
    up_threshold: float,
    down_threshold: float,
    symbols: Sequence[str],
    start: Any = None,
    end: Any = None,
    source: dict[str, Any] | None = None,
    feature_version: str = "unknown",
) -> TrainingData:
    """Label ``features`` from adjusted ``closes`` (both indexed by (symbol, date)) and keep the
    labelled rows. Labels only use closes inside [start, end]: the last ``horizon`` rows of each
    symbol before ``end`` stay unlabelled rather than peeking past the requested window."""
    from signals.ml.target import forward_returns, label_returns
    from signals.ml.train import labelled

    fwd = forward_returns(closes, horizon)
    y = label_returns(fwd, up_threshold, down_threshold)
    features = features.sort_index()
    X, yl, fl = labelled(features, y, fwd)
    fl = fl.astype("float64")
    return TrainingData(
        features=X,
        y=yl.rename("target"),
        forward_return=fl.rename("forward_return"),
        symbols=list(symbols),
        start=str(start) if start is not None else None,
        end=str(end) if end is not None else None,
        source=dict(source or {}),
        feature_version=str(feature_version),
        n_unlabelled=int(len(features) - len(X)),
        closes=closes.astype("float64"),
    )


def load_training_data(
    settings: "Settings", symbols: Iterable[str] | None = None, start: Any = None, end: Any = None
) -> TrainingData:
    """Features from the feature store + labels from the provider's adjusted closes."""
    from signals.data import get_provider
    from signals.features import FEATURE_VERSION, FeatureStore
    from signals.ml.target import close_panel
    from signals.tracking import data_source_description

    provider = get_provider(settings)
    syms = provider.resolve_symbols(list(symbols or []) or settings.data.symbols or None)
    start = start if start is not None else settings.data.start
    end = end if end is not None else settings.data.end
    features = FeatureStore.from_settings(settings).get_features(syms, start, end, provider)
    closes = close_panel({s: provider.bars(s, start, end) for s in syms})
    ml = settings.ml
    return build_training_data(
        features,
        closes,
        horizon=ml.prediction_horizon,
        up_threshold=ml.up_threshold,
        down_threshold=ml.down_threshold,
        symbols=syms,
        start=start,
        end=end,
        source=data_source_description(provider, syms, start, end),
        feature_version=str(FEATURE_VERSION),
    )


# ------------------------------------------------------------------------------- threads
def prefer_passive_openmp() -> None:
    """Default ``OMP_WAIT_POLICY=PASSIVE`` for this process (a user's setting wins).

    XGBoost's OpenMP threads spin while waiting by default. When the machine has more runnable
    threads than cores (parallel Optuna trials, other jobs) spinning threads steal the cores the
    working threads need: measured here on 2 cores under load, a 2-thread fit was 10-17x slower
    than a 1-thread fit with the default policy, and on par with it with PASSIVE. It only takes
    effect if called before ``xgboost`` is first imported, so the CLI commands and ``main()``
    functions call it first thing.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ------------------------------------------------------------------------------- parameters
_NONE_STRINGS = {"", "none", "null"}


def opt_str(value: str | None) -> str | None:
    if value is None or value.strip().lower() in _NONE_STRINGS:
        return None
    return value.strip()


def opt_int(name: str, minimum: int = 1) -> Callable[[str], int | None]:
    def parse(value: str) -> int | None:
        v = opt_str(value)
        if v is None:
            return None
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} must be an integer, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"--{name} must be >= {minimum}, got {n}")
        return n

    return parse


def opt_date(name: str) -> Callable[[str], str | None]:
    def parse(value: str) -> str | None:
        v = opt_str(value)
        if v is None:
            return None
        try:
            return pd.Timestamp(v).date().isoformat()
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"--{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None

    return parse


def opt_symbols(value: str) -> list[str] | None:
    v = opt_str(value)
    if v is None:
        return None
    syms = [s.strip().upper() for s in v.replace(";", ",").replace(" ", ",").split(",") if s.strip()]
    if not syms:
        raise argparse.ArgumentTypeError(f"--symbols must be a comma-separated list, got {value!r}")
    return syms


def check_date_order(parser: argparse.ArgumentParser, start: str | None, end: str | None) -> None:
    if start and end and pd.Timestamp(start) >= pd.Timestamp(end):
        parser.error(f"--start ({start}) must be before --end ({end})")


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", type=opt_str, default=None, help="settings file (default config/settings.yaml)")
    p.add_argument("--symbols", type=opt_symbols, default=None, help="comma-separated symbols (default: all)")
    p.add_argument("--start", type=opt_date("start"), default=None, help="first date (ISO)")
    p.add_argument("--end", type=opt_date("end"), default=None, help="last date (ISO)")
    return p


def run_main(fn: Callable[[], int | None]) -> None:
    """Run an entry point's body: user errors become a one-line message and exit code 1.

    Log lines and the error message pass through :mod:`signals.redaction` (no credential leaves).
    """
    from signals.errors import SignalsError
    from signals.redaction import install_log_redaction, redact_text

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()
    try:
        code = fn()
    except SignalsError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj
