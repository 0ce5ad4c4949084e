"""benchmarks/monitor_replay.py on a small case: the figures it reports are computed as documented."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.monitoring.test_null import panel

REPO = Path(__file__).resolve().parents[2]


def _replay_module():
    spec = importlib.util.spec_from_file_location("monitor_replay", REPO / "benchmarks" / "monitor_replay.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("monitor_replay", mod)
    spec.loader.exec_module(mod)
    return mod


def test_replay_figures_on_a_small_market_with_a_planted_shift():
    mr = _replay_module()
    hist, dates = panel(n_dates=700, n_features=5, phi=0.5, seed=11)
    quiet = mr.Market("quiet", hist, dates[450])
    moved = mr.move_feature(quiet, "moved", dates[560], shift=3.0, feature="f2")
    rules = {mr.DEFAULT_RULE: dict(drift_method="maxstat", drift_level=0.01, null_warmup_days=0, null_gap_days=20)}
    checks = pd.concat([
        mr.replay(quiet, rules=rules, step=5),
        mr.replay(moved, rules=rules, step=5, first_check=int(np.searchsorted(dates, dates[450]))),
    ])
    f = mr.figures(checks)
    assert f["n_changed_checks"] == int(((checks["market"] == "moved") & (checks["date"] >= dates[560])).sum()) > 5
    assert f["n_quiet_checks"] == int((~checks["changed"]).sum())
    assert f["false_alarm_rate"] <= 0.05 and f["day0_alarm"] is False
    assert f["detection_delay_checks"] is not None and 1 <= f["detection_delay_checks"] <= 4
    changed = checks[checks["changed"]].sort_values("date")
    first = int(np.flatnonzero(changed["alarm"].to_numpy())[0]) + 1
    assert f["detection_delay_checks"] == first and changed["top"].iloc[first - 1] == "f2"
    # a market never caught gives no delay rather than a flattering number
    never = checks.assign(alarm=checks["alarm"] & ~checks["changed"])
    assert mr.figures(never)["detection_delay_checks"] is None
