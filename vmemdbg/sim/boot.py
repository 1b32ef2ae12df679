"""The parts of setup_arch (arch/x86/kernel/setup.c, Linux 6.1) that move sparse_init's placements.

Order replayed:
 1. e820__memory_setup + trim_bios_range (e820.c); max_pfn = e820__end_of_ram_pfn().
 2. early_reserve_memory: kernel image (+brk), [0, 64K), machine reservations, BIOS/EBDA area.
 3. memblock_set_current_limit(ISA_END_ADDRESS); e820__memblock_setup (add RAM, trim to pages).
 4. reserve_real_mode: a 28 KiB trampoline below 1 MiB, then memblock_reserve(0, 1 MiB).
 5. init_mem_mapping (directmap.py), then current_limit = get_max_mapped().
 6. acpi_boot_table_init reservations, other "before_numa" allocations of the machine.
 7. initmem_init → numa_init (numa_cleanup_meminfo, memblock_set_node, alloc_node_data).
 8. "after_numa" allocations, reserve_crashkernel.
 9. paging_init → sparse_init (sparse.py / vmemmap.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

from ..abi import (
    E820_RAM,
    E820_RESERVED,
    E820_RESERVED_KERN,
    E820_SOFT_RESERVED,
    PAGE_SIZE,
)
from .debuginfo import INIT_TOP_PGT_OFFSET
from .directmap import DirectMap
from .machine import SZ_1M, SZ_16M, E820Entry, Machine
from .memblock import (
    ALLOC_ACCESSIBLE,
    MEMBLOCK_HOTPLUG,
    NUMA_NO_NODE,
    PHYS_ADDR_MAX,
    Memblock,
    MemblockPanic,
    round_down,
)
from .pagetable_build import PageTables
from .sparse import Sparse, SparseState
from .vmemmap import SparseBuffer, Vmemmap

#: real_mode_blob_end - real_mode_blob of Debian 6.1 ("28672 bytes ... reserve_real_mode" in the
#: memblock=debug log of a real boot).
REAL_MODE_SIZE = 28672
SZ_64K = 64 << 10
BIOS_BEGIN, BIOS_END = 0xA0000, 0x100000
CRASH_ALIGN = SZ_16M
CRASH_ADDR_LOW_MAX = 1 << 32
CRASH_ADDR_HIGH_MAX = 64 << 40


@dataclass
class BootState:
    """Everything the replay produced up to the end of sparse_init."""

    machine: Machine
    memblock: Memblock
    pagetables: PageTables
    directmap: DirectMap
    e820_table: list[E820Entry]
    e820_firmware: list[E820Entry]
    max_pfn: int
    node_data: dict[int, int]                 # nid → phys of pglist_data
    node_spans: dict[int, tuple[int, int, int]]  # nid → (start_pfn, spanned, present)
    sparse: SparseState
    vmemmap: Vmemmap
    init_top_pgt: int
    messages: list[str] = field(default_factory=list)
    #: pfn ranges hot-added after boot: (start, end, nid) (events.py)
    hotplug: list[tuple[int, int, int]] = field(default_factory=list)
    #: huge pages reserved after boot: (phys, size, nid, HVO'd) (events.py)
    hugetlb: list[tuple[int, int, int, bool]] = field(default_factory=list)
    #: vmemmap pages HVO remapped read-only onto the head's page (their struct pages read as the head's)
    hvo_tails: set[int] = field(default_factory=set)


def e820_sanitize(entries: list[E820Entry]) -> list[E820Entry]:
    """e820__update_table(): sort and merge adjacent entries of equal type."""
    out: list[E820Entry] = []
    for e in sorted(entries, key=lambda x: x.start):
        if e.end <= e.start:
            continue
        if out and out[-1].type == e.type and out[-1].end == e.start:
            out[-1] = E820Entry(out[-1].start, e.end, e.type)
        else:
            out.append(e)
    return out


def e820_range_update(entries: list[E820Entry], start: int, end: int, old: int, new: int,
                      remove: bool = False) -> list[E820Entry]:
    """e820__range_update()/e820__range_remove() for entries of type ``old``."""
    out: list[E820Entry] = []
    for e in entries:
        if e.type != old or e.end <= start or e.start >= end:
            out.append(e)
            continue
        if e.start < start:
            out.append(E820Entry(e.start, start, e.type))
        if not remove:
            out.append(E820Entry(max(e.start, start), min(e.end, end), new))
        if e.end > end:
            out.append(E820Entry(end, e.end, e.type))
    return e820_sanitize(out)


def _numa_cleanup_meminfo(mb: Memblock, blocks: list[tuple[int, int, int]], low: int,
                          high: int) -> list[list[int]]:
    """numa_cleanup_meminfo(): trim to [low, high) and merge same-node blocks ([0, max_pfn) in
    arch/x86/mm/numa.c 6.1, [memblock_start_of_DRAM, memblock_end_of_DRAM) in mm/numa_memblks.c 6.12)."""
    mi: list[list[int]] = []
    for s, e, nid in blocks:
        if not any(max(s, r.base) < min(e, r.end) for r in mb.memory.regions if r.size):
            continue  # moved to numa_reserved_meminfo
        s, e = max(s, low), min(e, high)
        if s < e:
            mi.append([s, e, nid])
    i = 0
    while i < len(mi):
        j = i + 1
        while j < len(mi):
            bi, bj = mi[i], mi[j]
            if bi[2] != bj[2]:
                j += 1
                continue
            start, end = min(bi[0], bj[0]), max(bi[1], bj[1])
            if any(bk[2] != bi[2] and start < bk[1] and end > bk[0] for bk in mi):
                j += 1
                continue
            bi[0], bi[1] = start, end
            del mi[j]
        i += 1
    return mi


def boot(machine: Machine, log: Callable[[str], None] | None = None) -> BootState:
    """Replay setup_arch up to and including sparse_init, step by step (the module docstring)."""
    prof = machine.profile
    mb = Memblock(prof.max_numnodes, log)
    messages: list[str] = []
    firmware, table, max_pfn = e820__memory_setup(machine)
    early_reserve_memory(mb, machine, firmware)
    e820__memblock_setup(mb, table)
    reserve_real_mode(mb, messages)
    pt, dm = init_mem_mapping(mb, machine, max_pfn)
    for r in machine.reservations[1:]:
        if r.phase == "acpi":
            mb.reserve(r.start, r.end - r.start, f"acpi_reserve_initial_tables ({r.name})")
    _extra_allocs(mb, machine, "before_numa")
    node_data, early_pfn_to_nid = initmem_init(mb, machine, max_pfn, messages)
    _extra_allocs(mb, machine, "after_numa")
    if machine.crashkernel:
        _reserve_crashkernel(mb, *machine.crashkernel, messages)
    # paging_init → sparse_init
    buf = SparseBuffer(mb)
    vm = Vmemmap(mb, pt, buf, prof.struct_page_size, machine.pse, early_pfn_to_nid,
                 lambda sec: sec in machine.pmd_alloc_fail)
    sparse = Sparse(machine, mb, vm, buf, node_data, early_pfn_to_nid).sparse_init()
    messages.extend(sparse.messages)
    return BootState(machine, mb, pt, dm, table, firmware, max_pfn, node_data, _node_spans(mb), sparse, vm,
                     pt.top, messages)


def e820__memory_setup(machine: Machine) -> tuple[list[E820Entry], list[E820Entry], int]:
    """Step 1: the firmware table sanitized, the kernel's table (first page reserved, the BIOS
    hole removed: setup_arch, trim_bios_range) and max_pfn (e820__end_of_ram_pfn)."""
    firmware = e820_sanitize(list(machine.e820))
    table = e820_range_update(firmware, 0, PAGE_SIZE, E820_RAM, E820_RESERVED)
    table = e820_range_update(table, BIOS_BEGIN, BIOS_END, E820_RAM, 0, remove=True)
    max_arch_pfn = 1 << (machine.max_physmem_bits - 12)
    max_pfn = min(max(e.end >> 12 for e in table if e.type == E820_RAM), max_arch_pfn)
    return firmware, table, max_pfn


def early_reserve_memory(mb: Memblock, machine: Machine, firmware: list[E820Entry]) -> None:
    """Step 2 (arch/x86/kernel/setup.c): the kernel image with its brk, [0, 64K), the machine's
    early reservations, and reserve_bios_regions (arch/x86/kernel/ebda.c)."""
    image = machine.reservations[0]
    mb.reserve(image.start, image.end - image.start, "setup_arch")
    mb.reserve(0, SZ_64K, "early_reserve_memory")
    for r in machine.reservations[1:]:
        if r.phase == "early":
            mb.reserve(r.start, r.end - r.start, f"early_reserve_memory ({r.name})")
    low_ram = next((e for e in firmware if e.start == 0 and e.type == E820_RAM), None)
    bios_start = round_down(min(low_ram.end if low_ram else BIOS_BEGIN, BIOS_BEGIN), PAGE_SIZE)
    bios_start = max(bios_start, SZ_64K)
    mb.reserve(bios_start, SZ_1M - bios_start, "reserve_bios_regions")


def e820__memblock_setup(mb: Memblock, table: list[E820Entry]) -> None:
    """Step 3 (arch/x86/kernel/e820.c), after memblock_set_current_limit(ISA_END_ADDRESS): RAM
    added, soft-reserved ranges reserved, memory trimmed to whole pages."""
    mb.current_limit = SZ_1M
    mb.can_resize = True
    for ent in table:
        if ent.type == E820_SOFT_RESERVED:
            mb.reserve(ent.start, ent.end - ent.start, "e820__memblock_setup")
        if ent.type in (E820_RAM, E820_RESERVED_KERN):
            mb.add(ent.start, ent.end - ent.start, "e820__memblock_setup")
    mb.trim_memory(PAGE_SIZE)


def reserve_real_mode(mb: Memblock, messages: list[str]) -> None:
    """Step 4 (arch/x86/realmode/init.c): the trampoline below 1 MiB, then all of [0, 1 MiB)
    reserved (setup_arch)."""
    if mb.phys_alloc_range(REAL_MODE_SIZE, PAGE_SIZE, 0, SZ_1M, "reserve_real_mode",
                           what="real mode trampoline") is None:
        messages.append("Cannot allocate real mode trampoline")
    mb.reserve(0, SZ_1M, "setup_arch")


def init_mem_mapping(mb: Memblock, machine: Machine, max_pfn: int) -> tuple[PageTables, DirectMap]:
    """Step 5 (arch/x86/mm/init.c): the direct map built into init_top_pgt (directmap.py), then
    memblock's limit raised to what is mapped (get_max_mapped)."""
    prof, lay = machine.profile, machine.layout
    top_pgt = lay.image_phys + INIT_TOP_PGT_OFFSET  # first object of .data (debuginfo.LAYOUT)
    pt = PageTables(machine.paging_levels, top_pgt)
    brk_start = machine.reservations[0].end - prof.init_pgt_buf_pages * PAGE_SIZE
    dm = DirectMap(mb, pt, lay.page_offset_base, brk_start, prof.init_pgt_buf_pages, machine.gbpages,
                   machine.pse)
    dm.init_mem_mapping(max_pfn, lay.kaslr)
    mb.current_limit = dm.max_pfn_mapped << 12
    return pt, dm


def initmem_init(mb: Memblock, machine: Machine, max_pfn: int,
                 messages: list[str]) -> tuple[dict[int, int], Callable[[int], int]]:
    """Step 7 (arch/x86/mm/numa_64.c → numa.c numa_init): node ids on memblock
    (numa_cleanup_meminfo, memblock_set_node, hotplug flags), then alloc_node_data per node.
    Returns the node_data placements and early_pfn_to_nid."""
    prof = machine.profile
    rules = prof.rules
    reset = NUMA_NO_NODE if rules.numa_memblks else prof.max_numnodes
    mb.set_node(0, PHYS_ADDR_MAX, mb.memory, reset)
    mb.set_node(0, PHYS_ADDR_MAX, mb.reserved, reset)
    mb.setclr_flag(0, PHYS_ADDR_MAX, False, MEMBLOCK_HOTPLUG)
    for n in machine.nodes:
        if n.hotplug:
            for s, e in n.ranges:
                mb.setclr_flag(s, e - s, True, MEMBLOCK_HOTPLUG)
    mb.bottom_up = False
    mem = [r for r in mb.memory.regions if r.size]
    low, high = (mem[0].base, mem[-1].base + mem[-1].size) if rules.numa_memblks else (0, max_pfn << 12)
    mi = _numa_cleanup_meminfo(mb, [(s, e, n.nid) for n in machine.nodes for s, e in n.ranges], low, high)
    for s, e, nid in mi:
        mb.set_node(s, e - s, mb.memory, nid)
    for s, e, nid in mi:
        mb.set_node(s, e - s, mb.reserved, nid)
    kernel_nodes = {r.nid for r in mb.reserved.regions if r.size and r.nid not in (prof.max_numnodes, NUMA_NO_NODE)}
    for s, e, nid in mi:
        if nid in kernel_nodes:
            mb.setclr_flag(s, e - s, False, MEMBLOCK_HOTPLUG)
    node_data: dict[int, int] = {}

    def early_pfn_to_nid(pfn: int) -> int:
        nid = mb.search_pfn_nid(pfn)
        return min(node_data) if nid == NUMA_NO_NODE else nid

    for nid in sorted({b[2] for b in mi}):
        nd = mb.phys_alloc_try_nid(prof.nd_size, 64, nid, "alloc_node_data", what=f"NODE_DATA({nid})")
        if nd is None:
            messages.append(f"Cannot find {prof.nd_size} bytes in any node (initial node: {nid})")
            continue
        mb.dbg(f"NODE_DATA({nid}) allocated [mem {nd:#010x}-{nd + prof.nd_size - 1:#010x}]")
        node_data[nid] = nd
        tnid = early_pfn_to_nid(nd >> 12)
        if tnid != nid:
            mb.dbg(f"    NODE_DATA({nid}) on node {tnid}")
    return node_data, early_pfn_to_nid


def _node_spans(mb: Memblock) -> dict[int, tuple[int, int, int]]:
    """nid → (node_start_pfn, node_spanned_pages, node_present_pages) from memblock.memory, as
    free_area_init sets them (mm/page_alloc.c: calculate_node_totalpages)."""
    spans: dict[int, tuple[int, int, int]] = {}
    for s, e, nid in mb.mem_pfn_ranges():
        a, b, c = spans.get(nid, (s, 0, 0))
        start = min(a, s)
        end = max(a + b, e)
        spans[nid] = (start, end - start, c + e - s)
    return spans


def _extra_allocs(mb: Memblock, machine: Machine, phase: str) -> None:
    """Allocations the machine lists for boot code the simulator does not model itself."""
    for a in machine.allocs:
        if a.phase != phase:
            continue
        if a.kind == "phys_range":
            r = mb.phys_alloc_range(a.size, a.align, a.min_addr, a.max_addr, a.caller, what=a.caller)
        else:
            r = mb.alloc_try_nid(a.size, a.align, a.min_addr, a.max_addr or ALLOC_ACCESSIBLE, a.nid,
                                 a.caller, what=a.caller)
        if r is None:
            raise MemblockPanic(f"{a.caller}: failed to allocate {a.size} bytes")


def _reserve_crashkernel(mb: Memblock, size: int, high: bool, messages: list[str]) -> None:
    """reserve_crashkernel() without a fixed base (arch/x86/kernel/setup.c, 6.1)."""
    base = None
    if not high:
        base = mb.phys_alloc_range(size, CRASH_ALIGN, CRASH_ALIGN, CRASH_ADDR_LOW_MAX,
                                   "reserve_crashkernel", what="crashkernel")
    if base is None:
        base = mb.phys_alloc_range(size, CRASH_ALIGN, CRASH_ALIGN, CRASH_ADDR_HIGH_MAX,
                                   "reserve_crashkernel", what="crashkernel")
    if base is None:
        messages.append("crashkernel reservation failed - No suitable area found.")
        return
    if base >= CRASH_ADDR_LOW_MAX:
        low = 256 << 20  # max(swiotlb default + 8 MiB, 256 MiB)
        if mb.phys_alloc_range(low, CRASH_ALIGN, 0, CRASH_ADDR_LOW_MAX, "reserve_crashkernel_low",
                               what="crashkernel low") is None:
            mb.phys_free(base, size, "reserve_crashkernel")
            messages.append("crashkernel low reservation failed.")
            return
    messages.append(f"Reserving {size >> 20}MB of memory at {base >> 20}MB for crashkernel")


__all__ = ["BootState", "boot", "MemblockPanic"]
