"""Data layer: providers, schemas, validation and corporate-action adjustment."""

from signals.data.errors import DataError, DataValidationError, UnknownSymbolError
from signals.data.providers import DataProvider, get_provider

__all__ = ["DataError", "DataValidationError", "UnknownSymbolError", "DataProvider", "get_provider"]
