"""Interval and run idioms over sorted numpy arrays, written once.

* :func:`containing`: which of a set of sorted, disjoint ``[start, end)`` intervals holds each
  point (or each ``[lo, hi)`` range) -- page-table leaves, dump segments, RAM ranges;
* :func:`index_in_sorted`: the position of each value in a sorted array of unique values;
* :func:`split_runs`: the ``[start, end)`` index bounds of runs of consecutive elements;
* :func:`merge_ranges`: the union of ``[start, end)`` ranges as sorted, disjoint ranges.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def containing(starts: np.ndarray, ends: np.ndarray, lo: np.ndarray | np.integer | int,
               hi: np.ndarray | np.integer | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The interval holding each ``lo`` (or each whole ``[lo, hi)``), among the intervals
    ``[starts[i], ends[i])``, sorted by start and disjoint.

    Returns ``(index, ok)``: ``index`` is that of the last interval starting at or before ``lo``,
    clamped to 0 so it can index ``starts``/``ends`` directly; ``ok`` says whether that interval
    holds ``lo`` (``lo < end``) or, given ``hi``, the whole range (``hi <= end``). Both have the
    shape of ``lo``. Example: intervals [10, 20) and [30, 40), ``lo`` = [5, 10, 25, 39] gives
    index [0, 0, 0, 1] and ok [False, True, False, True].
    """
    lo = np.asarray(lo, dtype=starts.dtype) if isinstance(lo, int) else np.asarray(lo)
    if len(starts) == 0:
        return np.zeros(np.shape(lo), np.int64), np.zeros(np.shape(lo), bool)
    i = np.searchsorted(starts, lo, side="right").astype(np.int64) - 1
    ic = np.maximum(i, 0)
    inside = lo < ends[ic] if hi is None else np.asarray(hi) <= ends[ic]
    return ic, (i >= 0) & inside


def index_in_sorted(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Position of each ``x`` in ``values`` (sorted ascending, unique), -1 where it is absent.

    Example: ``values`` = [2, 5, 9], ``x`` = [5, 3, 9, 10] gives [1, -1, 2, -1].
    """
    x = np.asarray(x, dtype=values.dtype)
    if len(values) == 0:
        return np.full(x.shape, -1, dtype=np.int64)
    i = np.minimum(np.searchsorted(values, x), len(values) - 1)
    return np.where(values[i] == x, i, -1).astype(np.int64)


def split_runs(breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[start, end)`` index bounds of the runs of ``len(breaks) + 1`` elements, where
    ``breaks[i]`` is true when element ``i + 1`` starts a new run (does not continue element ``i``).

    Example: keys [7, 7, 8, 8, 9] -> ``breaks = keys[1:] != keys[:-1]`` = [F, T, F, T] gives
    starts [0, 2, 4] and ends [2, 4, 5].
    """
    first = np.ones(len(breaks) + 1, dtype=bool)
    first[1:] = breaks
    starts = np.flatnonzero(first)
    return starts, np.append(starts[1:], len(first))


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of ``[start, end)`` ranges (any order, may overlap) as sorted, disjoint ranges;
    ranges that overlap or touch become one, empty ranges are dropped.

    Example: [(5, 8), (0, 2), (2, 3), (6, 10), (12, 12)] gives [(0, 3), (5, 10)].
    """
    out: list[tuple[int, int]] = []
    for s, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
