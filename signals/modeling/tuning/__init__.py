"""Optuna per walk-forward window (``objective``), a window's study run alone or by several
processes (``parallel``), and the walk-forward loop with forward-chained calibration
(``walk_forward``). The names below are the public API."""

from signals.modeling.model import InsufficientDataError
from signals.modeling.tuning.objective import (
    SEARCH_SPACE,
    SEARCH_SPACE_VERSION,
    TrialObjective,
    TrialRecord,
    TuneConfig,
    TuneWorkerError,
    WindowTuning,
    finished_trials,
    make_pruning_callback,
    study_name_for,
    suggest_params,
)
from signals.modeling.tuning.parallel import fixed_window, tune_window
from signals.modeling.tuning.walk_forward import (
    OOS_COLUMNS,
    WalkForwardHooks,
    WalkForwardResult,
    WindowResult,
    choose_final_params,
    run_walk_forward,
    stitch_predictions,
)

__all__ = [
    "InsufficientDataError", "OOS_COLUMNS", "SEARCH_SPACE", "SEARCH_SPACE_VERSION", "TrialObjective", "TrialRecord", "TuneConfig",
    "TuneWorkerError", "WalkForwardHooks", "WalkForwardResult", "WindowResult", "WindowTuning", "choose_final_params",
    "finished_trials", "fixed_window", "make_pruning_callback", "run_walk_forward", "stitch_predictions",
    "study_name_for", "suggest_params", "tune_window",
]
