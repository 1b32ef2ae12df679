"""x86-64 page-table walker: 4 and 5 levels, 4 KiB / 2 MiB / 1 GiB leaves.

Entry format: arch/x86/include/asm/pgtable_types.h. Bits used here: 0 PRESENT, 1 RW, 2 USER,
7 PSE (leaf at PMD/PUD), 8 GLOBAL, 63 NX. Frame masks: PTE ``0x000ffffffffff000``, PMD leaf
``0x000fffffffe00000`` (bit 12 is PAT), PUD leaf ``0x000fffffc0000000``, all without the AMD SME
C-bit (``NUMBER(sme_mask)``).

Every table page is read whole, once, and cached as 512 little-endian u64. :meth:`leaves`
walks a VA range and returns all leaves as numpy arrays, visiting only present entries, so its
cost is the number of table pages, not the size of the range.

The walk is bounded by what a dump can really hold, not by what its entries claim: each table page
is visited once per walk (a page reached again, from its own subtree or from another entry, is a
loop or a shared table and is reported, not walked again; kernel page tables never share a table
between two entries of the ranges walked here), PSE at the top level (a reserved bit there) and
frames at or above 2^MAX_PHYSMEM_BITS are reported instead of followed, and a walk stops with a
fault after :data:`MAX_TABLES` table pages or :data:`MAX_LEAVES` leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from .abi import LEVEL_NAMES, PAGE_PRESENT, PAGE_PSE, PAGE_RW, PTE_PFN_MASK
from .errors import LayoutError, MemoryFault

#: Frame masks of 4 KiB, 2 MiB and 1 GiB leaves (bit 12 of a large leaf is PAT, not frame).
_FRAME = {12: PTE_PFN_MASK, 21: 0x000FFFFFFFE00000, 30: 0x000FFFFFC0000000}
#: Leaf level names by shift.
LEAF_NAME = {12: "pte", 21: "pmd", 30: "pud"}

#: A walk stops after this many distinct table pages (256 MiB of cached tables). A 64 TiB machine's
#: vmemmap needs about 2^10 PMD tables; only a vmemmap split into 4 KiB PTEs almost everywhere (HVO
#: of most of a machine beyond 8 TiB) needs more, and is then reported as partly unwalked.
MAX_TABLES = 1 << 16
#: A walk stops after this many leaves (a 64 TiB machine's vmemmap has 2^19 PMD leaves); each leaf
#: can become a run of the census, and a million runs is what the views can hold within 1 GiB.
MAX_LEAVES = 1 << 20


class _Budget(Exception):
    """The walk reached MAX_TABLES or MAX_LEAVES."""


@dataclass
class PathStep:
    """One entry on a translation path."""

    level: str
    table: int  # physical address of the table page
    index: int
    entry: int


@dataclass
class Translation:
    """Result of translating one virtual address."""

    va: int
    phys: int | None  # None if not mapped
    leaf: str | None  # "pte", "pmd", "pud"
    entry: int | None
    path: list[PathStep]


@dataclass
class Leaves:
    """Leaves found in a range, sorted by VA. All arrays have one element per leaf."""

    va: np.ndarray  # canonical VA of the leaf start (u64)
    shift: np.ndarray  # 12, 21 or 30 (u8)
    entry: np.ndarray  # raw entry (u64)
    phys: np.ndarray  # frame physical address (u64)
    tables: list[int]  # physical addresses of the table pages below the root that the walk read
    writable: np.ndarray  # effective RW: the RW bit AND-ed over the whole path (bool)

    @property
    def size(self) -> np.ndarray:
        """Leaf sizes in bytes."""
        return np.left_shift(np.uint64(1), self.shift.astype(np.uint64))

    def __len__(self) -> int:
        return len(self.va)


@dataclass
class WalkFault:
    """A table page that could not be read, or a loop, during a walk."""

    va_start: int
    va_end: int
    table: int
    reason: str


class PageTableWalker:
    """Walk the kernel page tables rooted at ``root`` (physical address of the PGD page)."""

    def __init__(self, read_phys: Callable[[int, int], bytes], root: int, levels: int, sme_mask: int = 0,
                 max_physmem_bits: int = 52):
        if levels not in LEVEL_NAMES:
            raise LayoutError(f"unsupported paging depth {levels}")
        self._read = read_phys
        self.root = root
        self.levels = levels
        self.va_bits = 48 if levels == 4 else 57
        self.sme_mask = sme_mask
        self.phys_limit = 1 << max_physmem_bits
        self._cache: dict[int, np.ndarray] = {}
        self.faults: list[WalkFault] = []
        self.tables_read = 0

    # -- helpers -------------------------------------------------------------------------------
    def canonical(self, raw: int) -> int:
        """Sign-extend a ``va_bits``-bit address."""
        raw &= (1 << self.va_bits) - 1
        if raw >> (self.va_bits - 1):
            raw |= ((1 << 64) - 1) ^ ((1 << self.va_bits) - 1)
        return raw

    def _canonical_array(self, raw: np.ndarray) -> np.ndarray:
        top = np.uint64(1 << (self.va_bits - 1))
        ext = np.uint64(((1 << 64) - 1) ^ ((1 << self.va_bits) - 1))
        return np.where((raw & top) != 0, raw | ext, raw)

    def _shift(self, level_i: int) -> int:
        return 12 + 9 * (self.levels - 1 - level_i)

    def table(self, phys: int) -> np.ndarray:
        """The 512 entries of the table page at ``phys`` (cached; raises MemoryFault)."""
        t = self._cache.get(phys)
        if t is None:
            if len(self._cache) >= MAX_TABLES:
                raise _Budget(f"more than {MAX_TABLES} table pages")
            if phys >= self.phys_limit:
                raise MemoryFault(phys, 4096, why="past MAX_PHYSMEM_BITS")
            t = np.frombuffer(self._read(phys, 4096), dtype="<u8")
            self._cache[phys] = t
            self.tables_read += 1
        return t

    def _frame(self, entry: int, shift: int) -> int:
        return entry & _FRAME[shift] & ~self.sme_mask

    def table_pages(self) -> list[int]:
        """Physical addresses of every table page read so far."""
        return sorted(self._cache)

    # -- single address ----------------------------------------------------------------------------
    def translate(self, va: int) -> Translation:
        """Translate one VA, recording each entry on the path."""
        names = LEVEL_NAMES[self.levels]
        table_phys = self.root
        path: list[PathStep] = []
        seen: set[int] = set()
        for i, name in enumerate(names):
            if table_phys in seen:
                raise LayoutError(f"page-table loop: table {table_phys:#x} reached twice translating {va:#x}")
            seen.add(table_phys)
            shift = self._shift(i)
            idx = (va >> shift) & 511
            try:
                entry = int(self.table(table_phys)[idx])
            except _Budget as e:
                raise LayoutError(f"page-table walk stopped: {e}: corrupt page tables?") from None
            path.append(PathStep(name, table_phys, idx, entry))
            if not entry & PAGE_PRESENT:
                return Translation(va, None, None, None, path)
            if shift == 12 or (shift in (21, 30) and entry & PAGE_PSE):
                phys = self._frame(entry, shift) + (va & ((1 << shift) - 1))
                if phys >= self.phys_limit:
                    return Translation(va, None, None, None, path)
                return Translation(va, phys, LEAF_NAME[shift], entry, path)
            if entry & PAGE_PSE:  # reserved at the PGD/P4D level: the CPU faults here
                return Translation(va, None, None, None, path)
            table_phys = entry & PTE_PFN_MASK & ~self.sme_mask
        raise AssertionError("unreachable: the PTE level always ends the walk")

    # -- ranges -------------------------------------------------------------------------------------
    def leaves(self, start: int, end: int) -> Leaves:
        """All present leaves intersecting canonical VA range ``[start, end)``, sorted by VA.

        Unreadable table pages, loops, shared tables, reserved bits and frames past
        MAX_PHYSMEM_BITS are recorded in :attr:`faults` and skipped; a walk over budget stops
        with a fault covering what it did not walk.
        """
        mask = (1 << self.va_bits) - 1
        out_va: list[np.ndarray] = []
        out_shift: list[np.ndarray] = []
        out_entry: list[np.ndarray] = []
        out_rw: list[np.ndarray] = []
        tables: list[int] = []
        walk = _Walk((out_va, out_shift, out_entry, out_rw), tables)
        lo, hi = start & mask, (end - 1) & mask
        try:
            self._walk(self.root, 0, 0, lo, hi, (), True, walk)
        except _Budget as e:
            self.faults.append(WalkFault(self.canonical(walk.reached), self.canonical(hi) + 1, walk.table,
                                         f"walk stopped: {e} (corrupt page tables?)"))
        if not out_va:
            z = np.zeros(0, dtype=np.uint64)
            return Leaves(z, np.zeros(0, dtype=np.uint8), z, z, tables, np.zeros(0, dtype=bool))
        va = np.concatenate(out_va)
        shift = np.concatenate(out_shift)
        entry = np.concatenate(out_entry)
        rw = np.concatenate(out_rw)
        order = np.argsort(va, kind="stable")
        va, shift, entry, rw = va[order], shift[order], entry[order], rw[order]
        frame = self._frames(shift, entry)
        return Leaves(self._canonical_array(va), shift, entry, frame, tables, rw)

    def _frames(self, shift: np.ndarray, entry: np.ndarray) -> np.ndarray:
        """Frame physical address of each leaf entry."""
        return np.select(
            [shift == 12, shift == 21],
            [entry & np.uint64(_FRAME[12]), entry & np.uint64(_FRAME[21])],
            entry & np.uint64(_FRAME[30]),
        ) & np.uint64(~self.sme_mask & ((1 << 64) - 1))

    def _fault(self, base: int, span: int, lo: int, hi: int, table: int, reason: str) -> None:
        """Record a fault over the part of ``[base, base + 512 * span)`` the walk was asked for."""
        a, b = self.canonical(max(base, lo)), self.canonical(min(base + 512 * span - 1, hi)) + 1
        last = self.faults[-1] if self.faults else None
        if last is not None and last.va_end == a and last.table == table and last.reason == reason:
            last.va_end = b  # neighbouring entries of one table with the same fault: one range
        else:
            self.faults.append(WalkFault(a, b, table, reason))

    def _walk(self, table_phys: int, level_i: int, base: int, lo: int, hi: int, ancestors: tuple[int, ...],
              parent_rw: bool, walk: "_Walk") -> None:
        shift = self._shift(level_i)
        span = 1 << shift
        walk.reached, walk.table = max(base, lo), table_phys
        if table_phys in walk.visited:
            why = "page-table loop" if table_phys in ancestors else "table page shared with another entry (fan-out)"
            self._fault(base, span, lo, hi, table_phys, why)
            return
        walk.visited.add(table_phys)
        try:
            table = self.table(table_phys)
        except MemoryFault:
            self._fault(base, span, lo, hi, table_phys, "table page not in dump")
            return
        if level_i:
            walk.tables.append(table_phys)
        i0 = max(0, (lo - base) >> shift)
        i1 = min(511, (hi - base) >> shift)
        entries = table[i0 : i1 + 1]
        present = (entries & np.uint64(PAGE_PRESENT)) != 0
        pse = (entries & np.uint64(PAGE_PSE)) != 0
        if shift == 12:
            leaf = present
        elif shift in (21, 30):
            leaf = present & pse
        else:
            leaf = np.zeros(len(entries), dtype=bool)
            for j in np.nonzero(present & pse)[0].tolist():  # reserved bit: the CPU would fault
                cb = base + (i0 + j) * span
                self._fault(cb, span >> 9, max(lo, cb), min(hi, cb + span - 1), table_phys,
                            f"PSE bit set in a {LEVEL_NAMES[self.levels][level_i]} entry (reserved)")
            present &= ~pse
        li = np.nonzero(leaf)[0]
        if li.size:
            frames = self._frames(np.full(li.size, shift, dtype=np.uint8), entries[li])
            past = frames >= np.uint64(self.phys_limit)
            for j in li[past].tolist():  # neighbours merge into one fault (see _fault)
                cb = base + (i0 + j) * span
                self._fault(cb, span >> 9, cb, cb + span - 1, table_phys,
                            f"{LEAF_NAME[shift]} leaf maps a frame past MAX_PHYSMEM_BITS")
            li = li[~past]
            walk.leaves += li.size
            if walk.leaves > MAX_LEAVES:
                raise _Budget(f"more than {MAX_LEAVES} leaves")
            walk.out[0].append(np.uint64(base) + (li + i0).astype(np.uint64) * np.uint64(span))
            walk.out[1].append(np.full(li.size, shift, dtype=np.uint8))
            walk.out[2].append(entries[li])
            walk.out[3].append(((entries[li] & np.uint64(PAGE_RW)) != 0) & parent_rw)
        for j in np.nonzero(present & ~leaf)[0].tolist():
            idx = i0 + j
            child_base = base + idx * span
            e = int(entries[j])
            child = e & PTE_PFN_MASK & ~self.sme_mask
            self._walk(child, level_i + 1, child_base, max(lo, child_base), min(hi, child_base + span - 1),
                       ancestors + (table_phys,), parent_rw and bool(e & PAGE_RW), walk)


@dataclass
class _Walk:
    """State of one :meth:`PageTableWalker.leaves` call."""

    out: tuple[list[np.ndarray], ...]
    tables: list[int]
    visited: set[int] = field(default_factory=set)
    leaves: int = 0
    reached: int = 0  # VA where the walk is (for the budget fault)
    table: int = 0
