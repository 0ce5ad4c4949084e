"""The feature spec: coverage, naming, the version hash and the generated docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signals.features import FEATURE_VERSION, FEATURES, FeatureSpec, feature_names
from signals.features import spec as registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_at_least_fifty_features_with_name_category_description() -> None:
    assert len(FEATURES) >= 50
    assert feature_names() == [f.name for f in FEATURES]
    assert len(set(feature_names())) == len(FEATURES)
    for f in FEATURES:
        assert f.category in registry.CATEGORIES
        assert f.description and "\n" not in f.description
        assert f.name.isidentifier() and f.name == f.name.lower()


def test_every_category_is_populated_and_technical_has_thirty() -> None:
    counts = {c: len(registry.names_for(c)) for c in registry.CATEGORIES}
    assert counts["technical"] >= 30
    assert all(n > 0 for n in counts.values())
    for required in ("rsi_14", "macd_line", "macd_signal", "macd_hist", "roc_10", "stoch_k", "stoch_d",
                     "price_vs_sma_200", "price_vs_ema_26", "adx_14", "atr_14_pct", "bb_position", "bb_width",
                     "hv_20", "hv_60", "obv_flow_20", "vwap_dist_20", "volume_ratio_20", "dist_52w_high",
                     "pe_rel_sector", "ev_ebitda_rel_sector", "dividend_yield", "spy_corr_60", "rs_sector_20",
                     "vix_level", "insider_net_buys_90", "days_to_cover", "short_interest_change",
                     "day_of_week", "is_month_end"):
        assert required in feature_names(), required


def test_no_raw_scale_dependent_features() -> None:
    raw = {"open", "high", "low", "close", "volume", "obv", "vwap", "sma_20", "ema_12", "atr_14", "macd"}
    assert not raw & set(feature_names())


def test_feature_version_hashes_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FEATURE_VERSION.startswith(registry.FEATURE_CODE_VERSION + ".")
    assert registry._compute_version() == FEATURE_VERSION
    monkeypatch.setattr(registry, "FEATURES", [*FEATURES, FeatureSpec("extra", "technical", "an extra feature")])
    assert registry._compute_version() != FEATURE_VERSION
    monkeypatch.setattr(registry, "FEATURES", FEATURES)
    monkeypatch.setattr(registry, "FEATURE_CODE_VERSION", registry.FEATURE_CODE_VERSION + "x")
    assert registry._compute_version() != FEATURE_VERSION


def test_category_frame_rejects_unregistered_or_missing_columns() -> None:
    idx = pd.date_range("2024-01-01", periods=2)
    cols = {n: np.zeros(2) for n in registry.names_for("temporal")}
    frame = registry.category_frame("temporal", cols, idx)
    assert list(frame.columns) == registry.names_for("temporal") and (frame.dtypes == "float64").all()
    with pytest.raises(RuntimeError, match="unregistered"):
        registry.category_frame("temporal", {**cols, "surprise": np.zeros(2)}, idx)
    del cols["month"]
    with pytest.raises(RuntimeError, match="missing"):
        registry.category_frame("temporal", cols, idx)


@pytest.mark.parametrize(
    ("label", "key"),
    [("Technology", "information_technology"), ("Health Care", "health_care"), ("Financial Services", "financials"),
     ("Sector0", "other"), (None, None), ("", None)],
)
def test_canonical_sector(label: str | None, key: str | None) -> None:
    assert registry.canonical_sector(label) == key


def test_docs_are_generated_from_the_registry() -> None:
    doc = (REPO_ROOT / "docs" / "features.md").read_text()
    assert doc == registry.registry_markdown(), "regenerate with: signals features list --markdown > docs/features.md"
    for f in FEATURES:
        assert f"`{f.name}`" in doc
