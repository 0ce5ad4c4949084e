"""Adapters at the edges: MLflow tracking helpers and the Redis mirror (a registry listener the
lifecycle wires in). They import library types, never the lifecycle or the CLI."""
