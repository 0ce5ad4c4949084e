"""Errors the feature store raises for problems a user can fix (bad input, bad range)."""

from __future__ import annotations

from signals.core.errors import SignalsError


class FeatureError(SignalsError, ValueError):
    """Invalid input to a feature calculation or an unusable request."""
