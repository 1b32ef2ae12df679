"""Kernel page tables built by the replay (init_top_pgt and everything below it).

The simulator's side: it *builds* tables, as the kernel does; the engine's walker that *reads*
them is :mod:`vmemdbg.pagetable`. Each table page is a 512-entry ``array('Q')`` (unboxed, 4 KiB)
keyed by its physical address. Entry encodings follow arch/x86/include/asm/pgtable_types.h (6.1),
constants in :mod:`vmemdbg.abi`: intermediate entries are _PAGE_TABLE (0x67), large leaves
PAGE_KERNEL_LARGE (0x80000000000001e3) and 4 KiB leaves PAGE_KERNEL (0x8000000000000163);
docs/vmemmap.md#page-table-entries.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field

from ..abi import LEVEL_NAMES

SHIFTS: dict[str, int] = {"p4d": 39, "pud": 30, "pmd": 21, "pte": 12}


def level_shift(levels: int, name: str) -> int:
    """Address shift of a table level: the PGD shift is 39 (4-level) or 48 (5-level)."""
    if name == "pgd":
        return 48 if levels == 5 else 39
    return SHIFTS[name]


def index(levels: int, name: str, va: int) -> int:
    """Index of va in a table of level name."""
    return (va >> level_shift(levels, name)) & 511


@dataclass
class TablePage:
    """A page-table page: its level name, who allocated it and the 512 entries."""

    phys: int
    level: str
    owner: str
    entries: array = field(default_factory=lambda: array("Q", bytes(4096)))

    def to_bytes(self) -> bytes:
        """The page as the kernel stores it (little-endian u64 entries)."""
        if sys.byteorder == "little":
            return self.entries.tobytes()
        swapped = array("Q", self.entries)
        swapped.byteswap()
        return swapped.tobytes()


class PageTables:
    """The kernel page-table tree rooted at init_top_pgt (physical address ``top``)."""

    def __init__(self, levels: int, top: int) -> None:
        self.levels = levels
        self.names = LEVEL_NAMES[levels]
        self.tables: dict[int, TablePage] = {top: TablePage(top, "pgd", "init_top_pgt")}
        self.top = top

    def add_table(self, phys: int, level: str, owner: str) -> TablePage:
        """Register a freshly allocated (zeroed) table page."""
        tp = TablePage(phys, level, owner)
        self.tables[phys] = tp
        return tp

    def child_level(self, level: str) -> str:
        """Name of the level below ``level``."""
        return self.names[self.names.index(level) + 1]

    def get(self, table: int, idx: int) -> int:
        """Raw entry idx of the table at physical address table."""
        return self.tables[table].entries[idx]

    def set(self, table: int, idx: int, value: int) -> None:
        """Store a raw entry."""
        self.tables[table].entries[idx] = value
