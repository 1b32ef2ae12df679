"""Events after boot (machine ``[[event]]``, docs/machine-format.md): the state they leave behind.

Replayed in file order on the booted state, the way the kernel builds it:

* ``hot-add`` — mm/memory_hotplug.c ``add_memory_resource`` → ``arch_add_memory`` →
  ``__add_pages`` → mm/sparse.c ``sparse_add_section``: ``sparse_index_init`` (a root page when the
  root is new), ``section_activate`` (a kzalloc'd ``mem_section_usage`` with the subsection map
  filled, then ``populate_section_memmap`` → mm/sparse-vmemmap.c ``__populate_section_memmap`` →
  ``vmemmap_populate``), ``sparse_init_one_section`` (PRESENT | HAS_MEM_MAP, never IS_EARLY).
  With ``memmap_on_memory`` the memmap comes from the altmap: the first pages of each memory block
  (``vmemmap_alloc_block_buf`` → ``altmap_alloc_block_buf``), so a 128 MiB block's 2 MiB memmap
  is a PMD at the block's own start. Without it the blocks and any new table pages come from the
  page allocator (``vmemmap_alloc_block`` → ``alloc_pages_node``).
* ``online`` / ``offline`` — ``online_pages`` sets SECTION_IS_ONLINE (``online_mem_sections``) and
  grows the node span (``move_pfn_range_to_zone`` → ``resize_pgdat_range``); ``offline_pages``
  clears it (``offline_mem_sections``) and trims the span when the range was at its edge
  (``remove_pfn_range_from_zone`` → ``update_pgdat_span``).
* ``hugetlb`` — N huge pages of one size on a node, optimised by HVO (``hugetlb_free_vmemmap=on``,
  mm/hugetlb_vmemmap.c ``hugetlb_vmemmap_optimize`` → ``vmemmap_remap_free``): every PMD leaf
  over the folio's struct pages is split into 512 RW PTEs (``split_vmemmap_huge_pmd``, a PTE table
  from the page allocator), then the first vmemmap page stays RW and the others map one frame
  read-only. 6.1 reuses the head's own vmemmap frame; 6.12 copies it into a newly allocated page
  and maps that for both (vmemmap_head/vmemmap_tail, "mm/hugetlb_vmemmap: remap head page to newly
  allocated page", v6.2; versions.BOOT_RULES ``hvo_new_head``).

The page allocator is not replayed: its allocations (hot-add memmap without altmap, new table
pages, usage, PTE tables, HVO head pages, the huge pages themselves) are stood in for by a
top-down first fit over the memory free at the end of boot, kept out of the dump's memblock.
Their frames are the simulator's choice; everything else is placed as the kernel does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..abi import (
    PAGE_KERNEL,
    PAGE_PSE,
    PAGE_RW,
    PAGE_SIZE,
    PAGE_TABLE,
    PMD_SIZE,
    PTE_PFN_MASK,
    SECTION_HAS_MEM_MAP,
    SECTION_IS_ONLINE,
    SECTION_MARKED_PRESENT,
)
from .boot import BootState
from .machine import Event, MachineError
from .memblock import ALLOC_ACCESSIBLE, Memblock
from .pagetable_build import index
from .sparse import Group
from .vmemmap import SparseBuffer, Vmemmap

PAGE_KERNEL_RO = PAGE_KERNEL & ~PAGE_RW
#: memory_block_size_bytes() on x86-64 machines below 64 GiB (arch/x86/mm/init_64.c probe_memory_block_size)
MEMORY_BLOCK_SIZE = 128 << 20


@dataclass
class Runtime:
    """The page-allocator stand-in: top-down first fit over what memblock left free at boot."""

    mb: Memblock

    def alloc(self, size: int, align: int, nid: int, what: str) -> int:
        p = self.mb.alloc_try_nid(size, align, 0, ALLOC_ACCESSIBLE, nid, "runtime", what=what)
        if p is None:
            raise MachineError(f"event: no free memory for {what} ({size:#x} bytes on node {nid})")
        return p


def apply_events(st: BootState) -> list[str]:
    """Apply the machine's events to the booted state; returns messages (one per event)."""
    m = st.machine
    if not m.events:
        return []
    rt = Runtime(copy.deepcopy(st.memblock))
    out = []
    for ev in m.events:
        if ev.kind == "hot-add":
            out.append(_hot_add(st, rt, ev))
        elif ev.kind in ("online", "offline"):
            out.append(_online(st, ev.start, ev.end, ev.kind == "online"))
        else:
            out.append(_hugetlb(st, rt, ev))
    vm = st.vmemmap.state
    order = np.argsort(np.frombuffer(vm.pmd_va, np.uint64), kind="stable")
    va = np.frombuffer(vm.pmd_va, np.uint64)[order]
    ph = np.frombuffer(vm.pmd_phys, np.uint64)[order]
    vm.pmd_va[:] = type(vm.pmd_va)("Q", va.tobytes())
    vm.pmd_phys[:] = type(vm.pmd_phys)("Q", ph.tobytes())
    return out


def _grow(st: BootState, n: int) -> None:
    """Extend the section arrays to ``n`` sections (hot-add past the boot memory)."""
    sp = st.sparse
    if n <= sp.nr_sections:
        return
    extra = n - sp.nr_sections
    sp.words = np.concatenate([sp.words, np.zeros(extra, np.uint64)])
    sp.usage = np.concatenate([sp.usage, np.zeros(extra, np.uint64)])
    sp.early_nid = np.concatenate([sp.early_nid, np.full(extra, -1, np.int32)])
    sp.nr_sections = n


def _hot_add(st: BootState, rt: Runtime, ev: Event) -> str:
    m, p = st.machine, st.machine.profile
    sp = st.sparse
    shift = p.section_size_bits
    s0, s1 = ev.start >> shift, ev.end >> shift
    _grow(st, s1)
    present = [nr for nr in range(s0, s1) if sp.words[nr] & np.uint64(SECTION_MARKED_PRESENT)]
    if present:
        raise MachineError(f"event hot-add {ev.start:#x}-{ev.end - 1:#x}: section {present[0]} is already present")
    vbase = m.layout.vmemmap_base
    per_sec = p.pages_per_section * p.struct_page_size
    for nr in range(s0, s1):
        root = nr // p.sections_per_root
        if root not in sp.roots:  # sparse_index_init → sparse_index_alloc (kzalloc_node)
            sp.roots[root] = rt.alloc(PAGE_SIZE, PAGE_SIZE, ev.node, f"mem_section root {root}")
        usage = rt.alloc(p.usage_size, 8, ev.node, f"usage section {nr}")  # section_activate: kzalloc
        if ev.memmap_on_memory:
            block = ev.start + ((nr - s0) << shift) // MEMORY_BLOCK_SIZE * MEMORY_BLOCK_SIZE
            altmap = SparseBuffer(rt.mb)
            altmap.buf, altmap.end = block, block + -(-per_sec // PMD_SIZE) * PMD_SIZE
        else:
            altmap = SparseBuffer(rt.mb)
        vm = Vmemmap(rt.mb, st.pagetables, altmap, p.struct_page_size, m.pse,
                     lambda pfn: ev.node, lambda sec: False)
        vm.state = st.vmemmap.state
        start = vbase + nr * per_sec
        if not vm.populate(start, start + per_sec, ev.node, nr):
            raise MachineError(f"event hot-add: vmemmap_populate failed for section {nr}")
        flags = SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP | (SECTION_IS_ONLINE if ev.online else 0)
        sp.words[nr] = np.uint64(vbase | flags)
        sp.usage[nr] = np.uint64(usage)
        sp.early_nid[nr] = ev.node
        sp.groups.append(Group(ev.node, nr, nr + 1, np.array([nr], np.int64), usage=usage))
        sp.highest_present = max(sp.highest_present, nr)
    st.hotplug.append((ev.start >> 12, ev.end >> 12, ev.node))
    if ev.online:
        _span(st, ev.node, ev.start >> 12, ev.end >> 12)
    return (f"hot-add [{ev.start:#x}-{ev.end - 1:#x}] node {ev.node}: sections {s0}-{s1 - 1}"
            + (" memmap on memory" if ev.memmap_on_memory else "") + (", online" if ev.online else ", offline"))


def _span(st: BootState, nid: int, s: int, e: int) -> None:
    """resize_pgdat_range: the node span covers [s, e) pfns."""
    start, spanned, present = st.node_spans.get(nid, (s, 0, 0))
    lo, hi = min(start, s), max(start + spanned, e)
    st.node_spans[nid] = (lo, hi - lo, present + e - s)


def _online(st: BootState, start: int, end: int, online: bool) -> str:
    p = st.machine.profile
    sp = st.sparse
    s0, s1 = start >> p.section_size_bits, end >> p.section_size_bits
    for nr in range(s0, min(s1, sp.nr_sections)):
        w = int(sp.words[nr])
        if not w & SECTION_MARKED_PRESENT:
            raise MachineError(f"event {'online' if online else 'offline'}: section {nr} is not present")
        sp.words[nr] = np.uint64(w | SECTION_IS_ONLINE if online else w & ~SECTION_IS_ONLINE)
        a, b = nr << p.nr_section_bits, (nr + 1) << p.nr_section_bits
        nid = int(sp.early_nid[nr])
        if online:
            _span(st, nid, a, b)
        elif nid in st.node_spans:  # remove_pfn_range_from_zone → update_pgdat_span: trim an edge
            start, spanned, present = st.node_spans[nid]
            end = start + spanned
            if b >= end > a:
                end = a
            elif a <= start < b:
                start = b
            st.node_spans[nid] = (start, max(0, end - start), max(0, present - (b - a)))
    return f"{'online' if online else 'offline'} [{start:#x}-{end - 1:#x}]: sections {s0}-{s1 - 1}"


def _pmd_slot(st: BootState, va: int) -> tuple[int, int]:
    """(PMD table phys, index) of the PMD entry mapping vmemmap ``va``."""
    pt = st.pagetables
    table = pt.top
    for level in pt.names[:pt.names.index("pmd")]:
        table = pt.get(table, index(pt.levels, level, va)) & PTE_PFN_MASK
    return table, index(pt.levels, "pmd", va)


def _split_pmd(st: BootState, rt: Runtime, va: int, nid: int) -> int:
    """split_vmemmap_huge_pmd(): a PTE table mapping the PMD's 2 MiB frame with 512 RW PTEs."""
    vm = st.vmemmap.state
    pt = st.pagetables
    table, pi = _pmd_slot(st, va)
    e = pt.get(table, pi)
    if not e & PAGE_PSE:
        return e & PTE_PFN_MASK
    frame = e & PTE_PFN_MASK & ~(PMD_SIZE - 1)
    ptab = rt.alloc(PAGE_SIZE, PAGE_SIZE, nid, "HVO PTE table")
    pt.add_table(ptab, "pte", f"hvo (node {nid})")
    vm.tables.append((ptab, "pte", nid))
    base = va & ~(PMD_SIZE - 1)
    for i in range(512):
        pt.set(ptab, i, (frame + i * PAGE_SIZE) | PAGE_KERNEL)
        vm.pte[base + i * PAGE_SIZE] = frame + i * PAGE_SIZE
    pt.set(table, pi, ptab | PAGE_TABLE)
    k = list(vm.pmd_va).index(base)
    del vm.pmd_va[k]
    del vm.pmd_phys[k]
    return ptab


def _hugetlb(st: BootState, rt: Runtime, ev: Event) -> str:
    m, p = st.machine, st.machine.profile
    pages = ev.size >> 12
    vsize = pages * p.struct_page_size
    done = []
    for _ in range(ev.pages):
        folio = rt.alloc(ev.size, ev.size, ev.node, f"hugetlb {ev.size >> 20} MiB page")
        done.append(folio)
        st.hugetlb.append((folio, ev.size, ev.node, ev.free_vmemmap))
        if not ev.free_vmemmap:
            continue
        head = m.layout.vmemmap_base + (folio >> 12) * p.struct_page_size
        for va in range(head & ~(PMD_SIZE - 1), head + vsize, PMD_SIZE):
            _split_pmd(st, rt, va, ev.node)
        head_frame = st.vmemmap.state.pte[head]
        if p.rules.hvo_new_head:
            head_frame = rt.alloc(PAGE_SIZE, PAGE_SIZE, ev.node, "HVO head vmemmap page")
        for off in range(0, vsize, PAGE_SIZE):
            va = head + off
            table, pi = _pmd_slot(st, va)
            ptable = st.pagetables.get(table, pi) & PTE_PFN_MASK
            st.pagetables.set(ptable, index(st.pagetables.levels, "pte", va),
                              head_frame | (PAGE_KERNEL if off == 0 else PAGE_KERNEL_RO))
            st.vmemmap.state.pte[va] = head_frame
            if off:
                st.hvo_tails.add(va)
    return (f"hugetlb: {ev.pages} x {ev.size >> 20} MiB on node {ev.node}"
            + (" with HVO" if ev.free_vmemmap else "") + f" at {', '.join(f'{f:#x}' for f in done)}")


__all__ = ["apply_events", "MEMORY_BLOCK_SIZE"]
