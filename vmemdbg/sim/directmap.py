"""Replay of init_mem_mapping (arch/x86/mm/init.c and init_64.c, Linux 6.1).

The direct map is built top-down (memory_map_top_down) in growing steps.  Its page-table pages
come from the brk buffer (INIT_PGT_BUF_SIZE, reserved with the kernel image) unless the range
being mapped overlaps the brk itself (``can_use_brk_pgt``) or the buffer is exhausted; then
alloc_low_pages takes them top-down from memblock inside the already-mapped range.  On the §7
example this yields the two pages at 0x27ffff000 / 0x27fffe000 that push NODE_DATA(1) down.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..abi import (
    PAGE_KERNEL,
    PAGE_KERNEL_LARGE,
    PAGE_PRESENT,
    PAGE_PSE,
    PAGE_SIZE,
    PAGE_TABLE,
    PMD_SIZE,
    PTE_PFN_MASK,
    PUD_SIZE,
)
from .machine import SZ_1M
from .memblock import Memblock, MemblockPanic, round_down, round_up
from .pagetable_build import PageTables, index

PG_LEVEL_2M = 1 << 2
PG_LEVEL_1G = 1 << 3
ISA_END_ADDRESS = SZ_1M


@dataclass
class MapRange:
    """struct map_range."""

    start: int
    end: int
    mask: int


class DirectMap:
    """State of arch/x86/mm/init.c during init_mem_mapping."""

    def __init__(self, mb: Memblock, pt: PageTables, page_offset: int, brk_start: int,
                 brk_pages: int, gbpages: bool, pse: bool) -> None:
        self.mb = mb
        self.pt = pt
        self.po = page_offset
        self.pgt_buf_start = brk_start >> 12
        self.pgt_buf_end = self.pgt_buf_start
        self.pgt_buf_top = self.pgt_buf_start + brk_pages
        self.can_use_brk_pgt = True
        self.min_pfn_mapped = 0
        self.max_pfn_mapped = 0
        self.page_size_mask = (PG_LEVEL_2M if pse else 0) | (PG_LEVEL_1G if gbpages else 0)
        self.pages: list[tuple[int, str, str]] = []  # (phys, level, "brk"|"memblock")

    # -- alloc_low_pages ----------------------------------------------------------------------
    def alloc_low_page(self, level: str) -> int:
        """alloc_low_pages(1) (arch/x86/mm/init.c, 6.1); returns the physical address."""
        if self.pgt_buf_end + 1 > self.pgt_buf_top or not self.can_use_brk_pgt:
            ret = None
            if self.min_pfn_mapped < self.max_pfn_mapped:
                ret = self.mb.phys_alloc_range(PAGE_SIZE, PAGE_SIZE, self.min_pfn_mapped << 12,
                                               self.max_pfn_mapped << 12, "alloc_low_pages",
                                               what=f"direct-map {level} page")
            if not ret:
                raise MemblockPanic("alloc_low_pages: can not alloc memory")
            src = "memblock"
        else:
            ret = self.pgt_buf_end << 12
            self.pgt_buf_end += 1
            src = "brk"
        self.pt.add_table(ret, level, f"direct map ({src})")
        self.pages.append((ret, level, src))
        return ret

    # -- split_mem_range ------------------------------------------------------------------------
    def split_mem_range(self, start: int, end: int) -> list[MapRange]:
        """split_mem_range() + adjust_range_page_size_mask() + merging, x86-64 flavour."""
        psm = self.page_size_mask
        mr: list[MapRange] = []

        def save(s: int, e: int, mask: int) -> None:
            if s < e:
                mr.append(MapRange(s << 12, e << 12, mask))

        limit_pfn = end >> 12
        pfn = start_pfn = start >> 12
        end_pfn = min(round_up(pfn, PMD_SIZE >> 12), limit_pfn)
        if start_pfn < end_pfn:
            save(start_pfn, end_pfn, 0)
            pfn = end_pfn
        start_pfn = round_up(pfn, PMD_SIZE >> 12)
        end_pfn = round_up(pfn, PUD_SIZE >> 12)
        if end_pfn > round_down(limit_pfn, PMD_SIZE >> 12):
            end_pfn = round_down(limit_pfn, PMD_SIZE >> 12)
        if start_pfn < end_pfn:
            save(start_pfn, end_pfn, psm & PG_LEVEL_2M)
            pfn = end_pfn
        start_pfn = round_up(pfn, PUD_SIZE >> 12)
        end_pfn = round_down(limit_pfn, PUD_SIZE >> 12)
        if start_pfn < end_pfn:
            save(start_pfn, end_pfn, psm & (PG_LEVEL_2M | PG_LEVEL_1G))
            pfn = end_pfn
        start_pfn = round_up(pfn, PMD_SIZE >> 12)
        end_pfn = round_down(limit_pfn, PMD_SIZE >> 12)
        if start_pfn < end_pfn:
            save(start_pfn, end_pfn, psm & PG_LEVEL_2M)
            pfn = end_pfn
        save(pfn, limit_pfn, 0)
        for m in mr:
            if psm & PG_LEVEL_2M and not m.mask & PG_LEVEL_2M:
                s, e = round_down(m.start, PMD_SIZE), round_up(m.end, PMD_SIZE)
                if self.mb.is_region_memory(s, e - s):
                    m.mask |= PG_LEVEL_2M
            if psm & PG_LEVEL_1G and not m.mask & PG_LEVEL_1G:
                s, e = round_down(m.start, PUD_SIZE), round_up(m.end, PUD_SIZE)
                if self.mb.is_region_memory(s, e - s):
                    m.mask |= PG_LEVEL_1G
        i = 0
        while len(mr) > 1 and i < len(mr) - 1:
            if mr[i].end != mr[i + 1].start or mr[i].mask != mr[i + 1].mask:
                i += 1
                continue
            mr[i + 1].start = mr[i].start
            del mr[i]
        return mr

    # -- kernel_physical_mapping_init and the phys_*_init helpers (init_64.c) ----------------------
    def _pte_init(self, table: int, paddr: int, paddr_end: int) -> int:
        last = paddr_end
        for i in range(index(self.pt.levels, "pte", self.po + paddr), 512):
            if paddr >= paddr_end:
                break
            if not self.pt.get(table, i) & PAGE_PRESENT:
                self.pt.set(table, i, (paddr & ~(PAGE_SIZE - 1)) | PAGE_KERNEL)
                last = (paddr & ~(PAGE_SIZE - 1)) + PAGE_SIZE
            paddr = (paddr & ~(PAGE_SIZE - 1)) + PAGE_SIZE
        return last

    def _pmd_init(self, table: int, paddr: int, paddr_end: int, mask: int) -> int:
        last = paddr_end
        for i in range(index(self.pt.levels, "pmd", self.po + paddr), 512):
            paddr_next = (paddr & ~(PMD_SIZE - 1)) + PMD_SIZE
            if paddr >= paddr_end:
                break
            e = self.pt.get(table, i)
            if e & PAGE_PRESENT:
                if not e & PAGE_PSE:
                    last = self._pte_init(e & PTE_PFN_MASK, paddr, paddr_end)
                    paddr = paddr_next
                    continue
                if mask & PG_LEVEL_2M:
                    last = paddr_next
                    paddr = paddr_next
                    continue
            if mask & PG_LEVEL_2M:
                self.pt.set(table, i, (paddr & ~(PMD_SIZE - 1)) | PAGE_KERNEL_LARGE)
                last = paddr_next
                paddr = paddr_next
                continue
            pte = self.alloc_low_page("pte")
            last = self._pte_init(pte, paddr, paddr_end)
            self.pt.set(table, i, pte | PAGE_TABLE)
            paddr = paddr_next
        return last

    def _pud_init(self, table: int, paddr: int, paddr_end: int, mask: int) -> int:
        last = paddr_end
        for i in range(index(self.pt.levels, "pud", self.po + paddr), 512):
            paddr_next = (paddr & ~(PUD_SIZE - 1)) + PUD_SIZE
            if paddr >= paddr_end:
                break
            e = self.pt.get(table, i)
            if e & PAGE_PRESENT:
                if not e & PAGE_PSE:
                    last = self._pmd_init(e & PTE_PFN_MASK, paddr, paddr_end, mask)
                    paddr = paddr_next
                    continue
                if mask & PG_LEVEL_1G:
                    last = paddr_next
                    paddr = paddr_next
                    continue
            if mask & PG_LEVEL_1G:
                self.pt.set(table, i, (paddr & ~(PUD_SIZE - 1)) | PAGE_KERNEL_LARGE)
                last = paddr_next
                paddr = paddr_next
                continue
            pmd = self.alloc_low_page("pmd")
            last = self._pmd_init(pmd, paddr, paddr_end, mask)
            self.pt.set(table, i, pmd | PAGE_TABLE)
            paddr = paddr_next
        return last

    def _p4d_init(self, table: int, paddr: int, paddr_end: int, mask: int) -> int:
        last = paddr_end
        for i in range(index(self.pt.levels, "p4d", self.po + paddr), 512):
            paddr_next = (paddr & ~((1 << 39) - 1)) + (1 << 39)
            if paddr >= paddr_end:
                break
            e = self.pt.get(table, i)
            if e & PAGE_PRESENT:
                last = self._pud_init(e & PTE_PFN_MASK, paddr, paddr_end, mask)
            else:
                pud = self.alloc_low_page("pud")
                last = self._pud_init(pud, paddr, paddr_end, mask)
                self.pt.set(table, i, pud | PAGE_TABLE)
            paddr = paddr_next
        return last

    def kernel_physical_mapping_init(self, paddr_start: int, paddr_end: int, mask: int) -> int:
        """__kernel_physical_mapping_init(): returns paddr_last."""
        levels = self.pt.levels
        pgd_size = 1 << (48 if levels == 5 else 39)
        vaddr, vaddr_end = self.po + paddr_start, self.po + paddr_end
        last = paddr_end
        while vaddr < vaddr_end:
            vaddr_next = (vaddr & ~(pgd_size - 1)) + pgd_size
            pa, pa_end = vaddr - self.po, vaddr_end - self.po
            gi = index(levels, "pgd", vaddr)
            e = self.pt.get(self.pt.top, gi)
            sub = self._p4d_init if levels == 5 else self._pud_init
            if e & PAGE_PRESENT:
                last = sub(e & PTE_PFN_MASK, pa, pa_end, mask)
            else:
                child = self.alloc_low_page("p4d" if levels == 5 else "pud")
                last = sub(child, pa, pa_end, mask)
                self.pt.set(self.pt.top, gi, child | PAGE_TABLE)
            vaddr = vaddr_next
        return last

    def init_memory_mapping(self, start: int, end: int) -> int:
        """init_memory_mapping(): map [start, end) and extend max_pfn_mapped."""
        ret = 0
        for m in self.split_mem_range(start, end):
            ret = self.kernel_physical_mapping_init(m.start, m.end, m.mask)
        self.max_pfn_mapped = max(self.max_pfn_mapped, ret >> 12)
        return ret

    def init_range_memory_mapping(self, r_start: int, r_end: int) -> int:
        """init_range_memory_mapping(): map memblock memory inside [r_start, r_end)."""
        mapped = 0
        for spfn, epfn, _ in list(self.mb.mem_pfn_ranges()):
            start = min(max(spfn << 12, r_start), r_end)
            end = min(max(epfn << 12, r_start), r_end)
            if start >= end:
                continue
            self.can_use_brk_pgt = max(start, self.pgt_buf_end << 12) >= min(end, self.pgt_buf_top << 12)
            self.init_memory_mapping(start, end)
            mapped += end - start
            self.can_use_brk_pgt = True
        return mapped

    def memory_map_top_down(self, map_start: int, map_end: int) -> None:
        """memory_map_top_down()."""
        addr = self.mb.phys_alloc_range(PMD_SIZE, PMD_SIZE, map_start, map_end, "init_mem_mapping",
                                        what="init_mem_mapping probe (freed)")
        if not addr:
            real_end = max(map_start, round_down(map_end, PMD_SIZE))
        else:
            self.mb.phys_free(addr, PMD_SIZE, "init_mem_mapping")
            real_end = addr + PMD_SIZE
        step_size = PMD_SIZE
        self.max_pfn_mapped = 0
        self.min_pfn_mapped = real_end >> 12
        last_start = real_end
        mapped_ram_size = 0
        while last_start > map_start:
            if last_start > step_size:
                start = max(round_down(last_start - 1, step_size), map_start)
            else:
                start = map_start
            mapped_ram_size += self.init_range_memory_mapping(start, last_start)
            last_start = start
            self.min_pfn_mapped = last_start >> 12
            if mapped_ram_size >= step_size:
                step_size <<= 8  # get_new_step_size: PUD_SHIFT - PMD_SHIFT - 1
        if real_end < map_end:
            self.init_range_memory_mapping(real_end, map_end)

    def init_mem_mapping(self, max_pfn: int, kaslr_memory: bool) -> None:
        """init_mem_mapping() (64-bit, top-down)."""
        self.init_memory_mapping(0, ISA_END_ADDRESS)
        if kaslr_memory:
            # init_trampoline_kaslr(): a PUD (and, with 5 levels, a P4D) page for the trampoline.
            self.alloc_low_page("pud")
            if self.pt.levels == 5:
                self.alloc_low_page("p4d")
        self.memory_map_top_down(ISA_END_ADDRESS, max_pfn << 12)
