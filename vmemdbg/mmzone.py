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

from .abi import (
    SECTION_HAS_MEM_MAP,
    SECTION_IS_EARLY,
    SECTION_IS_ONLINE,
    SECTION_MARKED_PRESENT,
)
from .errors import MemoryFault, VmemdbgError
from .intervals import index_in_sorted, split_runs
from .versions import (
    MIGRATETYPE_MASK,
    SectionFlagLayout,
    UsageLayout,
    choose_section_flag_layout,
    choose_usage_layout,
    migratetype_name,
)
from .vmemmap import vmemmap_mapping

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["SECTION_HAS_MEM_MAP", "SECTION_IS_EARLY", "SECTION_IS_ONLINE", "SECTION_MARKED_PRESENT", "SectionTable",
           "present_sections", "read_sections", "decode_mem_map", "migratetypes"]

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
        return index_in_sorted(self.nr, nrs)


def present_sections(kernel: "Kernel") -> SectionTable:
    """Every present section with usage and nid (``for_each_present_section_nr``), read once per
    kernel and kept in ``kernel.cache``."""
    return kernel.cached("mmzone.present_sections", read_sections)


def read_sections(kernel: "Kernel") -> SectionTable:
    """Read every present section (for_each_present_section_nr order) with usage and nid
    (uncached: :func:`present_sections` is the cached accessor)."""
    roots, highest = kernel.mem_section_roots()
    raw = _read_root_pages(kernel, roots)
    nr, addr, word, usage = raw.present(kernel, highest)
    flag_layout, flag_reason, usage_layout, usage_reason = _choose_layouts(kernel, nr, word, usage)
    table = SectionTable(nr, addr, word, usage, flag_layout, flag_reason, usage_layout, usage_reason,
                         int(nr[-1]) if len(nr) else -1, raw.roots_present, unreadable=raw.unreadable)
    n = len(nr)
    table.subsection_map = np.zeros(n, np.uint64)
    table.pageblock = np.zeros((n, usage_layout.usemap_words), np.uint64)
    table.usage_ok = np.zeros(n, bool)
    table.nid = np.full(n, -1, np.int64)
    _read_usage(kernel, table)
    _section_nids(kernel, table)
    return table


@dataclass
class _RootPages:
    """The readable root pages of ``mem_section``, as read by :func:`_read_root_pages`."""

    raws: list[bytes]
    root_nrs: list[int]
    root_ptrs: list[int]
    roots_present: int
    unreadable: list[str]

    def present(self, kernel: "Kernel", highest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Number, address, section_mem_map and usage pointer of every present section (up to
        ``highest`` when it is known), from all root pages at once."""
        spr = kernel.sections_per_root
        pages = np.frombuffer(b"".join(self.raws), dtype="<u8").reshape(len(self.raws), spr, kernel.mem_section_size // 8)
        ri, si = np.nonzero(pages[:, :, 0] & np.uint64(SECTION_MARKED_PRESENT))
        nr = np.asarray(self.root_nrs, dtype=np.int64)[ri] * spr + si
        addr = np.asarray(self.root_ptrs, dtype=np.uint64)[ri] + si.astype(np.uint64) * np.uint64(kernel.mem_section_size)
        word = pages[ri, si, 0].copy()
        usage = pages[ri, si, 1].copy()
        self.raws = []  # decoded: the pages are not needed any more
        if highest >= 0:
            keep = nr <= highest
            nr, addr, word, usage = nr[keep], addr[keep], word[keep], usage[keep]
        return nr, addr, word, usage


def _read_root_pages(kernel: "Kernel", roots: np.ndarray) -> _RootPages:
    """Read each root's page of ``struct mem_section`` once, refusing shared pages and stopping
    past :data:`MAX_PRESENT_SECTIONS` present sections."""
    words_per = kernel.mem_section_size // 8
    out = _RootPages([], [], [], 0, [])
    seen: dict[int, int] = {}
    count = 0
    for r, ptr in enumerate(roots.tolist()):
        if not ptr:
            continue
        out.roots_present += 1
        if ptr in seen:  # sparse_index_alloc gives every root its own page: a shared one is corrupt
            out.unreadable.append(f"mem_section root {r} at {ptr:#x} is the page of root {seen[ptr]} too")
            continue
        seen[ptr] = r
        if count >= MAX_PRESENT_SECTIONS:
            out.unreadable.append(f"mem_section roots {r} and above: more than {MAX_PRESENT_SECTIONS} present sections")
            break
        try:
            out.raws.append(kernel.read(ptr, kernel.sections_per_root * kernel.mem_section_size))
        except VmemdbgError as e:
            out.unreadable.append(f"mem_section root {r} at {ptr:#x} ({e})")
            continue
        out.root_nrs.append(r)
        out.root_ptrs.append(ptr)
        count += int(np.count_nonzero(np.frombuffer(out.raws[-1], dtype="<u8")[::words_per]
                                      & np.uint64(SECTION_MARKED_PRESENT)))
    return out


def _choose_layouts(kernel: "Kernel", nr: np.ndarray, word: np.ndarray,
                    usage: np.ndarray) -> tuple[SectionFlagLayout, str, UsageLayout, str]:
    """The section flag layout and the mem_section_usage layout (with their reasons), from the
    debugger's DWARF when there is one, else from the kernel version and the words themselves."""
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
    return flag_layout, flag_reason, usage_layout, usage_reason


def _section_nids(kernel: "Kernel", table: SectionTable) -> None:
    """The node of every present section: that of its first pfn's struct page for valid sections;
    the early nid stash (sparse_early_nid) for present sections without a memmap, which only
    exist during boot, between memory_present() and sparse_init_one_section()."""
    valid = table.has(SECTION_HAS_MEM_MAP)
    vi = np.nonzero(valid)[0]
    table.nid[vi] = vmemmap_mapping(kernel).pfn_nids(table.nr[vi].astype(np.uint64) << np.uint64(kernel.pfn_section_shift))
    nid_shift = table.flag_layout.nid_shift
    early = np.nonzero(~valid)[0]
    stash = table.word[early] >> np.uint64(nid_shift)
    table.nid[early] = np.where(stash < np.uint64(1 << max(kernel.nodes_shift, 0)), stash, -1).astype(np.int64)
    for i in early[stash >= np.uint64(1 << kernel.nodes_shift)].tolist():
        table.unreadable.append(f"section {int(table.nr[i])}: early nid {int(table.word[i]) >> nid_shift} "
                                "is not below MAX_NUMNODES")


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
    starts, ends = split_runs(phys[1:] != phys[:-1] + stride)
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
