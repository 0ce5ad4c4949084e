"""One symbol's rows of an event table as plain numpy columns.

The feature store splits each event table by symbol once and hands every symbol its own
:class:`EventArrays`. The calculators read a dozen columns per symbol; on a per-symbol
slice of a DataFrame each column read costs ~70 us of pandas machinery, on this it is a
dict lookup. The calculators accept either (see :func:`column`).
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np
import pandas as pd


class EventArrays:
    """Read-only columns of equal length, with the few DataFrame traits the calculators use."""

    __slots__ = ("_columns", "_n")

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        self._columns = columns
        self._n = lengths.pop() if lengths else 0

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "EventArrays":
        return cls({str(c): frame[c].to_numpy() for c in frame.columns})

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def empty(self) -> bool:
        return self._n == 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def take(self, positions: np.ndarray) -> "EventArrays":
        return EventArrays({c: a[positions] for c, a in self._columns.items()})

    def empty_like(self) -> "EventArrays":
        return self.take(np.zeros(0, dtype=np.int64))

    def __getstate__(self) -> tuple[dict[str, np.ndarray], int]:
        return self._columns, self._n

    def __setstate__(self, state: tuple[dict[str, np.ndarray], int]) -> None:
        self._columns, self._n = state

    def __repr__(self) -> str:
        return f"EventArrays({self._n} rows: {', '.join(self._columns)})"


class GroupedEvents:
    """One event table's rows grouped by symbol, each symbol's rows a contiguous run in
    their original order; :meth:`get` hands out a symbol's rows as views.

    Why not a dict of per-symbol :class:`EventArrays`: each feature build task is sent its
    symbols' part of the table (:meth:`subset`), and pickling a few whole columns costs
    milliseconds where a dozen small arrays per symbol cost tens of them. The grouping
    column is not stored (it is one value per run); :meth:`get` gives it back.
    """

    __slots__ = ("_rows", "_bounds", "_by", "_order")

    def __init__(self, frame: pd.DataFrame, by: str = "symbol") -> None:
        names = [str(c) for c in frame.columns]
        if by not in names:
            raise ValueError(f"no column {by!r} to group by")
        codes, keys = pd.factorize(frame[by].to_numpy())
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
        self._rows = {c: frame[c].to_numpy()[order] for c in names if c != by}
        self._bounds = {str(k): (int(bounds[i]), int(bounds[i + 1])) for i, k in enumerate(keys)}
        self._by, self._order = by, names

    def get(self, key: str, default: "EventArrays | None" = None) -> "EventArrays | None":
        """``key``'s rows (views into the table), or ``default`` when it has none."""
        bounds = self._bounds.get(key)
        if bounds is None:
            return default
        lo, hi = bounds
        columns = {c: (np.full(hi - lo, key, dtype=object) if c == self._by else self._rows[c][lo:hi]) for c in self._order}
        return EventArrays(columns)

    def subset(self, keys: Iterable[str]) -> "GroupedEvents":
        """Only ``keys``' rows, each key's in their original order."""
        present = [k for k in keys if k in self._bounds]
        runs = [self._bounds[k] for k in present]
        positions = np.concatenate([np.arange(lo, hi) for lo, hi in runs]) if runs else np.zeros(0, dtype=np.intp)
        bounds, at = {}, 0
        for key, (lo, hi) in zip(present, runs):
            bounds[key] = (at, at + hi - lo)
            at += hi - lo
        out = GroupedEvents.__new__(GroupedEvents)
        out.__setstate__(({c: a[positions] for c, a in self._rows.items()}, bounds, self._by, self._order))
        return out

    def __contains__(self, key: object) -> bool:
        return key in self._bounds

    def __len__(self) -> int:
        return len(self._bounds)

    def keys(self) -> list[str]:
        return list(self._bounds)

    def __getstate__(self) -> tuple:
        return self._rows, self._bounds, self._by, self._order

    def __setstate__(self, state: tuple) -> None:
        self._rows, self._bounds, self._by, self._order = state


Events = Union[pd.DataFrame, EventArrays]


def column(rows: Events, name: str, dtype: type | None = None) -> np.ndarray:
    """Column ``name`` of a DataFrame or :class:`EventArrays` as a numpy array."""
    values = rows[name]
    arr = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    return arr if dtype is None else arr.astype(dtype, copy=False)


def columns_of(rows: Events) -> Iterable[str]:
    return [str(c) for c in rows.columns]
