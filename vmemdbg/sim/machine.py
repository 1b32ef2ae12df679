"""Machine descriptions for the sparse_init simulator.

A machine is read from a TOML file (see docs/machine-format.md).  It describes what the firmware
hands to the kernel (e820 map, SRAT NUMA ranges), what the boot loader and early boot reserve
(kernel image, initrd, ACPI tables ...), which kernel build runs (the *profile*: struct sizes and
layouts that change the placement of sparse_init's allocations) and the runtime virtual layout
(page_offset_base / vmalloc_base / vmemmap_base, KERNELOFFSET, phys_base).

This module is the model only; :mod:`vmemdbg.sim.machine_format` reads and validates the TOML
(every validation failure raises :class:`MachineError` whose message starts with the name of the
offending field, e.g. ``node[1].ranges[0]: range 0x... is not page aligned``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..abi import (
    E820_ACPI,
    E820_NVS,
    E820_PMEM,
    E820_PRAM,
    E820_RAM,
    E820_RESERVED,
    E820_RESERVED_KERN,
    E820_SOFT_RESERVED,
    E820_UNUSABLE,
    MAX_PHYSMEM_BITS,
    PAGE_SHIFT,
    PAGE_SIZE,
    PHYSICAL_START,
    PMD_SIZE,
    SECTION_SIZE_BITS,
)
from ..errors import VmemdbgError
from ..versions import BOOT_RULES, BootRules

SZ_1M = 1 << 20
SZ_16M = 16 << 20

#: e820 type names as printed by the kernel (arch/x86/kernel/e820.c:e820_print_type, 6.1).
E820_TYPES: dict[str, int] = {
    "usable": E820_RAM,
    "reserved": E820_RESERVED,
    "ACPI data": E820_ACPI,
    "ACPI NVS": E820_NVS,
    "unusable": E820_UNUSABLE,
    "persistent (type 7)": E820_PMEM,
    "persistent (type 12)": E820_PRAM,
    "soft reserved": E820_SOFT_RESERVED,
    "reserved kernel": E820_RESERVED_KERN,
}
class MachineError(VmemdbgError, ValueError):
    """A machine description is malformed; the message starts with the offending field name."""


@dataclass(frozen=True)
class Profile:
    """Kernel build facts that change sparse_init's placements or the dump's layout.

    Defaults are Debian 6.1.0 amd64 (6.1.192; docs/sparse-model.md#constants, docs/worked-example.md).
    """

    #: OSRELEASE written to VMCOREINFO (synthetic so drgn never matches a distro quirk).
    release: str = "6.1.0-sim"
    #: Kernel series whose placement rules are replayed (vmemdbg.versions.BOOT_RULES: 6.1, 6.12).
    version: str = "6.1"
    section_size_bits: int = SECTION_SIZE_BITS
    struct_page_size: int = 64
    #: sizeof(struct mem_section): 32 with CONFIG_PAGE_EXTENSION, 16 without.
    mem_section_size: int = 32
    #: struct mem_section_usage starts with a 16-byte rcu_head (CVE-2023-52489 backport).
    usage_rcu_head: bool = True
    #: CONFIG_ZONE_DEVICE: gives the TAINT_ZONE_DEVICE section flag (6.0+ enum layout).
    zone_device: bool = True
    nodes_shift: int = 10
    #: sizeof(pg_data_t) and the VMCOREINFO offsets of its fields (Debian 6.1, read from a real dump's VMCOREINFO).
    pglist_data_size: int = 174208
    off_node_start_pfn: int = 171560
    off_node_present_pages: int = 171568
    off_node_spanned_pages: int = 171576
    off_node_id: int = 171584
    off_nr_zones: int = 171552
    #: Number of zones (MAX_NR_ZONES): DMA, DMA32, NORMAL, MOVABLE, DEVICE.
    max_nr_zones: int = 5
    #: __NR_PAGEFLAGS of the build (6.1 Debian: 25).
    nr_pageflags: int = 25
    #: INIT_PGT_BUF_SIZE / PAGE_SIZE (arch/x86/mm/init.c: 4*4 with X86_5LEVEL and RANDOMIZE_MEMORY).
    init_pgt_buf_pages: int = 16
    #: CONFIG_MEMORY_HOTREMOVE: usage arrays go next to the pgdat (sparse.c).
    memory_hotremove: bool = True

    @property
    def nr_section_bits(self) -> int:
        """PFN_SECTION_SHIFT."""
        return self.section_size_bits - PAGE_SHIFT

    @property
    def pages_per_section(self) -> int:
        """PAGES_PER_SECTION."""
        return 1 << self.nr_section_bits

    @property
    def sections_per_root(self) -> int:
        """SECTIONS_PER_ROOT = PAGE_SIZE / sizeof(struct mem_section)."""
        return PAGE_SIZE // self.mem_section_size

    @property
    def max_numnodes(self) -> int:
        """MAX_NUMNODES = 1 << NODES_SHIFT."""
        return 1 << self.nodes_shift

    @property
    def section_map_last_bit(self) -> int:
        """SECTION_MAP_LAST_BIT index in the 6.0+ enum layout (include/linux/mmzone.h)."""
        return 5 if self.zone_device else 4

    @property
    def section_nid_shift(self) -> int:
        """SECTION_NID_SHIFT = SECTION_MAP_LAST_BIT (6.0+)."""
        return self.section_map_last_bit

    @property
    def section_map_mask(self) -> int:
        """SECTION_MAP_MASK as an unsigned 64-bit value."""
        return ~((1 << self.section_map_last_bit) - 1) & 0xFFFFFFFFFFFFFFFF

    @property
    def usage_struct_size(self) -> int:
        """sizeof(struct mem_section_usage)."""
        return 24 if self.usage_rcu_head else 8

    @property
    def usemap_size(self) -> int:
        """usemap_size(): SECTION_BLOCKFLAGS_BITS rounded to longs, in bytes (mm/sparse.c)."""
        bits = (1 << (self.nr_section_bits - 9)) * 4
        return (bits + 63) // 64 * 8

    @property
    def usage_size(self) -> int:
        """mem_section_usage_size() (mm/sparse.c)."""
        return self.usage_struct_size + self.usemap_size

    @property
    def section_map_size(self) -> int:
        """section_map_size() for VMEMMAP: ALIGN(sizeof(page) * PAGES_PER_SECTION, PMD_SIZE)."""
        return -(-self.struct_page_size * self.pages_per_section // PMD_SIZE) * PMD_SIZE

    @property
    def rules(self) -> BootRules:
        """The placement rules of this profile's kernel series (vmemdbg/versions.py)."""
        return BOOT_RULES[self.version]

    @property
    def nd_size(self) -> int:
        """alloc_node_data size: sizeof(pg_data_t) rounded per the series (PAGE_SIZE in 6.1,
        SMP_CACHE_BYTES in 6.12; BootRules.node_data_round)."""
        r = self.rules.node_data_round
        return -(-self.pglist_data_size // r) * r


#: Named kernel profiles; a machine may pick one and override single fields.
PROFILES: dict[str, Profile] = {
    "debian-6.1": Profile(),
    # Debian 6.1 cloud-amd64: no CONFIG_PAGE_EXTENSION (16-byte mem_section) [truth.json of
    # the 1g-nokaslr capture: SIZE(mem_section)=16, usage 56].
    "debian-6.1-cloud": Profile(mem_section_size=16),
    # Debian 6.12.107+deb12-cloud-amd64 (bookworm-backports kernel): VMCOREINFO of the real boots
    # (fixtures/real/6.12/*/truth.json): SIZE(pglist_data)=174464, SIZE(mem_section)=16, the
    # pglist_data offsets below, usage 56 bytes; NODES_SHIFT 10 (node_data has 1024 entries).
    "debian-6.12-cloud": Profile(release="6.12.0-sim", version="6.12", mem_section_size=16,
                                 pglist_data_size=174464),
}


@dataclass(frozen=True)
class E820Entry:
    """One firmware e820 entry, [start, end) with its numeric type."""

    start: int
    end: int
    type: int


@dataclass(frozen=True)
class Node:
    """A NUMA node: SRAT memory-affinity ranges [start, end)."""

    nid: int
    ranges: tuple[tuple[int, int], ...]
    hotplug: bool = False


@dataclass(frozen=True)
class Reservation:
    """An early memblock_reserve of [start, end).

    phase "early": early_reserve_memory / reserve_brk (before e820__memblock_setup);
    phase "acpi": acpi_boot_table_init (after init_mem_mapping, before NUMA init).
    """

    start: int
    end: int
    name: str
    phase: str = "early"


@dataclass(frozen=True)
class ExtraAlloc:
    """An extra memblock allocation made by boot code the simulator does not model itself.

    kind "try_nid": memblock_alloc_try_nid(size, align, min, max, nid);
    kind "phys_range": memblock_phys_alloc_range(size, align, min, max).
    phase "before_numa" (after init_mem_mapping) or "after_numa" (before paging_init).
    """

    size: int
    align: int
    nid: int
    min_addr: int
    max_addr: int
    caller: str
    kind: str = "try_nid"
    phase: str = "after_numa"


@dataclass(frozen=True)
class Event:
    """An event after boot (vmemdbg/sim/events.py), applied in file order.

    kind "hot-add": [start, end) whole sections on ``node``, memmap from the range itself when
    ``memmap_on_memory``, onlined when ``online``; "online"/"offline": [start, end);
    "hugetlb": ``pages`` huge pages of ``size`` bytes on ``node``, HVO'd when ``free_vmemmap``.
    """

    kind: str
    start: int = 0
    end: int = 0
    node: int = 0
    memmap_on_memory: bool = False
    online: bool = True
    size: int = 0
    pages: int = 0
    free_vmemmap: bool = True


@dataclass(frozen=True)
class Layout:
    """Runtime virtual layout and kernel-image placement."""

    page_offset_base: int
    vmalloc_base: int
    vmemmap_base: int
    kaslr: bool
    kernel_offset: int
    image_phys: int
    image_size: int

    @property
    def phys_base(self) -> int:
        """phys_base such that __pa_symbol(_text) == image_phys (arch/x86/kernel/head64.c)."""
        return self.image_phys - PHYSICAL_START - self.kernel_offset


@dataclass(frozen=True)
class Machine:
    """A complete machine description."""

    name: str
    profile: Profile
    paging_levels: int
    gbpages: bool
    pse: bool
    e820: tuple[E820Entry, ...]
    nodes: tuple[Node, ...]
    reservations: tuple[Reservation, ...]
    allocs: tuple[ExtraAlloc, ...]
    layout: Layout
    crashkernel: tuple[int, bool] | None = None
    pmd_alloc_fail: frozenset[int] = frozenset()
    description: str = ""
    events: tuple[Event, ...] = ()

    @property
    def max_physmem_bits(self) -> int:
        """MAX_PHYSMEM_BITS: 52 with 5-level paging, 46 otherwise."""
        return MAX_PHYSMEM_BITS[self.paging_levels]

    @property
    def nr_mem_sections(self) -> int:
        """NR_MEM_SECTIONS."""
        return 1 << (self.max_physmem_bits - self.profile.section_size_bits)

    @property
    def nr_section_roots(self) -> int:
        """NR_SECTION_ROOTS."""
        return self.nr_mem_sections // self.profile.sections_per_root


__all__ = ["Machine", "MachineError", "Profile", "PROFILES", "E820Entry", "E820_TYPES", "Event", "Node",
           "Reservation", "ExtraAlloc", "Layout"]
