"""What RAM is, by the kernel's own account after boot.

e820 only describes boot RAM: memory hot-added later (ACPI pc-dimm, virtio-mem, dax/kmem) is never
in it. The kernel's own account is

* the "System RAM" resources of ``iomem_resource`` (kernel/resource.c): boot RAM is registered by
  e820__reserve_resources, hot-added RAM by add_memory_resource -> register_memory_resource
  (mm/memory_hotplug.c), both as top-level children with IORESOURCE_SYSTEM_RAM;
* memblock.memory while it can still be trusted (:mod:`vmemdbg.memblock`);
* e820 RAM only when neither is readable (said in the account's ``sources``).

``struct resource { resource_size_t start, end; const char *name; unsigned long flags, desc;
struct resource *parent, *sibling, *child; }`` (include/linux/ioport.h; ``desc`` since 4.6,
commit 43ee493bde78) is 64 bytes on x86-64; its offsets are in :mod:`vmemdbg.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .e820 import ram_pfn_ranges, read_e820_table
from .errors import MemoryFault, VmemdbgError
from .intervals import merge_ranges
from .versions import IORESOURCE_SYSRAM, RESOURCE_LAYOUT

if TYPE_CHECKING:
    from .kernel import Kernel

#: Bound on top-level iomem resources walked (a corrupt sibling chain must not loop forever).
MAX_RESOURCES = 100_000


@dataclass
class RamAccount:
    """Merged ``[start_pfn, end_pfn)`` ranges of RAM and where they came from."""

    ranges: list[tuple[int, int]]
    sources: list[str]

    def covers(self, start: int, end: int) -> bool:
        """True if every pfn of ``[start, end)`` is RAM."""
        return any(a <= start and end <= b for a, b in self.ranges)

    def holes(self, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges of ``[start, end)`` that are not RAM."""
        out, cur = [], start
        for a, b in self.ranges:
            if b <= start or a >= end:
                continue
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
        if cur < end:
            out.append((cur, end))
        return out


def read_system_ram(kernel: "Kernel") -> tuple[list[tuple[int, int]] | None, str]:
    """``[start_pfn, end_pfn)`` of every top-level "System RAM" iomem resource (None if unreadable),
    and what was read. An unreadable tree is said in the account's sources, not as a dump error:
    the account then rests on memblock (older minimal dumps do not carry the tree)."""
    root = kernel.symbol("iomem_resource")
    if root is None:
        return None, "iomem_resource: no symbol"
    lay = RESOURCE_LAYOUT
    out = []
    try:
        ptr = kernel.read_u64(root + lay["child"])
        seen = 0
        while ptr and seen < MAX_RESOURCES:
            raw = np.frombuffer(kernel.read(ptr, lay["size"]), dtype="<u8")
            start, end, flags = int(raw[0]), int(raw[1]), int(raw[lay["flags"] // 8])
            if flags & IORESOURCE_SYSRAM:
                out.append(((start + 4095) >> 12, (end + 1) >> 12))
            ptr = int(raw[lay["sibling"] // 8])
            seen += 1
    except MemoryFault:
        return None, f"iomem_resource tree at {root:#x}: not in the dump"
    except VmemdbgError as e:  # an address the page tables cannot translate, a corrupt walk
        return None, f"iomem_resource tree at {root:#x}: unreadable ({e})"
    return merge_ranges(out), "iomem_resource System RAM"


def ram_account(kernel: "Kernel") -> RamAccount:
    """The kernel's account of RAM (see the module docstring); empty if nothing is readable."""
    ranges: list[tuple[int, int]] = []
    sources = []
    sysram, what = read_system_ram(kernel)
    sources.append(what)
    if sysram:
        ranges += sysram
    try:
        from .memblock import read_memblock

        mb = read_memblock(kernel)["memory"]
    except VmemdbgError:
        mb = None
    if mb and mb["regions"] and mb["trust"] in ("live", "frozen"):
        ranges += [((r["base"] + 4095) >> 12, (r["base"] + r["size"]) >> 12) for r in mb["regions"]]
        sources.append(f"memblock.memory ({mb['trust']})")
    if not sysram:
        table = read_e820_table(kernel)
        if table:
            ranges += ram_pfn_ranges(table)
            sources.append("e820_table RAM (boot RAM only: without iomem_resource, hot-added RAM is unknown)")
    return RamAccount(merge_ranges(ranges), sources)
