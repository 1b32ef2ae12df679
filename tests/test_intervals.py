"""The interval and run idioms of vmemdbg.intervals, on worked examples."""

from __future__ import annotations

import numpy as np

from vmemdbg.intervals import containing, index_in_sorted, merge_ranges, split_runs


def test_containing_points() -> None:
    """Intervals [10, 20) and [30, 40): 5 is before both, 10 and 19 are in the first, 20 and 25 in
    the gap, 39 in the second, 40 and 1000 past it."""
    starts = np.array([10, 30], np.uint64)
    ends = np.array([20, 40], np.uint64)
    idx, ok = containing(starts, ends, np.array([5, 10, 19, 20, 25, 39, 40, 1000], np.uint64))
    assert ok.tolist() == [False, True, True, False, False, True, False, False]
    assert idx.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]  # clamped: usable as an index even where not ok


def test_containing_ranges() -> None:
    """A range is held only if it ends at or before its interval's end."""
    starts = np.array([0, 100], np.int64)
    ends = np.array([50, 200], np.int64)
    lo = np.array([0, 40, 100, 150, -5], np.int64)
    hi = np.array([50, 60, 200, 201, 5], np.int64)
    idx, ok = containing(starts, ends, lo, hi)
    assert ok.tolist() == [True, False, True, False, False]
    assert idx.tolist() == [0, 0, 1, 1, 0]


def test_containing_scalar_and_empty() -> None:
    """A scalar gives 0-d answers; no intervals hold nothing."""
    idx, ok = containing(np.array([4096], np.uint64), np.array([8192], np.uint64), np.uint64(5000))
    assert (int(idx), bool(ok)) == (0, True)
    idx, ok = containing(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.array([1, 2], np.uint64))
    assert idx.tolist() == [0, 0] and ok.tolist() == [False, False]


def test_index_in_sorted() -> None:
    values = np.array([2, 5, 9], np.int64)
    assert index_in_sorted(values, np.array([5, 3, 9, 10, 0, 2])).tolist() == [1, -1, 2, -1, -1, 0]
    assert index_in_sorted(np.zeros(0, np.int64), np.array([1])).tolist() == [-1]


def test_split_runs() -> None:
    keys = np.array([7, 7, 8, 8, 9])
    starts, ends = split_runs(keys[1:] != keys[:-1])
    assert starts.tolist() == [0, 2, 4] and ends.tolist() == [2, 4, 5]
    starts, ends = split_runs(np.zeros(0, bool))  # one element: one run
    assert starts.tolist() == [0] and ends.tolist() == [1]
    starts, ends = split_runs(np.ones(3, bool))  # every element its own run
    assert starts.tolist() == [0, 1, 2, 3] and ends.tolist() == [1, 2, 3, 4]


def test_merge_ranges() -> None:
    """Overlapping and touching ranges merge, nested ones vanish, empty ones are dropped."""
    assert merge_ranges([(5, 8), (0, 2), (2, 3), (6, 10), (12, 12)]) == [(0, 3), (5, 10)]
    assert merge_ranges([(0, 100), (10, 20), (100, 101), (200, 300)]) == [(0, 101), (200, 300)]
    assert merge_ranges([]) == []
