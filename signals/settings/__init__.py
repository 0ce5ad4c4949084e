"""Typed settings: the defaults (``defaults.yaml``, shipped with the package), a settings file
and ``SA_`` environment overrides, validated into :class:`Settings`."""

from signals.settings.model import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
