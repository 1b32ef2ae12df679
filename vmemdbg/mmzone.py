"""``mem_section`` and ``mem_section_usage`` (include/linux/mmzone.h, mm/sparse.c).

With SPARSEMEM_EXTREME the global ``struct mem_section **mem_section`` points to
NR_SECTION_ROOTS root pointers; each root is one page of SECTIONS_PER_ROOT ``struct
mem_section { unsigned long section_mem_map; struct mem_section_usage *usage; [page_ext, pad] }``.
VMCOREINFO's SYMBOL(mem_section) is the pointer *value* (SYMBOL_ARRAY since 4.15).

Reading is bulk: the root array once, each root page once (4 KiB), then one vectorised gather
for all usage words and one for all ``page->flags`` needed for nids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import LayoutError, MemoryFault, VmemdbgError
from .versions import (
    MIGRATETYPE_MASK,
    SectionFlagLayout,
    UsageLayout,
    choose_section_flag_layout,
    choose_usage_layout,
    migratetype_name,
)

if TYPE_CHECKING:
    from .kernel import Kernel

SECTION_MARKED_PRESENT = 0x1
SECTION_HAS_MEM_MAP = 0x2
SECTION_IS_ONLINE = 0x4
SECTION_IS_EARLY = 0x8
#: Runs of at least this many consecutive usage objects are read as one block.
_BULK_MIN = 4
#: Present sections read at most: 2^20 sections are 128 TiB of RAM (4-level paging allows 2^19 in
#: all); a dump whose roots claim more (up to 2^25 with 5-level paging) is not believed beyond it.
MAX_PRESENT_SECTIONS = 1 << 20


@dataclass
class SectionTable:
    """Every present section, as parallel numpy arrays (index = position, not section number)."""

    nr: np.ndarray  # int64 section numbers, ascending
    addr: np.ndarray  # u64 address of the struct mem_section (root pointer + index * size)
    word: np.ndarray  # u64 section_mem_map
    usage: np.ndarray  # u64 struct mem_section_usage *
    flag_layout: SectionFlagLayout
    flag_reason: str
    usage_layout: UsageLayout
    usage_reason: str
    highest_present: int
    roots_present: int
    subsection_map: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    pageblock: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.uint64))
    usage_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    nid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unreadable: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.nr)

    def has(self, flag: int) -> np.ndarray:
        """Boolean mask of sections with ``flag`` set."""
        return (self.word & np.uint64(flag)) != 0

    def index_of(self, nrs: np.ndarray) -> np.ndarray:
        """Position of each section number in the table, -1 if not present."""
        nrs = np.asarray(nrs, dtype=np.int64)
        if len(self.nr) == 0:
            return np.full(nrs.shape, -1, dtype=np.int64)
        i = np.searchsorted(self.nr, nrs)
        ic = np.minimum(i, len(self.nr) - 1)
        return np.where(self.nr[ic] == nrs, ic, -1)


def _roots(kernel: "Kernel") -> tuple[np.ndarray, int]:
    """Root pointers (bounded by ``__highest_present_section_nr`` when known) and that bound."""
    if kernel.roots_addr == 0:  # a live kernel stopped before memory_present() allocated it
        kernel.notes.append("mem_section not allocated yet")
        return np.zeros(0, dtype="<u8"), -1
    highest = kernel.read_symbol_u64("__highest_present_section_nr")
    if highest is not None and highest >= kernel.nr_mem_sections:
        raise LayoutError(f"__highest_present_section_nr={highest} exceeds NR_MEM_SECTIONS={kernel.nr_mem_sections}")
    nroots = kernel.nr_section_roots if highest is None else highest // kernel.sections_per_root + 1
    try:
        raw = kernel.read(kernel.roots_addr, 8 * nroots)
    except MemoryFault as e:
        raise LayoutError(f"mem_section root array at {kernel.roots_addr:#x} is unreadable ({e})") from None
    return np.frombuffer(raw, dtype="<u8"), -1 if highest is None else highest


def read_sections(kernel: "Kernel", *, with_usage: bool = True, with_nid: bool = True) -> SectionTable:
    """Read every present section (for_each_present_section_nr order) with usage and nid."""
    roots, highest = _roots(kernel)
    spr = kernel.sections_per_root
    words_per = kernel.mem_section_size // 8
    unreadable: list[str] = []
    raws: list[bytes] = []
    root_nrs: list[int] = []
    root_ptrs: list[int] = []
    seen: dict[int, int] = {}
    count = roots_present = 0
    for r, ptr in enumerate(roots.tolist()):
        if not ptr:
            continue
        roots_present += 1
        if ptr in seen:  # sparse_index_alloc gives every root its own page: a shared one is corrupt
            unreadable.append(f"mem_section root {r} at {ptr:#x} is the page of root {seen[ptr]} too")
            continue
        seen[ptr] = r
        if count >= MAX_PRESENT_SECTIONS:
            unreadable.append(f"mem_section roots {r} and above: more than {MAX_PRESENT_SECTIONS} present sections")
            break
        try:
            raws.append(kernel.read(ptr, spr * kernel.mem_section_size))
        except (MemoryFault, VmemdbgError) as e:
            unreadable.append(f"mem_section root {r} at {ptr:#x} ({e})")
            continue
        root_nrs.append(r)
        root_ptrs.append(ptr)
        count += int(np.count_nonzero(np.frombuffer(raws[-1], dtype="<u8")[::words_per]
                                      & np.uint64(SECTION_MARKED_PRESENT)))
    # all root pages at once: (roots, sections per root, words per mem_section)
    pages = np.frombuffer(b"".join(raws), dtype="<u8").reshape(len(raws), spr, words_per)
    ri, si = np.nonzero(pages[:, :, 0] & np.uint64(SECTION_MARKED_PRESENT))
    nr = np.asarray(root_nrs, dtype=np.int64)[ri] * spr + si
    addr = np.asarray(root_ptrs, dtype=np.uint64)[ri] + si.astype(np.uint64) * np.uint64(kernel.mem_section_size)
    word = pages[ri, si, 0].copy()
    usage = pages[ri, si, 1].copy()
    del pages, raws
    if highest >= 0:
        keep = nr <= highest
        nr, addr, word, usage = nr[keep], addr[keep], word[keep], usage[keep]
    words_or = int(np.bitwise_or.reduce(word & np.uint64(0x3F))) if len(word) else 0
    zone_device = usage_size = pb_bits = None
    if kernel.debug is not None:
        # enum form (6.0+): SECTION_TAINT_ZONE_DEVICE_BIT exists iff CONFIG_ZONE_DEVICE
        if kernel.debug.enumerator("SECTION_MARKED_PRESENT_BIT") is not None:
            zone_device = kernel.debug.enumerator("SECTION_TAINT_ZONE_DEVICE_BIT") is not None
        usage_size = kernel.debug.sizeof("struct mem_section_usage")
        pb_bits = kernel.debug.enumerator("NR_PAGEBLOCK_BITS")  # an enumerator up to 6.15
        if pb_bits is None and kernel.debug.enumerator("__NR_PAGEBLOCK_BITS") is not None:
            pb_bits = 8  # 6.16+: NR_PAGEBLOCK_BITS = roundup_pow_of_two(__NR_PAGEBLOCK_BITS), a macro
    flag_layout, flag_reason = choose_section_flag_layout(kernel.version, zone_device, words_or)
    usage_layout, usage_reason = choose_usage_layout(kernel.version, _usage_strides(nr, word, usage), usage_size, pb_bits)
    table = SectionTable(nr, addr, word, usage, flag_layout, flag_reason, usage_layout, usage_reason,
                         int(nr[-1]) if len(nr) else -1, roots_present, unreadable=unreadable)
    n = len(nr)
    table.subsection_map = np.zeros(n, np.uint64)
    table.pageblock = np.zeros((n, usage_layout.usemap_words), np.uint64)
    table.usage_ok = np.zeros(n, bool)
    table.nid = np.full(n, -1, np.int64)
    if with_usage:
        _read_usage(kernel, table)
    if with_nid:
        valid = table.has(SECTION_HAS_MEM_MAP)
        vi = np.nonzero(valid)[0]
        table.nid[vi] = kernel.vmemmap.pfn_nids(table.nr[vi].astype(np.uint64) << np.uint64(kernel.pfn_section_shift))
        # Present without a memmap only happens during boot, between memory_present() and
        # sparse_init_one_section(): the word still holds the early nid stash (sparse_early_nid).
        early = np.nonzero(~valid)[0]
        stash = table.word[early] >> np.uint64(flag_layout.nid_shift)
        table.nid[early] = np.where(stash < np.uint64(1 << max(kernel.nodes_shift, 0)), stash, -1).astype(np.int64)
        for i in early[stash >= np.uint64(1 << kernel.nodes_shift)].tolist():
            table.unreadable.append(f"section {int(table.nr[i])}: early nid {int(table.word[i]) >> flag_layout.nid_shift} "
                                    "is not below MAX_NUMNODES")
    return table


def _usage_strides(nr: np.ndarray, word: np.ndarray, usage: np.ndarray) -> list[int]:
    """Usage-pointer distances between consecutive early sections (boot usage arrays)."""
    early = (word & np.uint64(SECTION_IS_EARLY | SECTION_HAS_MEM_MAP)) == np.uint64(SECTION_IS_EARLY | SECTION_HAS_MEM_MAP)
    idx = np.nonzero(early)[0]
    if len(idx) < 2:
        return []
    a, b = idx[:-1], idx[1:]
    consecutive = nr[b] == nr[a] + 1
    d = usage[b[consecutive]].astype(np.int64) - usage[a[consecutive]].astype(np.int64)
    return [int(x) for x in d[(d > 0) & (d <= 256)].tolist()]


def _read_usage(kernel: "Kernel", table: SectionTable) -> None:
    """Read subsection_map and the pageblock_flags words of every section with a usage.

    Boot-time usage objects are consecutive elements of one array per sparse_init_nid group
    (mm/sparse.c: sparse_early_usemaps_alloc_pgdat_section, advanced by mem_section_usage_size()),
    so runs of pointers ``stride`` apart are read as one block each; isolated ones (hot-added
    sections kzalloc their own, section_activate) are gathered word by word in one vectorised call.
    """
    has = np.nonzero(table.usage != 0)[0]
    if not len(has):
        return
    po = kernel.page_offset_base
    ptr = table.usage[has]
    in_dm = (ptr >= np.uint64(po)) & (ptr < np.uint64(po + (1 << kernel.max_physmem_bits)))
    for i in has[~in_dm].tolist():
        table.unreadable.append(f"section {int(table.nr[i])}: usage pointer {int(table.usage[i]):#x} is not a direct-map address")
    has = has[in_dm]
    lay = table.usage_layout
    stride = lay.stride
    cols = np.array([lay.subsection_map] + [lay.pageblock_flags + 8 * w for w in range(lay.usemap_words)],
                    dtype=np.int64) // 8
    order = has[np.argsort(table.usage[has], kind="stable")]
    phys = (table.usage[order] - np.uint64(po)).astype(np.int64)
    brk = np.ones(len(order), dtype=bool)
    brk[1:] = phys[1:] != phys[:-1] + stride
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], len(order))
    scattered: list[np.ndarray] = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a < _BULK_MIN:
            scattered.append(np.arange(a, b))
            continue
        try:
            raw = np.frombuffer(kernel.read_phys(int(phys[a]), (b - a) * stride), dtype="<u8").reshape(b - a, stride // 8)
        except MemoryFault:
            scattered.append(np.arange(a, b))
            continue
        idx = order[a:b]
        table.subsection_map[idx] = raw[:, cols[0]]
        table.pageblock[idx] = raw[:, cols[1:]]
        table.usage_ok[idx] = True
    if scattered:
        k = np.concatenate(scattered)
        idx = order[k]
        addrs = (phys[k].astype(np.uint64)[:, None] + (cols * 8).astype(np.uint64)[None, :]).reshape(-1)
        vals, ok = kernel.source.gather_u64(addrs)
        vals = vals.reshape(-1, len(cols))
        row_ok = ok.reshape(-1, len(cols)).all(axis=1)
        table.subsection_map[idx] = vals[:, 0]
        table.pageblock[idx] = vals[:, 1:]
        table.usage_ok[idx] = row_ok
        for i in idx[~row_ok].tolist():
            table.unreadable.append(f"section {int(table.nr[i])}: usage at {int(table.usage[i]):#x} is not in the dump")


def decode_mem_map(kernel: "Kernel", table: SectionTable) -> np.ndarray:
    """``sparse_decode_mem_map``: (word & SECTION_MAP_MASK) + start_pfn, as a struct page address."""
    coded = table.word & np.uint64(table.flag_layout.map_mask)
    start_pfn = table.nr.astype(np.uint64) << np.uint64(kernel.pfn_section_shift)
    return coded + start_pfn * np.uint64(kernel.struct_page_size)


def migratetypes(pageblock_words: np.ndarray, bits: int) -> list[str]:
    """Decode one section's pageblock_flags (64 groups of ``bits`` = NR_PAGEBLOCK_BITS bits).

    get_pfnblock_flags_mask (mm/page_alloc.c): group ``i`` is bits ``bits*i ..`` of the bitmap,
    packed LSB-first in unsigned longs; bits 0-2 are the migratetype.
    """
    names = []
    per_word = 64 // bits
    for w in pageblock_words.tolist():
        for j in range(per_word):
            names.append(migratetype_name((w >> (j * bits)) & MIGRATETYPE_MASK))
    return names


def vmemmap_base_from_sections(kernel: "Kernel") -> int:
    """vmemmap_base from the first valid section word: word & SECTION_MAP_MASK == vmemmap_base
    (docs/sparse-model.md#section_mem_map-the-coded-memmap-pointer)."""
    roots, _ = _roots(kernel)
    for ptr in roots.tolist():
        if not ptr:
            continue
        try:
            page = np.frombuffer(kernel.read(ptr, 4096), dtype="<u8")[:: kernel.mem_section_size // 8]
        except (MemoryFault, VmemdbgError):
            continue
        valid = page[(page & np.uint64(SECTION_HAS_MEM_MAP)) != 0]
        if len(valid):
            return int(valid[0]) & ~0xFFF & ((1 << 64) - 1)
    raise LayoutError("cannot find vmemmap_base: no symbol and no valid section")
