"""Data layer: providers, schemas, validation and corporate-action adjustment."""

from signals.data.base import DataProvider
from signals.data.errors import DataError, DataValidationError, UnknownSymbolError
from signals.data.sources import PROVIDERS, get_provider

__all__ = ["DataError", "DataValidationError", "UnknownSymbolError", "DataProvider", "PROVIDERS", "get_provider"]
