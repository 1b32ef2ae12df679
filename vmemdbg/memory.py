"""Memory sources: the one small interface the engine reads a kernel through.

A source gives physical reads, the VMCOREINFO text if it has one, and the list of physical
ranges it holds. Vectorised gathers (:meth:`MemorySource.gather_u64`) let hot loops read many
scattered words without a Python call per word. Sources are read-only: nothing here writes to a
dump or a live kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import MemoryFault


class MemorySource:
    """Base class of physical-memory sources.

    Subclasses implement :meth:`read_phys` and :meth:`ranges`; they may override
    :meth:`gather_u64` with a vectorised version.
    """

    #: Human-readable description (path and format).
    description: str = "memory"

    def read_phys(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at physical ``addr``; raise :class:`MemoryFault` if any is missing."""
        raise NotImplementedError

    def ranges(self) -> list[tuple[int, int]]:
        """Sorted, merged ``[start, end)`` physical ranges the source can read."""
        raise NotImplementedError

    def vmcoreinfo(self) -> bytes | None:
        """The VMCOREINFO text carried by the source (ELF note, QEMU device...), if any."""
        return None

    def find_vmcoreinfo(self) -> bytes | None:
        """The VMCOREINFO text found by scanning the source's memory, when it carries no note
        (a QEMU dump without ``-device vmcoreinfo``); None if the source cannot or did not find it."""
        return None

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read one little-endian u64 at each physical address.

        Returns ``(values, ok)``: ``values[i]`` is valid where ``ok[i]`` is true. The generic
        version reads the pages holding the words, a run of adjacent pages per
        :meth:`read_phys` call (:func:`gather_u64_by_pages`); file-backed sources override it.
        """
        return gather_u64_by_pages(self.read_phys, addrs)

    def close(self) -> None:
        """Release files or handles."""


class RecordingSource(MemorySource):
    """Wraps a source and records every physical range read (used by ``extract``)."""

    def __init__(self, inner: MemorySource):
        self.inner = inner
        self.description = inner.description
        self.reads: list[tuple[int, int]] = []
        self.gathered: list[np.ndarray] = []

    def read_phys(self, addr: int, size: int) -> bytes:
        """Read through the inner source and record the range (even when it faults)."""
        self.reads.append((addr, size))
        return self.inner.read_phys(addr, size)

    def ranges(self) -> list[tuple[int, int]]:
        """The inner source's ranges."""
        return self.inner.ranges()

    def vmcoreinfo(self) -> bytes | None:
        """The inner source's VMCOREINFO."""
        return self.inner.vmcoreinfo()

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gather through the inner source and record the addresses."""
        addrs = np.asarray(addrs, dtype=np.uint64)
        self.gathered.append(addrs.copy())
        return self.inner.gather_u64(addrs)

    def pages(self, page_size: int = 4096) -> np.ndarray:
        """Sorted unique page-aligned physical addresses of everything read so far."""
        parts: list[np.ndarray] = []
        for addr, size in self.reads:
            first = addr // page_size
            last = (addr + max(size, 1) - 1) // page_size
            parts.append(np.arange(first, last + 1, dtype=np.uint64))
        for g in self.gathered:
            parts.append(g // np.uint64(page_size))
        if not parts:
            return np.zeros(0, dtype=np.uint64)
        return np.unique(np.concatenate(parts)) * np.uint64(page_size)


def blockwise(fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], values: np.ndarray,
              block: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply a vectorised ``fn(values) -> (u64 results, ok)`` in blocks of ``block`` elements,
    so that the temporaries of a million lookups never exist at once."""
    values = np.asarray(values).reshape(-1)
    if values.size <= block:
        return fn(values)
    out = np.empty(values.shape, dtype=np.uint64)
    ok = np.empty(values.shape, dtype=bool)
    for i in range(0, values.size, block):
        out[i : i + block], ok[i : i + block] = fn(values[i : i + block])
    return out, ok


#: gather_u64_by_pages reads runs of adjacent pages up to this size in one call.
GATHER_RUN = 1 << 16


def gather_u64_by_pages(read_phys: Callable[[int, int], bytes], addrs: np.ndarray,
                        run_max: int = GATHER_RUN) -> tuple[np.ndarray, np.ndarray]:
    """u64 at each physical address through ``read_phys``, one call per run of adjacent pages
    holding the words (at most ``run_max`` bytes). A run that faults is retried page by page, and
    what a page read cannot serve (holes, words straddling into them) word by word, so a hole
    costs only its own words and every answer equals ``read_phys(addr, 8)``'s."""
    addrs = np.asarray(addrs, dtype=np.uint64).reshape(-1)
    vals = np.zeros(addrs.shape, dtype=np.uint64)
    ok = np.zeros(addrs.shape, dtype=bool)
    if addrs.size == 0:
        return vals, ok
    order = np.argsort(addrs, kind="stable")
    sa = addrs[order]
    first, last = sa >> np.uint64(12), (sa + np.uint64(7)) >> np.uint64(12)
    new = np.ones(len(sa), dtype=bool)
    new[1:] = first[1:] > last[:-1] + np.uint64(1)
    bounds = np.flatnonzero(new).tolist() + [len(sa)]
    out, good = np.zeros(len(sa), dtype=np.uint64), np.zeros(len(sa), dtype=bool)
    for a, b in zip(bounds[:-1], bounds[1:]):
        while a < b:
            lo = int(first[a]) << 12
            j = max(a + 1, a + int(np.searchsorted(sa[a:b], np.uint64(lo + run_max - 8), side="right")))
            _fill(read_phys, sa, a, j, lo, (int(last[j - 1]) + 1) << 12, out, good)
            a = j
    vals[order], ok[order] = out, good
    return vals, ok


def _fill(read_phys: Callable[[int, int], bytes], sa: np.ndarray, a: int, j: int, lo: int, hi: int,
          out: np.ndarray, good: np.ndarray) -> None:
    """Words ``sa[a:j]`` from physical ``[lo, hi)``: one read; if it faults, page by page, then
    word by word."""
    try:
        buf = np.frombuffer(read_phys(lo, hi - lo), dtype=np.uint8)
    except MemoryFault:
        if hi - lo > 4096:
            for page in range(lo, hi, 4096):
                k0 = a + int(np.searchsorted(sa[a:j], np.uint64(page), side="left"))
                k1 = a + int(np.searchsorted(sa[a:j], np.uint64(page + 4096), side="left"))
                if k1 > k0:
                    _fill(read_phys, sa, k0, k1, page, page + 4096, out, good)
            return
        buf = np.zeros(0, dtype=np.uint8)
    rel = (sa[a:j] - np.uint64(lo)).astype(np.int64)
    inbuf = rel + 8 <= len(buf)
    w = np.flatnonzero(inbuf)
    out[a + w] = buf[rel[w, None] + np.arange(8)].view("<u8").reshape(-1)
    good[a + w] = True
    for k in (a + np.flatnonzero(~inbuf)).tolist():
        try:
            out[k] = int.from_bytes(read_phys(int(sa[k]), 8), "little")
            good[k] = True
        except MemoryFault:
            pass
