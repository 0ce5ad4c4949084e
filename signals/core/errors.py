"""The root of every error a user can cause and fix; the CLI turns these into a message
and a non-zero exit instead of a traceback."""

from __future__ import annotations

from typing import Any


class SignalsError(Exception):
    """Base class for expected, user-facing failures.

    They pickle by their message and attributes, not by calling ``__init__`` again (whose
    signature subclasses change), so one raised in a worker process reaches the caller
    with its type, attributes and notes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (type(self), self.args, dict(self.__dict__))


def _restore(cls: type[SignalsError], args: tuple[Any, ...], state: dict[str, Any]) -> SignalsError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc
