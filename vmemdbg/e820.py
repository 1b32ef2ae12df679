"""The kernel's e820 tables (arch/x86/kernel/e820.c, arch/x86/include/asm/e820/types.h).

``struct e820_entry { u64 addr; u64 size; enum e820_type type; } __packed`` is 20 bytes and
``struct e820_table { u32 nr_entries; struct e820_entry entries[E820_MAX_ENTRIES]; }`` keeps its
entries at +4. ``e820_table`` (kernel-modified), ``e820_table_kexec`` and ``e820_table_firmware``
point at __initdata tables until free_initmem() kmemdup()s them (e820__reallocate_tables), so after
boot they are exactly ``4 + 20 * nr_entries`` bytes of slab in the direct map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .abi import (
    E820_ACPI,
    E820_NVS,
    E820_PMEM,
    E820_PRAM,
    E820_RAM,
    E820_RESERVED,
    E820_RESERVED_KERN,
    E820_SOFT_RESERVED,
    E820_UNUSABLE,
)
from .errors import VmemdbgError
from .versions import E820_ENTRY

if TYPE_CHECKING:
    from .kernel import Kernel

E820_TYPES = {E820_RAM: "RAM", E820_RESERVED: "reserved", E820_ACPI: "ACPI", E820_NVS: "NVS",
              E820_UNUSABLE: "unusable", E820_PMEM: "PMEM", E820_PRAM: "PRAM", E820_SOFT_RESERVED: "soft-reserved",
              E820_RESERVED_KERN: "reserved-kern"}
E820_RAM_TYPES = (E820_RAM, E820_RESERVED_KERN)  # what e820__memblock_setup adds
#: E820_MAX_ENTRIES bound with MAX_NUMNODES up to 1024 (128 + 3 * 1024).
E820_MAX_ENTRIES = 3200


def read_e820_table(kernel: "Kernel", symbol: str = "e820_table") -> list[dict] | None:
    """Entries of ``*symbol`` as dicts ``{addr, size, type, name}``; None if unknown or unreadable."""
    ptr = kernel.read_symbol_u64(symbol)
    if not ptr:
        return None
    try:
        nr = kernel.read_u32(ptr)
        if nr > E820_MAX_ENTRIES:
            kernel.unreadable.append(f"{symbol}: nr_entries={nr} is absurd")
            return None
        raw = np.frombuffer(kernel.read(ptr + 4, E820_ENTRY.itemsize * nr), dtype=E820_ENTRY)
    except VmemdbgError:
        kernel.unreadable.append(f"{symbol} at {ptr:#x}")
        return None
    if np.any(raw["addr"] + raw["size"] < raw["addr"]):  # e820__update_table refuses wrapping entries
        kernel.unreadable.append(f"{symbol}: an entry wraps past 2^64 (corrupt table)")
        return None
    return [{"addr": int(e["addr"]), "size": int(e["size"]), "type": int(e["type"]),
             "name": E820_TYPES.get(int(e["type"]), f"type-{int(e['type'])}")} for e in raw]


def ram_pfn_ranges(entries: list[dict]) -> list[tuple[int, int]]:
    """Merged ``[start_pfn, end_pfn)`` of RAM entries, page-trimmed like memblock_trim_memory."""
    out: list[tuple[int, int]] = []
    for e in sorted(entries, key=lambda e: e["addr"]):
        if e["type"] not in E820_RAM_TYPES:
            continue
        s, t = (e["addr"] + 4095) >> 12, (e["addr"] + e["size"]) >> 12
        if s >= t:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(t, out[-1][1]))
        else:
            out.append((s, t))
    return out
