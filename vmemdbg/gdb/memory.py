"""Physical memory of the debugged kernel, read through gdb.

gdb serves kernel *virtual* memory (a core file's PT_LOADs by ``p_vaddr``, a gdbstub through the
CPU's page tables), so physical address ``p`` is read at an alias: the direct map
``page_offset_base + p`` once that is known, before that the kernel-image alias
``p - phys_base + __START_KERNEL_map`` (enough for VMCOREINFO, kallsyms and the base variables).
A QEMU ``dump-guest-memory`` core without paging has ``p_vaddr == p_paddr``: it is read at ``p``.
"""

from __future__ import annotations

import time

import gdb

from ..errors import MemoryFault
from ..memory import MemorySource
from ..abi import KERNEL_IMAGE_SIZE, START_KERNEL_MAP


class Progress:
    """Progress lines on stderr for a command running longer than :attr:`after` seconds."""

    after = 2.0

    def __init__(self) -> None:
        self.t0 = self.next = 0.0

    def start(self) -> None:
        """A command starts: report from ``after`` seconds on."""
        self.t0 = time.monotonic()
        self.next = self.t0 + self.after

    def stop(self) -> None:
        """The command ended: no more reports."""
        self.t0 = 0.0

    def tick(self, reads: int, nbytes: int) -> None:
        """Report reads so far if a command has run for a while since the last report."""
        now = time.monotonic()
        if self.t0 and now >= self.next:
            self.next = now + self.after
            gdb.write(f"vmemdbg: {now - self.t0:.0f} s, {reads} reads, {nbytes / 2**20:.1f} MiB read so far\n",
                      gdb.STDERR)
            gdb.flush(gdb.STDERR)


#: the progress of the running command (one command runs at a time in gdb).
PROGRESS = Progress()


class GdbSource(MemorySource):
    """Physical memory read with ``inferior.read_memory`` at a virtual alias of each address.

    Each ``read_memory`` is a round trip through gdb (over a remote stub, a packet exchange), so
    vectorised gathers read whole pages and runs of adjacent pages up to 64 KiB once each
    (the inherited :meth:`MemorySource.gather_u64`), not one call per word.
    """

    def __init__(self, phys_base: int, description: str, *, identity: bool = False):
        self.phys_base = phys_base
        self.description = description
        #: physical addresses are gdb addresses (a QEMU core without paging).
        self.identity = identity
        #: page_offset_base once known; until then only the kernel image is readable.
        self.direct_map_base: int | None = None
        self.reads = self.bytes_read = 0

    def alias(self, addr: int, size: int = 1) -> int:
        """The gdb address physical ``addr`` is read at."""
        if self.identity:
            return addr
        if self.direct_map_base is not None:
            return self.direct_map_base + addr
        if self.phys_base <= addr and addr + size <= self.phys_base + KERNEL_IMAGE_SIZE:
            return addr - self.phys_base + START_KERNEL_MAP
        raise MemoryFault(addr, size, why="outside the kernel image and page_offset_base is not known yet")

    def read_phys(self, addr: int, size: int) -> bytes:
        """``read_memory`` at the alias; what gdb refuses becomes a :class:`MemoryFault` naming the alias."""
        va = self.alias(addr, size)
        self.reads += 1
        PROGRESS.tick(self.reads, self.bytes_read)
        try:
            data = gdb.selected_inferior().read_memory(va, size).tobytes()
        except gdb.MemoryError as e:
            raise MemoryFault(addr, size, why=f"gdb cannot read its alias {va:#x} ({e})") from None
        self.bytes_read += len(data)
        return data

    def ranges(self) -> list[tuple[int, int]]:
        """gdb does not list what it can read: unknown."""
        return []
