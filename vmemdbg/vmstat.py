"""The kernel's own memmap counters (``nr_memmap_pages`` / ``nr_memmap_boot_pages`` in /proc/vmstat).

They appeared in 6.11 ("mm: report per-page metadata information", per node in vm_node_stat[]
as NR_MEMMAP / NR_MEMMAP_BOOT) and became two global ``atomic_long_t`` in mm/vmstat.c in 6.12
("mm: don't account memmap per-node"; memmap_pages_add / memmap_boot_pages_add), which
vmstat_start() copies into the NR_MEMMAP_PAGES / NR_MEMMAP_BOOT_PAGES slots of /proc/vmstat.
They are static, so they are found by name through kallsyms (CONFIG_KALLSYMS_ALL) or --symbols.

What they count (6.12): ``nr_memmap_boot_pages`` gets DIV_ROUND_UP(PAGES_PER_SECTION *
sizeof(struct page), PAGE_SIZE) per early section (mm/sparse.c sparse_init_nid) and loses one per
memblock-allocated vmemmap page HVO frees (mm/hugetlb_vmemmap.c free_vmemmap_page);
``nr_memmap_pages`` gets the memmap pages of every section added after boot, altmap or not
(mm/sparse-vmemmap.c section_nr_vmemmap_pages), plus the head vmemmap page HVO allocates per
folio, minus buddy vmemmap pages HVO frees. The census' frames by provenance predict both:
boot = ``boot``; buddy = ``hotplug`` + ``self_hosted`` + ``hvo``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kernel import Kernel

COUNTERS = ("nr_memmap_pages", "nr_memmap_boot_pages")


def memmap_counters(kernel: "Kernel") -> dict:
    """``{"available": bool, "reason": str, "nr_memmap_pages": int|None, "nr_memmap_boot_pages": int|None}``."""
    out: dict = {"available": False, "nr_memmap_pages": None, "nr_memmap_boot_pages": None}
    if not kernel.version.at_least(6, 11):
        out["reason"] = f"kernel {kernel.version} has no memmap counters (added in 6.11)"
        return out
    if not kernel.version.at_least(6, 12):
        out["reason"] = "6.11 keeps them per node in vm_node_stat[] at enum indexes only DWARF knows: not read"
        return out
    for name in COUNTERS:
        out[name] = kernel.read_symbol_u64(name)
    if None in (out[n] for n in COUNTERS):
        out["reason"] = "the static counters of mm/vmstat.c are not in kallsyms (CONFIG_KALLSYMS_ALL=n?) or unreadable"
        out["nr_memmap_pages"] = out["nr_memmap_boot_pages"] = None
        return out
    out["available"] = True
    out["reason"] = "global atomic_long_t nr_memmap_pages / nr_memmap_boot_pages of mm/vmstat.c (6.12+)"
    return out
