"""The data sources by name: what ``data.provider`` selects.

Kept apart from :mod:`signals.data.base` (the interface) so that the concrete sources can
import the interface without the interface importing them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signals.data.base import DataProvider
from signals.data.parquet import ParquetProvider
from signals.data.sample import SampleProvider
from signals.data.skfolio_sp500 import SkfolioProvider
from signals.data.sql import SqlProvider

if TYPE_CHECKING:
    from signals.settings.model import Settings

#: every value ``data.provider`` accepts (the config and the CLI offer exactly these)
PROVIDERS = ("sample", "skfolio", "parquet", "sql")


def get_provider(settings: "Settings") -> DataProvider:
    """Build the provider selected by ``settings.data.provider`` (each imports its own readers)."""
    kind = settings.data.provider
    if kind == "sample":

        return SampleProvider()
    if kind == "skfolio":

        return SkfolioProvider()
    if kind == "parquet":

        return ParquetProvider(settings.data.path)  # type: ignore[arg-type]
    if kind == "sql":

        return SqlProvider(settings.data.sql_url, schema=settings.data.sql_schema)  # type: ignore[arg-type]
    raise ValueError(f"data.provider: unknown provider {kind!r}")
