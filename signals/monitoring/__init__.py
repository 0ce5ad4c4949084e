"""Watching the champion: PSI drift, rolling accuracy and staleness (``monitor``, ``psi``), the
predictions log, and alerts."""
