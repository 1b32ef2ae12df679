"""The vmemmap mapping: leaves of the kernel page tables over the vmemmap region.

On SPARSEMEM_VMEMMAP ``struct page`` for pfn ``n`` lives at ``vmemmap_base + n *
sizeof(struct page)`` (include/asm-generic/memory_model.h). The mapping is built by
vmemmap_populate (arch/x86/mm/init_64.c ≤6.1; generic loop in mm/sparse-vmemmap.c since 6.2)
and later edited by HVO (mm/hugetlb_vmemmap.c), which aliases read-only tail frames. So a
struct page's physical address must always be found through the page tables
(docs/vmemmap.md#never-pmd-base-plus-offset), never as "PMD base + offset"; :meth:`VmemmapMapping.translate` does
that for whole arrays of addresses at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .intervals import containing
from .memory import blockwise
from .pagetable import Leaves, WalkFault

if TYPE_CHECKING:
    from .kernel import Kernel


#: pfns looked up per block in :meth:`VmemmapMapping.page_flags`.
_BLOCK = 1 << 16


def vmemmap_mapping(kernel: "Kernel") -> "VmemmapMapping":
    """The vmemmap page-table leaves of ``kernel``, walked once and kept in ``kernel.cache``."""
    return kernel.cached("vmemmap.vmemmap_mapping", VmemmapMapping)


class VmemmapMapping:
    """All page-table leaves of ``[vmemmap_base, vmemmap_base + NR_MEM_SECTIONS memmaps)``."""

    def __init__(self, kernel: "Kernel"):
        self.kernel = kernel
        self.start = kernel.vmemmap_base
        self.end = min(self.start + kernel.vmemmap_span, 1 << 64)
        before = len(kernel.pt.faults)
        self.leaves: Leaves = kernel.pt.leaves(self.start, self.end)
        self.faults: list[WalkFault] = kernel.pt.faults[before:]
        self.ends = self.leaves.va + self.leaves.size
        #: how many pfn -> node answers came from node ranges and how many from struct page flags.
        self.nid_sources = {"node_ranges": 0, "struct_page": 0}

    def translate(self, vas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical address of each vmemmap VA; ``ok`` is False where it is not mapped."""
        vas = np.asarray(vas, dtype=np.uint64)
        lv = self.leaves
        if len(lv) == 0:
            return np.zeros(vas.shape, np.uint64), np.zeros(vas.shape, bool)
        ic, ok = containing(lv.va, self.ends, vas)
        phys = np.where(ok, lv.phys[ic] + (vas - lv.va[ic]), np.uint64(0))
        return phys, ok

    def page_va(self, pfns: np.ndarray) -> np.ndarray:
        """``pfn_to_page`` for an array of pfns."""
        k = self.kernel
        return np.uint64(k.vmemmap_base) + np.asarray(pfns, dtype=np.uint64) * np.uint64(k.struct_page_size)

    def page_flags(self, pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``page->flags`` (offset 0, VMCOREINFO OFFSET(page.flags)) of each pfn's struct page.

        Done in blocks so the temporaries of half a million lookups never coexist."""
        return blockwise(self._page_flags, np.asarray(pfns, dtype=np.uint64), _BLOCK)

    def _page_flags(self, pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phys, ok = self.translate(self.page_va(pfns))
        vals = np.zeros(phys.shape, dtype=np.uint64)
        sel = np.nonzero(ok)[0]
        if sel.size:
            v, ok2 = self.kernel.source.gather_u64(phys[sel])
            vals[sel] = v
            ok[sel] = ok2
        return vals, ok

    def pfn_nids(self, pfns: np.ndarray) -> np.ndarray:
        """``page_to_nid(pfn_to_page(pfn))`` per pfn; -1 where it cannot be known.

        The node comes from the kernel's node ranges where they decide: a pfn inside the span
        ``[node_start_pfn, node_start_pfn + node_spanned_pages)`` of exactly one online node
        belongs to that node, because memmap_init initialises every struct page of a node's span,
        holes included, with that node's id (mm/page_alloc.c: memmap_init, memmap_init_range,
        init_unavailable_range; set_page_links). Only pfns outside every span or inside
        overlapping spans (interleaved nodes), and everything before free_area_init has set the
        spans, read ``page->flags`` from the struct page. :attr:`nid_sources` counts both.
        """
        pfns = np.asarray(pfns, dtype=np.uint64).reshape(-1)
        if pfns.size < 2 or np.all(pfns[1:] > pfns[:-1]):  # already unique (e.g. section start pfns)
            return self._unique_pfn_nids(pfns)
        uniq, inv = np.unique(pfns, return_inverse=True)
        return self._unique_pfn_nids(uniq)[inv.reshape(-1)]

    def _unique_pfn_nids(self, pfns: np.ndarray) -> np.ndarray:
        nids = np.full(pfns.shape, -1, dtype=np.int64)
        hits = np.zeros(pfns.shape, dtype=np.int64)
        for node in self.kernel.nodes:
            lo, n = node["start_pfn"], node["spanned_pages"]
            if not n or lo + n > 1 << 52:
                continue
            inside = (pfns >= np.uint64(lo)) & (pfns < np.uint64(lo + n))
            hits += inside
            nids[inside] = node["nid"]
        by_range = hits == 1
        nids[~by_range] = -1
        rest = np.flatnonzero(~by_range)
        if rest.size:
            flags, ok = self.page_flags(pfns[rest])
            nids[rest] = np.where(ok, self.kernel.page_to_nid(flags), -1)
        self.nid_sources["node_ranges"] += int(np.count_nonzero(by_range))
        self.nid_sources["struct_page"] += int(rest.size)
        return nids
