"""The root of every error a user can cause and fix; the CLI turns these into a message
and a non-zero exit instead of a traceback."""


class SignalsError(Exception):
    """Base class for expected, user-facing failures."""
