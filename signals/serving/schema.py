"""The signal record: one self-describing JSON object per (symbol, as-of date) prediction.

The same record, built by :func:`signal_record`, is what the model server returns per row,
what ``signals generate --json`` prints for every symbol, and what the Redis mirror stores under
``{p}:signals:latest`` / ``{p}:signals:{symbol}``. :data:`SIGNAL_SCHEMA` is its JSON Schema
(draft 2020-12); :func:`validate_record` checks a record against it without a dependency.

Time: ``as_of`` is the bar's trading date at 00:00 UTC (``2013-03-01T00:00:00+00:00``): a daily
bar is labelled by its date, and the features use data up to that day's close. ``valid_until``
is ``as_of`` plus ``horizon`` weekdays (pandas business days): exchange holidays are not skipped,
so it can fall a holiday or two *early*, never late -- a consumer drops a signal no later than
the label's horizon ends.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from signals.core.vocabulary import CLASS_NAMES, SIGNAL_NONE, SIGNALS

SCHEMA_ID = "signals.signal_record/1"

#: environment variables ``signals serve`` sets so the served model names itself in every record
ENV_MODEL_NAME = "SIGNALS_MODEL_NAME"
ENV_MODEL_VERSION = "SIGNALS_MODEL_VERSION"

_NUM = {"type": "number"}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_STR_OR_NULL = {"type": ["string", "null"]}

SIGNAL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "signal record",
    "type": "object",
    "required": [
        "model_name", "model_version", "symbol", "as_of", "horizon", "valid_until", "threshold",
        "p_down", "p_flat", "p_up", "predicted_class", "confidence", "signal", "reason",
    ],
    "properties": {
        "model_name": {"type": ["string", "null"], "description": "registered model name"},
        "model_version": {"type": ["string", "null"], "description": "registry version id"},
        "symbol": {"type": ["string", "null"], "description": "null when the request did not say"},
        "as_of": {**_STR_OR_NULL, "format": "date-time", "description": "bar date, 00:00 UTC, with offset"},
        "horizon": {"type": ["integer", "null"], "minimum": 1, "description": "trading days the label looks ahead"},
        "valid_until": {**_STR_OR_NULL, "format": "date-time", "description": "as_of + horizon weekdays"},
        "threshold": {**_PROB, "description": "confidence a signal must exceed"},
        "p_down": _PROB,
        "p_flat": _PROB,
        "p_up": _PROB,
        "predicted_class": {"enum": list(CLASS_NAMES)},
        "confidence": {**_PROB, "description": "the top class's calibrated probability"},
        "signal": {"enum": list(SIGNALS)},
        "reason": {**_STR_OR_NULL, "description": "why the signal is NONE; null for LONG/SHORT"},
    },
    "additionalProperties": True,
}

RECORD_FIELDS: tuple[str, ...] = tuple(SIGNAL_SCHEMA["required"])


def as_of_iso(day: Any) -> str | None:
    """A bar date as ISO-8601 at 00:00 UTC with offset (None stays None)."""
    if day is None or (isinstance(day, float) and math.isnan(day)) or day is pd.NaT:
        return None
    ts = pd.Timestamp(day)
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts.tz_localize("UTC")
    return ts.normalize().isoformat()


def valid_until_iso(day: Any, horizon: int | None) -> str | None:
    """``as_of`` + ``horizon`` weekdays, 00:00 UTC (see the module docstring)."""
    start = as_of_iso(day)
    if start is None or horizon is None:
        return None
    return (pd.Timestamp(start) + pd.offsets.BDay(int(horizon))).isoformat()


def signal_record(
    *,
    model_name: str | None,
    model_version: str | None,
    symbol: str | None,
    as_of: Any,
    horizon: int | None,
    threshold: float,
    p_down: float,
    p_flat: float,
    p_up: float,
    predicted_class: int | str,
    confidence: float,
    signal: str,
    reason: str | None,
) -> dict[str, Any]:
    """One record in :data:`SIGNAL_SCHEMA` (class given as 0/1/2 or its name)."""
    cls = CLASS_NAMES[int(predicted_class)] if not isinstance(predicted_class, str) else predicted_class
    return {
        "model_name": None if model_name is None else str(model_name),
        "model_version": None if model_version in (None, "") else str(model_version),
        "symbol": None if symbol is None or (isinstance(symbol, float) and math.isnan(symbol)) else str(symbol),
        "as_of": as_of_iso(as_of),
        "horizon": None if horizon is None else int(horizon),
        "valid_until": valid_until_iso(as_of, horizon),
        "threshold": float(threshold),
        "p_down": float(p_down),
        "p_flat": float(p_flat),
        "p_up": float(p_up),
        "predicted_class": cls,
        "confidence": float(confidence),
        "signal": str(signal),
        "reason": None if reason is None or (isinstance(reason, float) and math.isnan(reason)) else str(reason),
    }


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "null": (type(None),), "boolean": (bool,),
}


def validate_record(record: Any) -> list[str]:
    """Problems of ``record`` against :data:`SIGNAL_SCHEMA` (required keys, types, enums, ranges).

    A small subset of JSON Schema, enough for this flat schema, so no validator dependency is
    needed; an empty list means valid.
    """
    if not isinstance(record, dict):
        return [f"not an object: {type(record).__name__}"]
    errors = [f"missing {k}" for k in SIGNAL_SCHEMA["required"] if k not in record]
    for key, spec in SIGNAL_SCHEMA["properties"].items():
        if key not in record:
            continue
        v = record[key]
        if "enum" in spec:
            if v not in spec["enum"]:
                errors.append(f"{key}={v!r} not one of {spec['enum']}")
            continue
        types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        ok = any(isinstance(v, _TYPES[t]) and not (t in ("number", "integer") and isinstance(v, bool)) for t in types)
        if not ok:
            errors.append(f"{key}={v!r} is not {' or '.join(types)}")
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not math.isfinite(v):
                errors.append(f"{key}={v!r} is not finite")
            elif "minimum" in spec and v < spec["minimum"] or "maximum" in spec and v > spec["maximum"]:
                errors.append(f"{key}={v!r} out of range")
        if spec.get("format") == "date-time" and isinstance(v, str):
            ts = pd.Timestamp(v)
            if ts.tzinfo is None:
                errors.append(f"{key}={v!r} has no timezone offset")
    if record.get("signal") == SIGNAL_NONE and not record.get("reason"):
        errors.append("signal NONE needs a reason")
    if record.get("signal") in ("LONG", "SHORT") and record.get("reason") is not None:
        errors.append("a trade has reason null")
    return errors
