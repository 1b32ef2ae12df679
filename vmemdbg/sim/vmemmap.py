"""Replay of vmemmap population at boot (mm/sparse-vmemmap.c, arch/x86/mm/init_64.c, Linux 6.1).

__populate_section_memmap → vmemmap_populate → vmemmap_populate_hugepages (PSE) or
vmemmap_populate_basepages.  Table pages come from vmemmap_alloc_block_zero (memblock, 4 KiB,
node-preferred, min 16 MiB); PMD blocks from vmemmap_alloc_block_buf (sparse buffer first, then a
2 MiB memblock block); a failed PMD block falls back to 4 KiB PTEs (docs/vmemmap.md#vmemmap_populate-at-boot).
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from collections.abc import Callable

from ..abi import (
    PAGE_KERNEL,
    PAGE_KERNEL_LARGE,
    PAGE_PSE,
    PAGE_SIZE,
    PAGE_TABLE,
    PMD_SIZE,
    PTE_PFN_MASK,
)
from .machine import SZ_16M
from .memblock import ALLOC_ACCESSIBLE, Memblock, round_up
from .pagetable_build import PageTables, index


class SparseBuffer:
    """sparsemap_buf / sparsemap_buf_end of mm/sparse.c."""

    def __init__(self, mb: Memblock) -> None:
        self.mb = mb
        self.buf: int | None = None
        self.end = 0

    def init(self, size: int, nid: int, align: int) -> int | None:
        """sparse_buffer_init(): memmap_alloc(size, section_map_size(), 16 MiB, nid, exact_nid=true)."""
        self.buf = self.mb.alloc_exact_nid_raw(size, align, SZ_16M, ALLOC_ACCESSIBLE, nid,
                                               "sparse_init_nid", what=f"sparse buffer node {nid}")
        self.end = (self.buf or 0) + size
        return self.buf

    def alloc(self, size: int) -> int | None:
        """sparse_buffer_alloc()."""
        if self.buf is None:
            return None
        ptr = round_up(self.buf, size)
        if ptr + size > self.end:
            return None
        if ptr - self.buf > 0:
            self.mb.phys_free(self.buf, ptr - self.buf, "sparse_buffer_alloc")
        self.buf = ptr + size
        return ptr

    def fini(self) -> None:
        """sparse_buffer_fini(): free the unused tail."""
        if self.buf is not None and self.end - self.buf > 0:
            self.mb.phys_free(self.buf, self.end - self.buf, "sparse_buffer_fini")
        self.buf = None


@dataclass
class VmemmapState:
    """What vmemmap population produced: leaves and page-table pages.

    PMD leaves (one per present section, 512k on a 64 TiB machine) are two parallel unboxed
    arrays in population order, which is ascending VA: sparse_init walks present sections in
    ascending order and each section's memmap lies above the previous one's.
    """

    #: vmemmap VA of each PMD leaf (ascending)
    pmd_va: array = field(default_factory=lambda: array("Q"))
    #: backing physical address of each PMD leaf
    pmd_phys: array = field(default_factory=lambda: array("Q"))
    #: PTE leaves: vmemmap VA → backing phys
    pte: dict[int, int] = field(default_factory=dict)
    #: leaves not taken from the sparse buffer: vmemmap VA → (node requested, "memblock")
    not_from_buffer: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: vmemmap table pages: (phys, level, node requested)
    tables: list[tuple[int, str, int]] = field(default_factory=list)
    #: messages the kernel would print (offnode warnings, failures)
    messages: list[str] = field(default_factory=list)

    def pmd_leaves(self) -> dict[int, int]:
        """PMD leaves as a dict: vmemmap VA → backing phys."""
        return dict(zip(self.pmd_va, self.pmd_phys))

    def pmd_at(self, va: int) -> int | None:
        """Backing phys of the PMD leaf mapping the 2 MiB-aligned vmemmap VA ``va``, or None."""
        i = bisect.bisect_left(self.pmd_va, va)
        return self.pmd_phys[i] if i < len(self.pmd_va) and self.pmd_va[i] == va else None


class Vmemmap:
    """vmemmap_populate() and its helpers."""

    def __init__(self, mb: Memblock, pt: PageTables, buffer: SparseBuffer, struct_page_size: int,
                 pse: bool, early_pfn_to_nid: Callable[[int], int], fail_pmd: Callable[[int], bool]) -> None:
        self.mb = mb
        self.pt = pt
        self.buffer = buffer
        self.struct_page_size = struct_page_size
        self.pse = pse
        self.early_pfn_to_nid = early_pfn_to_nid
        self.fail_pmd = fail_pmd
        self.state = VmemmapState()
        self._pmd_table_cache: tuple[int, int] = (-1, 0)
        self._warned_offnode = False
        self._unused_pmd_start = 0
        self._above = pt.names[:pt.names.index("pmd")]

    # -- allocation helpers ----------------------------------------------------------------------
    def alloc_block(self, size: int, node: int, what: str) -> int | None:
        """vmemmap_alloc_block() at boot: __earlyonly_bootmem_alloc(node, size, size, 16 MiB)."""
        caller = "vmemmap_alloc_block_zero.constprop.0" if size == PAGE_SIZE and what.endswith("table") \
            else "vmemmap_alloc_block_buf"
        return self.mb.alloc_try_nid(size, size, SZ_16M, ALLOC_ACCESSIBLE, node, caller, raw=True,
                                         what=what)

    def alloc_block_buf(self, size: int, node: int, what: str) -> tuple[int | None, str]:
        """vmemmap_alloc_block_buf(): sparse buffer first, then memblock (no altmap at boot)."""
        p = self.buffer.alloc(size)
        if p is not None:
            return p, "buffer"
        return self.alloc_block(size, node, what), "memblock"

    def _pmd_table(self, addr: int, node: int) -> int | None:
        """vmemmap_{pgd,p4d,pud}_populate(): the PMD table for addr, allocating missing levels."""
        gib = addr >> 30
        if self._pmd_table_cache[0] == gib:
            return self._pmd_table_cache[1]
        table = self.pt.top
        for level in self._above:
            idx = index(self.pt.levels, level, addr)
            e = self.pt.get(table, idx)
            if not e:
                child_level = self.pt.child_level(level)
                p = self.alloc_block(PAGE_SIZE, node, f"vmemmap {child_level} table")
                if p is None:
                    return None
                self.pt.add_table(p, child_level, f"vmemmap (node {node})")
                self.state.tables.append((p, child_level, node))
                self.pt.set(table, idx, p | PAGE_TABLE)
                e = p | PAGE_TABLE
            table = e & PTE_PFN_MASK
        self._pmd_table_cache = (gib, table)
        return table

    def _verify(self, phys: int, node: int, start: int, end: int) -> None:
        """vmemmap_verify(): pr_warn_once on an off-node backing page (6.1)."""
        if self.early_pfn_to_nid(phys >> 12) != node and not self._warned_offnode:
            self._warned_offnode = True
            self.state.messages.append(f"[{start:x}-{end - 1:x}] potential offnode page_structs")

    # -- population --------------------------------------------------------------------------------
    def populate_basepages(self, start: int, end: int, node: int) -> bool:
        """vmemmap_populate_basepages() → vmemmap_populate_address() per 4 KiB."""
        for addr in range(start, end, PAGE_SIZE):
            pmd_table = self._pmd_table(addr, node)
            if pmd_table is None:
                return False
            pi = index(self.pt.levels, "pmd", addr)
            pmd = self.pt.get(pmd_table, pi)
            if not pmd:
                p = self.alloc_block(PAGE_SIZE, node, "vmemmap pte table")
                if p is None:
                    return False
                self.pt.add_table(p, "pte", f"vmemmap (node {node})")
                self.state.tables.append((p, "pte", node))
                self.pt.set(pmd_table, pi, p | PAGE_TABLE)
                pmd = p | PAGE_TABLE
            pte_table = pmd & PTE_PFN_MASK
            ti = index(self.pt.levels, "pte", addr)
            if not self.pt.get(pte_table, ti):
                p, src = self.alloc_block_buf(PAGE_SIZE, node, "vmemmap 4k page")
                if p is None:
                    return False
                self.pt.set(pte_table, ti, p | PAGE_KERNEL)
                self.state.pte[addr] = p
                if src != "buffer":
                    self.state.not_from_buffer[addr] = (node, src)
            self._verify(self.pt.get(pte_table, ti) & PTE_PFN_MASK, node, addr, addr + PAGE_SIZE)
        return True

    def _use_new_sub_pmd(self, start: int, end: int) -> None:
        """vmemmap_use_new_sub_pmd() bookkeeping (the 0xFD fill itself is not materialised)."""
        if end % PMD_SIZE:
            self._unused_pmd_start = end

    def _use_sub_pmd(self, start: int, end: int) -> None:
        """vmemmap_use_sub_pmd() bookkeeping."""
        if start == self._unused_pmd_start:
            self._unused_pmd_start = 0 if end % PMD_SIZE == 0 else end
        elif end % PMD_SIZE:
            self._unused_pmd_start = end

    def populate_hugepages(self, start: int, end: int, node: int, section: int) -> bool:
        """vmemmap_populate_hugepages() (arch/x86/mm/init_64.c, 6.1)."""
        addr = start
        tables = self.pt.tables
        while addr < end:
            nxt = min((addr + PMD_SIZE) & ~(PMD_SIZE - 1), end)
            pmd_table = self._pmd_table(addr, node)
            if pmd_table is None:
                return False
            entries = tables[pmd_table].entries
            pi = (addr >> 21) & 511
            e = entries[pi]
            if not e:
                if self.fail_pmd(section):
                    p, src = None, ""
                else:
                    p, src = self.alloc_block_buf(PMD_SIZE, node, "vmemmap 2M block")
                if p is not None:
                    entries[pi] = p | PAGE_KERNEL_LARGE
                    self.state.pmd_va.append(addr & ~(PMD_SIZE - 1))
                    self.state.pmd_phys.append(p)
                    if src != "buffer":
                        self.state.not_from_buffer[addr & ~(PMD_SIZE - 1)] = (node, src)
                    if addr % PMD_SIZE or nxt % PMD_SIZE:
                        self._use_new_sub_pmd(addr, nxt)
                    addr = nxt
                    continue
            elif e & PAGE_PSE:
                self._verify(e & PTE_PFN_MASK & ~(PMD_SIZE - 1), node, addr, nxt)
                self._use_sub_pmd(addr, nxt)
                addr = nxt
                continue
            if not self.populate_basepages(addr, nxt, node):
                return False
            addr = nxt
        return True

    def populate(self, start: int, end: int, node: int, section: int) -> bool:
        """vmemmap_populate(): False on -ENOMEM."""
        if end - start < (1 << 15) * self.struct_page_size or not self.pse:
            return self.populate_basepages(start, end, node)
        return self.populate_hugepages(start, end, node, section)
