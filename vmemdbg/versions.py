"""Every kernel-version quirk the engine knows, in one place.

Each table names the kernel commit that changed the layout. Decoders elsewhere ask this module
which layout applies and record *why* (shown by ``sections -v``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import LayoutError


@dataclass(frozen=True, order=True)
class KernelVersion:
    """``major.minor.patch`` parsed from OSRELEASE (Debian's ``6.1.0-56-amd64`` gives 6.1.0)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, release: str) -> "KernelVersion":
        """Parse the leading ``X.Y[.Z]`` of a release string; unknown formats give 0.0.0."""
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
        if not m:
            return cls(0, 0, 0)
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def at_least(self, major: int, minor: int) -> bool:
        """True if this is ``major.minor`` or later."""
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# ---------------------------------------------------------------------------------------------
# struct mem_section.section_mem_map flag bits (include/linux/mmzone.h)


@dataclass(frozen=True)
class SectionFlagLayout:
    """Flag bits of ``section_mem_map`` for one family of kernels."""

    name: str
    bits: tuple[tuple[str, int], ...]  # (name without SECTION_ prefix, bit value), in bit order
    map_mask: int  # SECTION_MAP_MASK
    nid_shift: int  # SECTION_NID_SHIFT (early-boot nid stash)
    origin: str

    def decode(self, word: int) -> list[str]:
        """Names of the flag bits set in ``word``."""
        return [n for n, b in self.bits if word & b]


_BASE = (("MARKED_PRESENT", 1), ("HAS_MEM_MAP", 2), ("IS_ONLINE", 4))
_EARLY = _BASE + (("IS_EARLY", 8),)
_M64 = (1 << 64) - 1

SECTION_FLAG_LAYOUTS: dict[str, SectionFlagLayout] = {
    "4.13": SectionFlagLayout("4.13", _BASE, _M64 ^ 0x7, 3, "macros; IS_ONLINE since 2d070eab2e82 (v4.13)"),
    "5.3": SectionFlagLayout("5.3", _EARLY, _M64 ^ 0xF, 3,
                             "IS_EARLY added by 326e1b8f83a4 (v5.3); NID_SHIFT 3 overlaps IS_EARLY"),
    "5.12": SectionFlagLayout("5.12", _EARLY + (("TAINT_ZONE_DEVICE", 0x10),), _M64 ^ 0x1F, 6,
                              "TAINT_ZONE_DEVICE added unconditionally by 1f90a3477df3 (v5.12)"),
    "6.0": SectionFlagLayout("6.0", _EARLY + (("TAINT_ZONE_DEVICE", 0x10),), _M64 ^ 0x1F, 5,
                             "enum form ed7802dd48f7 (v6.0), CONFIG_ZONE_DEVICE=y"),
    "6.0-nozd": SectionFlagLayout("6.0-nozd", _EARLY, _M64 ^ 0xF, 4,
                                  "enum form ed7802dd48f7 (v6.0), CONFIG_ZONE_DEVICE=n"),
    "6.15": SectionFlagLayout("6.15", _EARLY + (("TAINT_ZONE_DEVICE", 0x10), ("IS_VMEMMAP_PREINIT", 0x20)),
                              _M64 ^ 0x3F, 6,
                              "IS_VMEMMAP_PREINIT added by 'mm/sparse: allow for alternate vmemmap section init at boot' (v6.15), ZONE_DEVICE=y"),
    "6.15-nozd": SectionFlagLayout("6.15-nozd", _EARLY + (("IS_VMEMMAP_PREINIT", 0x10),), _M64 ^ 0x1F, 5,
                                   "v6.15 enum with IS_VMEMMAP_PREINIT, CONFIG_ZONE_DEVICE=n"),
}


def choose_section_flag_layout(version: KernelVersion, zone_device: bool | None,
                               words_or: int) -> tuple[SectionFlagLayout, str]:
    """Pick the flag layout for ``version``.

    ``zone_device`` is CONFIG_ZONE_DEVICE when known (debug info), else None. ``words_or`` is the
    OR of the low 6 bits of every section word: a set bit 4 on 6.0–6.14 proves ZONE_DEVICE=y.
    """
    if version.at_least(6, 15):
        fam = "6.15"
    elif version.at_least(6, 0):
        fam = "6.0"
    elif version.at_least(5, 12):
        return SECTION_FLAG_LAYOUTS["5.12"], f"kernel {version} is 5.12–5.19: macro layout with TAINT_ZONE_DEVICE"
    elif version.at_least(5, 3):
        return SECTION_FLAG_LAYOUTS["5.3"], f"kernel {version} is 5.3–5.11"
    else:
        return SECTION_FLAG_LAYOUTS["4.13"], f"kernel {version} is before 5.3"
    if zone_device is None:
        if fam == "6.0" and words_or & 0x10:
            zone_device, why = True, "a section word has bit 4 set (TAINT_ZONE_DEVICE)"
        else:
            zone_device, why = True, "CONFIG_ZONE_DEVICE assumed =y (every distro config; no debug info to check)"
    else:
        why = f"CONFIG_ZONE_DEVICE={'y' if zone_device else 'n'} from debug info"
    name = fam if zone_device else fam + "-nozd"
    return SECTION_FLAG_LAYOUTS[name], f"kernel {version} uses the {fam}+ enum layout; {why}"


# ---------------------------------------------------------------------------------------------
# struct mem_section_usage (include/linux/mmzone.h)


#: Pageblocks per section on x86-64: PAGES_PER_SECTION >> pageblock_order = 2^15 >> 9.
PAGEBLOCKS_PER_SECTION = 64


@dataclass(frozen=True)
class UsageLayout:
    """Offsets inside ``struct mem_section_usage`` and the width of its pageblock bitmap.

    ``pageblock_flags[]`` holds NR_PAGEBLOCK_BITS bits per pageblock (include/linux/pageblock-flags.h):
    4 up to 6.15 (``enum pageblock_bits``: 3 migratetype bits + PB_migrate_skip); 8 since 6.16,
    when "mm/page_isolation: make page isolation a standalone bit" added PB_migrate_isolate
    (__NR_PAGEBLOCK_BITS = 5) and defined NR_PAGEBLOCK_BITS = roundup_pow_of_two(5).
    usemap_size() is then 32 or 64 bytes on x86-64.
    """

    name: str
    subsection_map: int
    pageblock_flags: int
    struct_size: int
    pageblock_bits: int = 4

    @property
    def usemap_words(self) -> int:
        """unsigned longs of ``pageblock_flags`` (usemap_size() / 8)."""
        return PAGEBLOCKS_PER_SECTION * self.pageblock_bits // 64

    @property
    def stride(self) -> int:
        """mem_section_usage_size(): boot-time usage arrays advance by this much per section."""
        return self.struct_size + 8 * self.usemap_words


USAGE_PLAIN = UsageLayout("plain", 0, 8, 8)
USAGE_RCU = UsageLayout("rcu_head", 16, 24, 24)
USAGE_RCU_PB8 = UsageLayout("rcu_head+8-bit-pageblocks", 16, 24, 24, 8)
_USAGE_BY_STRIDE = {lay.stride: lay for lay in (USAGE_PLAIN, USAGE_RCU, USAGE_RCU_PB8)}


def choose_usage_layout(version: KernelVersion, strides: list[int], struct_size: int | None = None,
                        pageblock_bits: int | None = None) -> tuple[UsageLayout, str]:
    """Pick the usage layout.

    The 16-byte ``rcu_head`` came with 5ec8e8ea8b77 ("mm/sparsemem: fix race in accessing
    memory_section->usage", v6.8) and was backported to 5.10/5.15/6.1/6.6 stable in 2024, so the
    version alone cannot tell. ``strides`` are the distances between the usage pointers of
    consecutive sections of one boot group: 40 means no rcu_head, 56 rcu_head, 88 rcu_head with
    8-bit pageblocks (6.16+). Debug info, when a debugger has it, settles it directly
    (``struct_size``, ``pageblock_bits`` = NR_PAGEBLOCK_BITS).
    """
    wide = pageblock_bits == 8 if pageblock_bits is not None else version.at_least(6, 16)
    if struct_size in (USAGE_RCU.struct_size, USAGE_PLAIN.struct_size):
        lay = USAGE_PLAIN if struct_size == USAGE_PLAIN.struct_size else USAGE_RCU_PB8 if wide else USAGE_RCU
        return lay, (f"sizeof(struct mem_section_usage) = {struct_size} from debug info, "
                     f"{lay.pageblock_bits}-bit pageblocks" + (" (debug info)" if pageblock_bits else f" (kernel {version})"))
    counts = {s: strides.count(s) for s in set(strides) if s in _USAGE_BY_STRIDE}
    if counts:
        stride = max(counts, key=lambda s: counts[s])
        lay = _USAGE_BY_STRIDE[stride]
        return lay, (f"boot usage arrays have a {stride}-byte stride ({counts[stride]} pairs): "
                     f"{'no ' if lay is USAGE_PLAIN else ''}rcu_head, {lay.pageblock_bits}-bit pageblocks")
    if version.at_least(6, 16):
        return USAGE_RCU_PB8, f"kernel {version} ≥ 6.16 has the rcu_head and 8-bit pageblocks (no stride evidence)"
    if version.at_least(6, 8):
        return USAGE_RCU, f"kernel {version} ≥ 6.8 has the rcu_head (no stride evidence)"
    return USAGE_PLAIN, f"kernel {version} < 6.8 and no stride evidence: assumed no rcu_head backport"


# ---------------------------------------------------------------------------------------------
# Pageblock migratetypes (include/linux/mmzone.h enum migratetype, mm/page_alloc.c
# migratetype_names). Bits 0-2 of each pageblock group (UsageLayout.pageblock_bits wide).

MIGRATETYPE_NAMES: tuple[str, ...] = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
"""Names with CONFIG_CMA=y and CONFIG_MEMORY_ISOLATION=y (distro configs)."""

MIGRATETYPE_MASK = 0x7


def migratetype_name(value: int) -> str:
    """Name of a migratetype value (``"?N"`` for values outside the enum)."""
    return MIGRATETYPE_NAMES[value] if value < len(MIGRATETYPE_NAMES) else f"?{value}"


# ---------------------------------------------------------------------------------------------
# memblock (include/linux/memblock.h) and system_state (include/linux/kernel.h)

MEMBLOCK_FLAGS: tuple[tuple[str, int], ...] = (
    ("HOTPLUG", 0x1), ("MIRROR", 0x2), ("NOMAP", 0x4),
    ("DRIVER_MANAGED", 0x8),  # f7892d8e288d "memblock: add MEMBLOCK_DRIVER_MANAGED ..." (v5.16)
    ("RSRV_NOINIT", 0x10),  # 77e6c43e137c "memblock: introduce MEMBLOCK_RSRV_NOINIT flag" (v6.7)
    # "memblock: add MEMBLOCK_RSRV_KERN flag", "memblock: add support for scratch memory" (KHO, v6.16);
    # 7.2's DWARF enum memblock_flags ends with these two
    ("RSRV_KERN", 0x20), ("KHO_SCRATCH", 0x40),
)


#: The memblock structs, identical in DWARF of 5.10, 6.1, 6.12 and 7.2 (x86-64): ``struct memblock
#: {bool bottom_up; phys_addr_t current_limit; struct memblock_type memory, reserved;}`` puts the
#: types at +16 and +56; ``struct memblock_type`` starts with ``cnt, max, total_size, regions``;
#: ``struct memblock_region {base, size, enum memblock_flags flags; int nid}`` is 24 bytes, the
#: nid present with CONFIG_NUMA since 3f08a302f533 ("mm: remove CONFIG_HAVE_MEMBLOCK_NODE_MAP
#: option", v5.8).
MEMBLOCK_MEMORY_OFFSET, MEMBLOCK_RESERVED_OFFSET = 16, 56
MEMBLOCK_REGION_NUMA = np.dtype([("base", "<u8"), ("size", "<u8"), ("flags", "<u4"), ("nid", "<i4")])
MEMBLOCK_REGION_FLAT = np.dtype([("base", "<u8"), ("size", "<u8"), ("flags", "<u4"), ("pad", "<u4")])

#: ``struct e820_entry {u64 addr; u64 size; enum e820_type type;} __packed`` (20 bytes) after the
#: u32 ``nr_entries`` of ``struct e820_table`` (arch/x86/include/asm/e820/types.h): the same from
#: the 4.14 e820 rework to 7.2 (checked in DWARF of 5.10, 6.1, 6.12, 7.2).
E820_ENTRY = np.dtype([("addr", "<u8"), ("size", "<u8"), ("type", "<u4")])


def system_state_names(version: KernelVersion) -> list[str]:
    """``enum system_states``; SYSTEM_FREEING_INITMEM came with d2635f2012a4 ("mm: create a new
    system state and fix core_kernel_text()", v5.16): 5.10's DWARF lacks it, 6.1's has it."""
    names = ["BOOTING", "SCHEDULING"]
    if version.at_least(5, 16):
        names.append("FREEING_INITMEM")
    return names + ["RUNNING", "HALT", "POWER_OFF", "RESTART", "SUSPEND"]


# ---------------------------------------------------------------------------------------------
# kallsyms_offsets[] -> address (kernel/kallsyms.c kallsyms_sym_address, scripts/kallsyms.c)


@dataclass(frozen=True)
class KallsymsAddressRule:
    """How one family of kernels turns ``kallsyms_offsets[i]`` (s32) into a symbol address."""

    name: str
    needs_relative_base: bool
    origin: str

    def apply(self, offsets: np.ndarray, *, base: int | None, offsets_va: int) -> np.ndarray:
        """Addresses (uint64) of every entry; ``offsets`` is int64, ``base`` kallsyms_relative_base."""
        m64 = (1 << 64) - 1
        if self.name == "place-relative":
            va = np.uint64(offsets_va) + np.arange(offsets.size, dtype=np.uint64) * np.uint64(4)
            return va + offsets.astype(np.uint64)  # modular: adding a negative s32 wraps correctly
        assert base is not None
        if self.name == "absolute-percpu":
            rel = np.uint64((base - 1) & m64) - offsets.astype(np.uint64)
            return np.where(offsets >= 0, offsets.astype(np.uint64), rel)
        return np.uint64(base) + (offsets & 0xFFFFFFFF).astype(np.uint64)


KALLSYMS_ADDRESS_RULES: dict[str, KallsymsAddressRule] = {
    # 6.0 (when VMCOREINFO started to export the tables, 5fd8fea935a1) to 6.14 on x86-64 SMP
    "absolute-percpu": KallsymsAddressRule(
        "absolute-percpu", True,
        "KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP up to 6.14): offset >= 0 is the absolute value, "
        "else kallsyms_relative_base - 1 - offset"),
    # 6.15 (01157ddc58dc "kallsyms: Remove KALLSYMS_ABSOLUTE_PERCPU", x86 per-CPU data became ordinary
    # kernel-image symbols) to 6.19
    "relative-base": KallsymsAddressRule(
        "relative-base", True,
        "without ABSOLUTE_PERCPU (6.15-6.19, 01157ddc58dc): kallsyms_relative_base + (u32)offset"),
    # 7.0: a081b5789255 "kallsyms: Get rid of kallsyms relative base" dropped kallsyms_relative_base
    # (and its VMCOREINFO line); each entry is a PC32 reference from its own slot (offset_to_ptr)
    "place-relative": KallsymsAddressRule(
        "place-relative", False,
        "7.0+ (a081b5789255): &kallsyms_offsets[i] + offset, no kallsyms_relative_base"),
}

KALLSYMS_TABLES = ("kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index",
                   "kallsyms_offsets")


def kallsyms_address_rules(symbol: Callable[[str], int | None]) -> tuple[KallsymsAddressRule, ...]:
    """Candidate address rules for a VMCOREINFO (``symbol`` looks up its SYMBOL() lines), likeliest first.

    The export of the kallsyms tables in VMCOREINFO (kernel/vmcore_info.c, formerly
    kernel/crash_core.c) came with 5fd8fea935a1 (v6.0); ``kallsyms_relative_base`` stopped being
    exported with a081b5789255 (v7.0), which is how the two families are told apart. Between 6.0
    and 6.19 the ABSOLUTE_PERCPU question is settled by the caller checking ``_stext``.
    """
    missing = [n for n in KALLSYMS_TABLES if symbol(n) is None]
    if missing:
        raise LayoutError(f"VMCOREINFO lacks SYMBOL({missing[0]}): kallsyms tables are exported only since 6.0 "
                          "(5fd8fea935a1); pass --symbols VMLINUX|System.map")
    if symbol("kallsyms_relative_base") is None:
        return (KALLSYMS_ADDRESS_RULES["place-relative"],)
    return (KALLSYMS_ADDRESS_RULES["absolute-percpu"], KALLSYMS_ADDRESS_RULES["relative-base"])


def kallsyms_markers_candidates(token_table_va: int, num_syms: int) -> tuple[int, ...]:
    """Where ``kallsyms_markers`` may start, for the layouts scripts/kallsyms.c has written since 6.0.

    The markers (one u32 per 256 symbols: the offset of symbol 256*i in ``kallsyms_names``) always
    follow ``kallsyms_names``. Each table starts aligned: ``.balign 8`` (``output_label``, 64-bit)
    up to 6.12 at least, 4 bytes in the 7.2 dumps (``kallsyms_names`` itself is only 4-aligned
    there). What comes between the markers and ``kallsyms_token_table`` changed:

    * nothing: 6.0, and 6.4+ ("scripts/kallsyms: change the output order", which moved
      ``kallsyms_seqs_of_names`` behind the addresses); 6.12 and 7.2 dumps;
    * ``kallsyms_seqs_of_names`` (3 bytes per symbol): 6.2-6.3 ("kallsyms: Improve the
      performance of kallsyms_lookup_name()") and 6.1 stable, which has the backport (Debian's
      6.1.0-56 dumps).

    Only candidates: the reader accepts one only if every 256-symbol block it points at parses to
    exactly the next marker (:func:`vmemdbg.kallsyms.record_starts`).
    """
    markers = 4 * ((num_syms + 255) // 256)
    out: list[int] = []
    for align in (8, 4):
        seqs = token_table_va - (3 * num_syms + align - 1) // align * align
        for end in (token_table_va, seqs):
            va = (end - markers) & -align
            if va not in out:
                out.append(va)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# struct resource (include/linux/ioport.h): start, end, name, flags, desc (4.6, 43ee493bde78),
# parent, sibling, child -- 64 bytes on x86-64, unchanged up to 6.15.

RESOURCE_LAYOUT = {"size": 64, "flags": 24, "sibling": 48, "child": 56}
IORESOURCE_SYSRAM = 0x01000000  # IORESOURCE_SYSRAM (4.6, 03cb525eb25c); "System RAM" resources


# ---------------------------------------------------------------------------------------------
# HugeTLB Vmemmap Optimization (mm/hugetlb_vmemmap.c).
#
# * f41f2ed43ca5 "mm: hugetlb: free the vmemmap pages associated with each HugeTLB page" (v5.14):
#   HVO introduced (hugetlb_free_vmemmap=on); the head and the first tail vmemmap pages are kept,
#   the other tails are remapped read-only onto the second one.
# * 3bc2b6a72596 "mm: sparsemem: split the huge PMD mapping of vmemmap pages" (v5.15): the vmemmap
#   stays PMD-mapped and only the PMDs of optimised folios are split into PTEs.
# * e7d324850bfc "mm: hugetlb: free the 2nd vmemmap page associated with each HugeTLB page"
#   (v5.18): only the head vmemmap page is kept; every tail vmemmap page maps it read-only.
# * 5981611d0a00 "mm: hugetlb_vmemmap: cleanup hugetlb_vmemmap related functions" (v6.0) renamed
#   the machinery (hugetlb_vmemmap_optimize, HPageVmemmapOptimized); 11aad2631bf7
#   "mm/hugetlb_vmemmap: remap head page to newly allocated page" (v6.2) copies the head vmemmap
#   page into a freshly allocated page on the folio's node and remaps the head onto it, so on 6.2+ the
#   shared page is a buddy page (counted in nr_memmap_pages) rather than the original memmap frame;
#   the remapped shape (one writable head page, read-only tails onto it) is the same.
# * Folios keep HPG_vmemmap_optimized (bit 4 of enum hugetlb_page_flags, 5.16-6.15) in the head
#   page's ``private`` word (OFFSET(page.private) in VMCOREINFO).
# * Not modelled: the 2026 "mm/hugetlb: Remove fake head pages" series, where all tails of one
#   order share a per-zone tail page instead of the head's page (its tails would be reported as
#   hvo_wrong_alias).

HVO_RESERVED_PAGES_BEFORE_5_18 = 2
HPG_VMEMMAP_OPTIMIZED_BIT = 4
#: x86-64 hstate orders: 2 MiB (PMD) and 1 GiB (PUD) pages.
HSTATE_ORDERS = {9: "2 MiB", 18: "1 GiB"}


def hvo_reserved_pages(version: KernelVersion) -> int:
    """Vmemmap pages HVO keeps per folio (the rest map the last kept page read-only)."""
    return HVO_RESERVED_PAGES_BEFORE_5_18 if not version.at_least(5, 18) else 1


def folio_order_location(version: KernelVersion, offsets: dict[str, int | None]) -> tuple[int, int, str]:
    """Where the order of a large folio is kept, as (byte offset from the head struct page,
    mask, reason). ``offsets`` are VMCOREINFO OFFSET() values.

    Up to 6.3 ``page[1].compound_order`` (a byte; OFFSET(page.compound_order) in VMCOREINFO);
    6.4-6.5 ``folio._folio_order``; since ebc1baf5c9b4 "mm: free up a word in the first tail page"
    (v6.6) the low byte of ``folio->_flags_1``, i.e. of ``page[1].flags`` (folio_order()).
    """
    psz = offsets.get("page_size") or 64
    if (compound_order := offsets.get("page.compound_order")) is not None:
        return psz + compound_order, 0xFF, "page[1].compound_order (OFFSET in VMCOREINFO)"
    if (folio_order := offsets.get("folio._folio_order")) is not None:
        return folio_order, 0xFF, "folio._folio_order (OFFSET in VMCOREINFO)"
    return psz, 0xFF, f"kernel {version} ≥ 6.6: low byte of folio->_flags_1 (page[1].flags)"


# ---------------------------------------------------------------------------------------------
# enum zone_type (include/linux/mmzone.h) and the ZONES field of page->flags
# (include/linux/page-flags-layout.h: ZONES_SHIFT = order_base_2(MAX_NR_ZONES) for up to 8 zones).

ZONE_NAMES: tuple[str, ...] = ("DMA", "DMA32", "Normal", "Movable", "Device")
"""Zones with CONFIG_ZONE_DMA, CONFIG_ZONE_DMA32 and CONFIG_ZONE_DEVICE (every x86-64 distro
config, Debian's included; no HIGHMEM on 64-bit). Not in VMCOREINFO: a kernel built otherwise
needs this table changed."""


def zones_shift(nr_zones: int) -> int:
    """ZONES_SHIFT for MAX_NR_ZONES zones (0 for one zone, 1 for two, 2 up to 4, 3 up to 8)."""
    return 0 if nr_zones <= 1 else (nr_zones - 1).bit_length()
# Early-boot placement rules the simulator replays (vmemdbg/sim), per kernel series.


@dataclass(frozen=True)
class BootRules:
    """The rules of one kernel series that move sparse_init's memblock placements.

    Everything else the simulator replays (memblock top-down search, memory_present, the usage
    arrays next to the pgdat, the sparse buffer, vmemmap_populate_hugepages and its table pages)
    is the same in 6.1 and 6.12; sizes (``sizeof(pg_data_t)``, ``struct page``, ``mem_section``)
    are build facts read from VMCOREINFO / DWARF, not rules.
    """

    series: str
    #: alloc_node_data rounds sizeof(pg_data_t) up to this many bytes before allocating it.
    node_data_round: int
    origin: str
    #: HVO maps the head vmemmap page to a newly allocated copy (else it keeps its own frame and
    #: the tails alias it): mm/hugetlb_vmemmap.c, "mm/hugetlb_vmemmap: remap head page to newly
    #: allocated page" (v6.2). Only the simulated events after boot use it.
    hvo_new_head: bool = False
    #: NUMA init resets memblock nids to NUMA_NO_NODE and numa_cleanup_meminfo clips node blocks to
    #: [memblock_start_of_DRAM(), memblock_end_of_DRAM()) (mm/numa_memblks.c, 6.12); 6.1 resets to
    #: MAX_NUMNODES and clips to [0, max_pfn) (arch/x86/mm/numa.c). Moves no allocation; it decides
    #: which memblock.reserved regions carry a node ([0, 4K) has none in 6.12). From "mm: introduce
    #: numa_memblks" / "x86/numa: move numa_memblks to mm/" of the same series (v6.12).
    numa_memblks: bool = False


BOOT_RULES: dict[str, BootRules] = {
    "6.1": BootRules(
        "6.1", 4096,
        "arch/x86/mm/numa.c alloc_node_data (v6.1): nd_size = roundup(sizeof(pg_data_t), PAGE_SIZE)"),
    "6.12": BootRules(
        "6.12", 64,
        "mm/numa.c alloc_node_data (v6.12: \"arch, mm: pull out allocation of NODE_DATA to generic code\", "
        "patch 09/25 of Mike Rapoport's numa_memblks series, lore <20240723064156.4009477-10-rppt@kernel.org>, "
        "which replaced arch/x86/mm/numa.c's): nd_size = roundup(sizeof(pg_data_t), SMP_CACHE_BYTES); every "
        "later sparse_init allocation (roots array, sparse_index_alloc, usage arrays, vmemmap "
        "table pages) lands below a NODE_DATA that no longer ends on a page boundary", hvo_new_head=True,
        numa_memblks=True),
}
