"""Replay of sparse_init (mm/sparse.c, Linux 6.1) for SPARSEMEM_EXTREME + VMEMMAP.

memblocks_present → memory_present per memblock memory range (roots array on the first call,
one root page per root on the node of the first range touching it, nid stash first-writer-wins);
then one sparse_init_nid per run of consecutive present sections with equal early nid: usage array
next to NODE_DATA (CONFIG_MEMORY_HOTREMOVE), an exact-node 2 MiB-aligned sparse buffer, and
__populate_section_memmap for each present section.  Section words are kept in numpy arrays so a
64 TiB machine (524288 sections) costs one vectorised pass plus one loop over present sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from ..abi import (
    SECTION_HAS_MEM_MAP,
    SECTION_IS_EARLY,
    SECTION_IS_ONLINE,
    SECTION_MARKED_PRESENT,
)
from .machine import Machine
from .memblock import ALLOC_ACCESSIBLE, NUMA_NO_NODE, Memblock, MemblockPanic
from .vmemmap import SparseBuffer, Vmemmap

INTERNODE_CACHE_BYTES = 64  # 1 << INTERNODE_CACHE_SHIFT
SMP_CACHE_BYTES = 64


@dataclass
class Group:
    """One sparse_init_nid call: its sections and what it allocated."""

    nid: int
    pnum_begin: int
    pnum_end: int
    sections: np.ndarray       # int64 present section numbers, ascending
    usage: int | None = None
    buffer: int | None = None
    buffer_size: int = 0
    failed_at: int | None = None


@dataclass
class SparseState:
    """Results of sparse_init."""

    nr_sections: int
    words: np.ndarray          # uint64 section_mem_map per section (index = section nr)
    usage: np.ndarray          # uint64 physical address of the section's usage (0 if none)
    early_nid: np.ndarray      # int32 early nid stash (-1 if never present)
    roots_phys: int = 0
    roots: dict[int, int] = field(default_factory=dict)  # root index → phys of the root page
    highest_present: int = 0
    groups: list[Group] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class Sparse:
    """sparse_init and helpers."""

    def __init__(self, machine: Machine, mb: Memblock, vm: Vmemmap, buffer: SparseBuffer,
                 node_data: dict[int, int], early_pfn_to_nid: Callable[[int], int]) -> None:
        self.machine = machine
        self.profile = machine.profile
        self.mb = mb
        self.vm = vm
        self.buffer = buffer
        self.node_data = node_data
        self.early_pfn_to_nid = early_pfn_to_nid
        top = max(e for _, e, _ in mb.mem_pfn_ranges())
        n = min((top + self.profile.pages_per_section - 1) >> self.profile.nr_section_bits, machine.nr_mem_sections)
        self.st = SparseState(n, np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.full(n, -1, np.int32))

    def memory_present(self, nid: int, start: int, end: int) -> None:
        """memory_present() (mm/sparse.c, 6.1)."""
        st, p = self.st, self.profile
        if not st.roots_phys:
            size = 8 * self.machine.nr_section_roots
            r = self.mb.alloc_try_nid(size, INTERNODE_CACHE_BYTES, 0, ALLOC_ACCESSIBLE, NUMA_NO_NODE,
                                      "sparse_init", what="mem_section roots array")
            if r is None:
                raise MemblockPanic(f"memory_present: Failed to allocate {size} bytes")
            st.roots_phys = r
        start &= ~(p.pages_per_section - 1)
        end = min(end, (1 << (self.machine.max_physmem_bits - 12)))
        if start >= end:
            return
        s0, s1 = start >> p.nr_section_bits, (end - 1) >> p.nr_section_bits
        spr = p.sections_per_root
        for root in range(s0 // spr, s1 // spr + 1):
            if root not in st.roots:
                r = self.mb.alloc_try_nid(spr * p.mem_section_size, SMP_CACHE_BYTES, 0,
                                          ALLOC_ACCESSIBLE, nid, "sparse_index_alloc",
                                          what=f"mem_section root {root}")
                if r is None:
                    raise MemblockPanic(f"sparse_index_alloc: Failed to allocate for nid={nid}")
                st.roots[root] = r
        words = st.words[s0:s1 + 1]
        fresh = words == 0
        words[fresh] = np.uint64((nid << p.section_nid_shift) | SECTION_IS_ONLINE | SECTION_MARKED_PRESENT)
        st.early_nid[s0:s1 + 1][fresh] = nid
        if fresh.any():
            st.highest_present = max(st.highest_present, s0 + int(np.flatnonzero(fresh)[-1]))

    def memblocks_present(self) -> None:
        """memblocks_present(): for_each_mem_pfn_range → memory_present."""
        for s, e, nid in list(self.mb.mem_pfn_ranges()):
            self.memory_present(nid, s, e)

    def usemaps_alloc_pgdat_section(self, nid: int, size: int) -> int | None:
        """sparse_early_usemaps_alloc_pgdat_section() (CONFIG_MEMORY_HOTREMOVE) or memblock_alloc_node."""
        if not self.profile.memory_hotremove:
            return self.mb.alloc_try_nid(size, SMP_CACHE_BYTES, 0, ALLOC_ACCESSIBLE, nid,
                                         "sparse_init_nid", what=f"usage array node {nid}")
        sec_bytes = 1 << self.profile.section_size_bits
        goal = self.node_data[nid] & ~(sec_bytes - 1)
        limit = goal + sec_bytes
        unid = self.early_pfn_to_nid(goal >> 12)
        while True:
            usage = self.mb.alloc_try_nid(size, SMP_CACHE_BYTES, goal, limit, unid, "sparse_init_nid",
                                          what=f"usage array node {nid}")
            if usage is None and limit:
                limit = 0
                continue
            return usage

    def sparse_init_nid(self, g: Group) -> None:
        """sparse_init_nid() (mm/sparse.c, 6.1)."""
        st, p = self.st, self.profile
        vbase = self.machine.layout.vmemmap_base
        g.usage = self.usemaps_alloc_pgdat_section(g.nid, p.usage_size * len(g.sections))
        if g.usage is None:
            st.messages.append(f"sparse_init_nid: node[{g.nid}] usemap allocation failed")
            st.words[g.sections] = 0
            g.failed_at = int(g.sections[0])
            return
        g.buffer_size = len(g.sections) * p.section_map_size
        g.buffer = self.buffer.init(g.buffer_size, g.nid, p.section_map_size)
        keep = np.uint64(~p.section_map_mask & 0xFFFFFFFFFFFFFFFF)
        coded = np.uint64(vbase | SECTION_HAS_MEM_MAP | SECTION_IS_EARLY)
        pps, sps = p.pages_per_section, p.struct_page_size
        populate = self.vm.populate
        done = len(g.sections)
        for k, pnum in enumerate(g.sections.tolist()):
            start = vbase + pnum * pps * sps
            if not populate(start, start + pps * sps, g.nid, pnum):
                st.messages.append(f"sparse_init_nid: node[{g.nid}] memory map backing failed. "
                                   "Some memory will not be available.")
                g.failed_at = pnum
                done = k
                break
        # sparse_init_one_section() for the populated sections, usage advancing by
        # mem_section_usage_size() each; the rest of a failed group is marked not present.
        ok = g.sections[:done]
        st.words[ok] = (st.words[ok] & keep) | coded
        st.usage[ok] = np.uint64(g.usage) + np.arange(done, dtype=np.uint64) * np.uint64(p.usage_size)
        st.words[g.sections[done:]] = 0
        self.buffer.fini()

    def sparse_init(self) -> SparseState:
        """sparse_init(): memblocks_present, then one sparse_init_nid per same-nid run."""
        self.memblocks_present()
        st = self.st
        present = np.flatnonzero(st.words & np.uint64(SECTION_MARKED_PRESENT))
        nids = st.early_nid[present]
        cuts = np.flatnonzero(np.diff(nids)) + 1
        bounds = [0, *cuts.tolist(), len(present)]
        for a, b in zip(bounds, bounds[1:]):
            secs = present[a:b].astype(np.int64)
            end = int(present[b]) if b < len(present) else int(secs[-1]) + 1
            g = Group(int(nids[a]), int(secs[0]), end, secs)
            st.groups.append(g)
            self.sparse_init_nid(g)
        st.messages.extend(self.vm.state.messages)
        return st

