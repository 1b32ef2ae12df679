"""Memory sources: the one small interface the engine reads a kernel through.

A source gives physical reads, the VMCOREINFO text if it has one, and the list of physical
ranges it holds. Vectorised gathers (:meth:`MemorySource.gather_u64`) let hot loops read many
scattered words without a Python call per word. Sources are read-only: nothing here writes to a
dump or a live kernel.
"""

from __future__ import annotations

from typing import Callable

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

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read one little-endian u64 at each physical address.

        Returns ``(values, ok)``: ``values[i]`` is valid where ``ok[i]`` is true. The generic
        version loops; file-backed sources override it with one vectorised gather.
        """
        addrs = np.asarray(addrs, dtype=np.uint64)
        vals = np.zeros(addrs.shape, dtype=np.uint64)
        ok = np.zeros(addrs.shape, dtype=bool)
        for i, a in enumerate(addrs.tolist()):
            try:
                vals[i] = int.from_bytes(self.read_phys(a, 8), "little")
                ok[i] = True
            except MemoryFault:
                pass
        return vals, ok

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
