"""The one frame digest used for cache keys, study names, dataset digests and step reuse."""

import numpy as np
import pandas as pd

from signals.core.digest import frame_digest


def test_every_row_index_level_and_column_name_counts() -> None:
    idx = pd.MultiIndex.from_product([["A", "B"], pd.bdate_range("2020-01-01", periods=6000)], names=["symbol", "date"])
    a = pd.DataFrame({"x": np.arange(len(idx), dtype=float)}, index=idx)
    base = frame_digest(a)
    assert frame_digest(a.copy()) == base
    late = a.copy()
    late.iloc[-1, 0] = -1.0  # beyond MLflow's 10,000-row digest window
    assert frame_digest(late) != base
    relabelled = a.copy()
    relabelled.index = pd.MultiIndex.from_product([["A", "C"], idx.levels[1]], names=["symbol", "date"])
    assert frame_digest(relabelled) != base
    assert frame_digest(a.rename(columns={"x": "y"})) != base
    assert frame_digest(a.astype("float32")) != base


def test_several_frames_none_and_index_flag() -> None:
    a = pd.DataFrame({"x": [1.0, 2.0]})
    s = pd.Series([0, 1], name="y")
    assert frame_digest(a, s) != frame_digest(a) != frame_digest(a, None)
    assert frame_digest(a, index=False) == frame_digest(a.set_axis([10, 11]), index=False)
    assert frame_digest(a) != frame_digest(a.set_axis([10, 11]))


def test_digests_are_stable_across_releases() -> None:
    """Cache keys, study names and MLflow dataset digests persist: the bytes hashed must not drift
    (values pinned from the implementation that wrote the first caches)."""
    a = pd.DataFrame({"x": [1.5, 2.5, np.nan], "y": [1, 2, 3]}, index=pd.date_range("2020-01-01", periods=3, name="date"))
    b = pd.DataFrame({"s": ["a", "b", "c"], "v": [0.1, 0.2, 0.3], "c": pd.Categorical(["u", "v", "u"])})
    h = pd.DataFrame(np.arange(6.0).reshape(3, 2), columns=["p", "q"])
    assert frame_digest(a) == "613592913e624e64fce3e8c6b41bd165"
    assert frame_digest(b, index=False) == "58faf7a38e0c65bd9b03a9ad4873c1fd"
    assert frame_digest(h) == "d01b3bbc31b13185eab5dab8c2dcc637"
    assert frame_digest(a, None, h) == "065fc733f48abab1a9071c3c584b939c"
