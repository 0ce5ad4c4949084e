"""Which features a data source cannot provide, and why: the data check plus the registry's ``needs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signals.data.checks import check_source
from signals.features.spec import features_needing

if TYPE_CHECKING:
    from signals.settings.model import Settings


def with_lost_features(missing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each missing input (from :func:`signals.data.checks.missing_inputs`) with the features it makes NaN."""
    out = []
    for item in missing:
        names = [f.name for f in features_needing(item["inputs"])]
        out.append({**item, "n_features": len(names), "features": names})
    return out


def check_source_features(settings: "Settings", symbols: list[str] | None = None) -> dict[str, Any]:
    """:func:`signals.data.checks.check_source`, with ``unavailable``: the features each missing input costs."""

    summary = check_source(settings, symbols)
    summary["unavailable"] = with_lost_features(summary.pop("missing_inputs"))
    return summary


def absent_field_summary(absent_fields: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """Symbols grouped by the bar fields they lack (a build's ``BuildStats.absent_fields``), with
    the features that are NaN for them because of it: what the features step reports and logs."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for symbol, fields in sorted(absent_fields.items()):
        groups.setdefault(tuple(fields), []).append(symbol)
    out = []
    for fields, symbols in groups.items():
        names = [f.name for f in features_needing(fields)]
        why = "close-only bars" if set(fields) == {"open", "high", "low", "volume"} else f"no {'/'.join(fields)} in the bars"
        out.append({"inputs": list(fields), "why": why, "symbols": symbols, "n_features": len(names), "features": names})
    return out
