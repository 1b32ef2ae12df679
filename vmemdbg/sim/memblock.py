"""Replay of the early memory allocator, mm/memblock.c (Linux 6.1).

The region arrays behave like the kernel's: an empty type holds one zero "dummy" entry, adjacent
regions with equal nid and flags merge (memblock_merge_regions), memblock_set_node splits regions
(memblock_isolate_range), and the arrays double (memblock_double_array) once resizing is allowed
and an insertion would overflow ``max`` (128 initially, INIT_MEMBLOCK_REGIONS).

Allocation follows memblock_alloc_internal → memblock_alloc_range_nid →
memblock_find_in_range_node → __memblock_find_range_top_down (or bottom-up), including the
current_limit clamp, the NUMA_NO_NODE fallback (unless exact_nid) and the retry with min_addr=0.
Every API call is logged the way ``memblock=debug`` prints it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator

from ..abi import PAGE_SIZE

NUMA_NO_NODE = -1
PHYS_ADDR_MAX = (1 << 64) - 1
#: MEMBLOCK_ALLOC_ACCESSIBLE / MEMBLOCK_ALLOC_ANYWHERE (include/linux/memblock.h).
ALLOC_ACCESSIBLE = 0
ALLOC_ANYWHERE = PHYS_ADDR_MAX
INIT_MEMBLOCK_REGIONS = 128
REGION_SIZE = 24  # sizeof(struct memblock_region) with CONFIG_NUMA

MEMBLOCK_NONE = 0
MEMBLOCK_HOTPLUG = 0x1
MEMBLOCK_MIRROR = 0x2
MEMBLOCK_NOMAP = 0x4
MEMBLOCK_DRIVER_MANAGED = 0x8


class MemblockPanic(RuntimeError):
    """The replayed kernel would panic (e.g. a mandatory allocation failed)."""


@dataclass
class Region:
    """struct memblock_region."""

    base: int
    size: int
    flags: int
    nid: int

    @property
    def end(self) -> int:
        """base + size."""
        return self.base + self.size


@dataclass
class MemblockType:
    """struct memblock_type; ``array_phys`` is None while ``regions`` is the static init array."""

    name: str
    max_nid: int
    regions: list[Region] = field(default_factory=list)
    max: int = INIT_MEMBLOCK_REGIONS
    total_size: int = 0
    array_phys: int | None = None

    def __post_init__(self) -> None:
        if not self.regions:
            self.regions.append(Region(0, 0, 0, self.max_nid))

    @property
    def cnt(self) -> int:
        """cnt (≥ 1: an empty type holds one zero entry)."""
        return len(self.regions)


@dataclass(slots=True)
class Allocation:
    """One memblock allocation API call and its outcome (what memblock=debug shows)."""

    fn: str
    size: int
    align: int
    nid: int
    min_addr: int
    max_addr: int
    caller: str
    result: int | None
    exact_nid: bool = False
    what: str = ""

    @property
    def end(self) -> int | None:
        """End (exclusive) of the allocated block, or None if it failed."""
        return None if self.result is None else self.result + self.size


def _end(r: Region) -> int:
    return r.base + r.size


def _base(r: Region) -> int:
    return r.base


def round_down(x: int, a: int) -> int:
    """round_down for power-of-two a."""
    return x & ~(a - 1)


def round_up(x: int, a: int) -> int:
    """round_up for power-of-two a."""
    return (x + a - 1) & ~(a - 1)


class Memblock:
    """The global ``struct memblock`` plus the static state of mm/memblock.c."""

    def __init__(self, max_numnodes: int, log: Callable[[str], None] | None = None) -> None:
        self.max_numnodes = max_numnodes
        self.memory = MemblockType("memory", max_numnodes)
        self.reserved = MemblockType("reserved", max_numnodes)
        self.bottom_up = False
        self.current_limit = ALLOC_ANYWHERE
        self.can_resize = False
        self.movable_node = False
        self.allocations: list[Allocation] = []
        self.lines: list[str] = []
        self._log = log

    # -- logging ------------------------------------------------------------------------------
    def dbg(self, line: str) -> None:
        """memblock_dbg(): record a memblock=debug line."""
        self.lines.append(line)
        if self._log:
            self._log(line)

    # -- region array primitives (mm/memblock.c) ---------------------------------------------------
    def _insert_region(self, t: MemblockType, idx: int, base: int, size: int, nid: int, flags: int) -> None:
        """memblock_insert_region()."""
        assert t.cnt < t.max
        t.regions.insert(idx, Region(base, size, flags, nid))
        t.total_size += size

    def _remove_region(self, t: MemblockType, r: int) -> None:
        """memblock_remove_region()."""
        t.total_size -= t.regions[r].size
        del t.regions[r]
        if not t.regions:
            t.regions.append(Region(0, 0, 0, self.max_numnodes))

    def _merge_regions(self, t: MemblockType, lo: int = 0, hi: int | None = None) -> None:
        """memblock_merge_regions().

        The kernel rescans the whole array; every other operation leaves it fully merged, so only
        the pairs around the changed indices [lo, hi) can merge and only those are rescanned.
        """
        regs = t.regions
        i = max(lo - 1, 0)
        stop = len(regs) - 1 if hi is None else min(hi + 1, len(regs) - 1)
        while i < stop:
            this, nxt = regs[i], regs[i + 1]
            if this.base + this.size != nxt.base or this.nid != nxt.nid or this.flags != nxt.flags:
                assert this.base + this.size <= nxt.base
                i += 1
                continue
            this.size += nxt.size
            del regs[i + 1]
            stop -= 1

    def _double_array(self, t: MemblockType, new_area_start: int, new_area_size: int) -> int:
        """memblock_double_array(): 0 on success, -1 on failure (slab is never up here)."""
        if not self.can_resize:
            return -1
        old_size = t.max * REGION_SIZE
        new_size = old_size << 1
        old_alloc_size = round_up(old_size, PAGE_SIZE)
        new_alloc_size = round_up(new_size, PAGE_SIZE)
        if t is not self.reserved:
            new_area_start = new_area_size = 0
        addr = self.find_in_range(new_area_start + new_area_size, self.current_limit,
                                  new_alloc_size, PAGE_SIZE)
        if not addr and new_area_size:
            addr = self.find_in_range(0, min(new_area_start, self.current_limit), new_alloc_size,
                                      PAGE_SIZE)
        if not addr:
            self.dbg(f"memblock: Failed to double {t.name} array from {t.max} to {t.max * 2} entries !")
            return -1
        self.dbg(f"memblock: {t.name} is doubled to {t.max * 2} at [{addr:#018x}-{addr + new_size - 1:#018x}]")
        old_phys = t.array_phys
        t.array_phys = addr
        t.max <<= 1
        if old_phys is not None:
            self.phys_free(old_phys, old_alloc_size, "memblock_double_array")
        if self.reserve(addr, new_alloc_size, "memblock_double_array"):
            raise MemblockPanic("memblock_double_array: reserving the new array failed")
        return 0

    def _add_range(self, t: MemblockType, base: int, size: int, nid: int, flags: int) -> int:
        """memblock_add_range()."""
        size = min(size, PHYS_ADDR_MAX - base)
        end = base + size
        obase = base
        if not size:
            return 0
        if t.regions[0].size == 0:
            r = t.regions[0]
            r.base, r.size, r.flags, r.nid = base, size, flags, nid
            t.total_size = size
            return 0
        insert = t.cnt * 2 + 1 < t.max
        while True:
            base = obase
            nr_new = 0
            first = None
            regs = t.regions
            # Regions ending at or below base cannot overlap: start the scan there.
            idx = max(0, bisect.bisect_right(regs, base, key=_end) - 1)
            while idx < len(regs):
                rgn = regs[idx]
                rbase, rend = rgn.base, rgn.end
                if rbase >= end:
                    break
                if rend <= base:
                    idx += 1
                    continue
                if rbase > base:
                    nr_new += 1
                    if insert:
                        self._insert_region(t, idx, base, rbase - base, nid, flags)
                        first = idx if first is None else first
                        idx += 1
                base = min(rend, end)
                idx += 1
            if base < end:
                nr_new += 1
                if insert:
                    self._insert_region(t, idx, base, end - base, nid, flags)
                    first = idx if first is None else first
                    idx += 1
            if not nr_new:
                return 0
            if not insert:
                while t.cnt + nr_new > t.max:
                    if self._double_array(t, obase, size) < 0:
                        return -12
                insert = True
                continue
            self._merge_regions(t, first or 0, idx)
            return 0

    def _isolate_range(self, t: MemblockType, base: int, size: int) -> tuple[int, int] | None:
        """memblock_isolate_range(): returns (start_rgn, end_rgn) or None on -ENOMEM."""
        size = min(size, PHYS_ADDR_MAX - base)
        end = base + size
        start_rgn = end_rgn = 0
        if not size:
            return 0, 0
        while t.cnt + 2 > t.max:
            if self._double_array(t, base, size) < 0:
                return None
        regs = t.regions
        idx = 0
        while idx < len(regs):
            rgn = regs[idx]
            rbase, rend = rgn.base, rgn.end
            if rbase >= end:
                break
            if rend <= base:
                idx += 1
                continue
            if rbase < base:
                rgn.base = base
                rgn.size -= base - rbase
                t.total_size -= base - rbase
                self._insert_region(t, idx, rbase, base - rbase, rgn.nid, rgn.flags)
            elif rend > end:
                rgn.base = end
                rgn.size -= end - rbase
                t.total_size -= end - rbase
                self._insert_region(t, idx, rbase, end - rbase, rgn.nid, rgn.flags)
                idx -= 1
            else:
                if not end_rgn:
                    start_rgn = idx
                end_rgn = idx + 1
            idx += 1
        return start_rgn, end_rgn

    # -- public API -----------------------------------------------------------------------------
    def add(self, base: int, size: int, caller: str) -> int:
        """memblock_add(): memory with nid MAX_NUMNODES."""
        self.dbg(f"memblock_add: [{base:#018x}-{base + size - 1:#018x}] {caller}")
        return self._add_range(self.memory, base, size, self.max_numnodes, 0)

    def reserve(self, base: int, size: int, caller: str) -> int:
        """memblock_reserve(): reserved with nid MAX_NUMNODES."""
        self.dbg(f"memblock_reserve: [{base:#018x}-{base + size - 1:#018x}] {caller}")
        return self._add_range(self.reserved, base, size, self.max_numnodes, 0)

    def phys_free(self, base: int, size: int, caller: str) -> int:
        """memblock_phys_free(): remove [base, base+size) from reserved."""
        self.dbg(f"memblock_phys_free: [{base:#018x}-{base + size - 1:#018x}] {caller}")
        iso = self._isolate_range(self.reserved, base, size)
        if iso is None:
            return -12
        for i in range(iso[1] - 1, iso[0] - 1, -1):
            self._remove_region(self.reserved, i)
        return 0

    def set_node(self, base: int, size: int, t: MemblockType, nid: int) -> int:
        """memblock_set_node()."""
        iso = self._isolate_range(t, base, size)
        if iso is None:
            return -12
        for i in range(*iso):
            t.regions[i].nid = nid
        self._merge_regions(t)
        return 0

    def setclr_flag(self, base: int, size: int, set_: bool, flag: int) -> int:
        """memblock_setclr_flag() on memory (mark/clear hotplug, nomap ...)."""
        iso = self._isolate_range(self.memory, base, size)
        if iso is None:
            return -12
        for i in range(*iso):
            r = self.memory.regions[i]
            r.flags = (r.flags | flag) if set_ else (r.flags & ~flag)
        self._merge_regions(self.memory)
        return 0

    def trim_memory(self, align: int) -> None:
        """memblock_trim_memory()."""
        i = 0
        regs = self.memory.regions
        while i < len(regs):
            r = regs[i]
            start, end = round_up(r.base, align), round_down(r.end, align)
            if start == r.base and end == r.end:
                i += 1
                continue
            if start < end:  # like the kernel, total_size keeps the untrimmed bytes
                r.base, r.size = start, end - start
                i += 1
            else:
                self._remove_region(self.memory, i)

    def is_region_memory(self, base: int, size: int) -> bool:
        """memblock_is_region_memory(): [base, base+size) lies inside one memory region."""
        regs = self.memory.regions
        i = bisect.bisect_right(regs, base, key=_base) - 1
        if i < 0 or not regs[i].base <= base < regs[i].end:
            return False
        return regs[i].end >= base + size

    def search_pfn_nid(self, pfn: int) -> int:
        """memblock_search_pfn_nid(): nid of the memory region holding pfn, or NUMA_NO_NODE."""
        pa = pfn << 12
        regs = self.memory.regions
        i = bisect.bisect_right(regs, pa, key=_base) - 1
        if i < 0 or not regs[i].base <= pa < regs[i].end:
            return NUMA_NO_NODE
        return regs[i].nid

    def mem_pfn_ranges(self, nid: int | None = None) -> Iterator[tuple[int, int, int]]:
        """for_each_mem_pfn_range(): (start_pfn, end_pfn, nid) of memory regions with whole pages."""
        for r in self.memory.regions:
            s, e = (r.base + PAGE_SIZE - 1) >> 12, r.end >> 12
            if s >= e:
                continue
            if nid is None or nid == r.nid:
                yield s, e, r.nid

    # -- free range search ------------------------------------------------------------------------
    def _skip(self, m: Region, nid: int, flags: int) -> bool:
        """should_skip_region() for memory regions."""
        if nid != NUMA_NO_NODE and nid != m.nid:
            return True
        if self.movable_node and m.flags & MEMBLOCK_HOTPLUG and not flags & MEMBLOCK_HOTPLUG:
            return True
        if flags & MEMBLOCK_MIRROR and not m.flags & MEMBLOCK_MIRROR:
            return True
        if not flags & MEMBLOCK_NOMAP and m.flags & MEMBLOCK_NOMAP:
            return True
        if not flags & MEMBLOCK_DRIVER_MANAGED and m.flags & MEMBLOCK_DRIVER_MANAGED:  # noqa: SIM103
            return True  # (the kernel's should_skip_region: one test per line)
        return False

    def free_ranges(self, nid: int, flags: int = 0, reverse: bool = True) -> Iterator[tuple[int, int]]:
        """for_each_free_mem_range[_reverse](): memory minus reserved, filtered by nid/flags."""
        res = self.reserved.regions
        n = len(res)
        mems = reversed(self.memory.regions) if reverse else iter(self.memory.regions)
        for m in mems:
            if self._skip(m, nid, flags):
                continue
            ms, me = m.base, m.base + m.size
            # gap j lies between reserved j-1 and j: [end of j-1 (or 0), base of j (or MAX))
            lo = bisect.bisect_right(res, ms, key=_end)
            hi = bisect.bisect_left(res, me, key=_base)
            for j in (range(hi, lo - 1, -1) if reverse else range(lo, hi + 1)):
                gs = res[j - 1].base + res[j - 1].size if j > 0 else 0
                ge = res[j].base if j < n else PHYS_ADDR_MAX
                s, e = max(ms, gs), min(me, ge)
                if s < e:
                    yield s, e

    def find_in_range_node(self, size: int, align: int, start: int, end: int, nid: int,
                           flags: int = 0) -> int:
        """memblock_find_in_range_node(): 0 if nothing fits."""
        if end in (ALLOC_ACCESSIBLE, 1):
            end = self.current_limit
        start = max(start, PAGE_SIZE)
        end = max(start, end)
        if self.bottom_up:
            for ts, te in self.free_ranges(nid, flags, reverse=False):
                ts, te = min(max(ts, start), end), min(max(te, start), end)
                cand = round_up(ts, align)
                if cand < te and te - cand >= size:
                    return cand
            return 0
        for ts, te in self.free_ranges(nid, flags, reverse=True):
            ts, te = min(max(ts, start), end), min(max(te, start), end)
            if te < size:
                continue
            cand = round_down(te - size, align)
            if cand >= ts:
                return cand
        return 0

    def find_in_range(self, start: int, end: int, size: int, align: int) -> int:
        """memblock_find_in_range(): any node."""
        return self.find_in_range_node(size, align, start, end, NUMA_NO_NODE)

    def alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                        exact_nid: bool) -> int:
        """memblock_alloc_range_nid(): physical address or 0."""
        if nid == self.max_numnodes:
            nid = NUMA_NO_NODE
        found = self.find_in_range_node(size, align, start, end, nid)
        if found and not self.reserve(found, size, "memblock_alloc_range_nid"):
            return found
        if nid != NUMA_NO_NODE and not exact_nid:
            found = self.find_in_range_node(size, align, start, end, NUMA_NO_NODE)
            if found and not self.reserve(found, size, "memblock_alloc_range_nid"):
                return found
        return 0

    def _record(self, fn: str, size: int, align: int, nid: int, min_addr: int, max_addr: int,
                caller: str, result: int, exact: bool, what: str) -> int | None:
        self.allocations.append(Allocation(fn, size, align, nid, min_addr, max_addr, caller,
                                           result or None, exact, what))
        return result or None

    def _alloc_internal(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                        exact_nid: bool) -> int:
        """memblock_alloc_internal() (slab never available during the replay)."""
        if max_addr > self.current_limit:
            max_addr = self.current_limit
        alloc = self.alloc_range_nid(size, align, min_addr, max_addr, nid, exact_nid)
        if not alloc and min_addr:
            alloc = self.alloc_range_nid(size, align, 0, max_addr, nid, exact_nid)
        return alloc

    def _dbg_call(self, fn: str, size: int, align: int, nid: int | None, min_addr: int,
                  max_addr: int, caller: str) -> None:
        nidtxt = "" if nid is None else f" nid={nid}"
        self.dbg(f"{fn}: {size} bytes align={align:#x}{nidtxt} from={min_addr:#018x} "
                 f"max_addr={max_addr:#018x} {caller}")

    def alloc_try_nid(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                      caller: str, raw: bool = False, what: str = "") -> int | None:
        """memblock_alloc_try_nid[_raw](); None on failure."""
        fn = "memblock_alloc_try_nid_raw" if raw else "memblock_alloc_try_nid"
        self._dbg_call(fn, size, align, nid, min_addr, max_addr, caller)
        res = self._alloc_internal(size, align, min_addr, max_addr, nid, False)
        return self._record(fn, size, align, nid, min_addr, max_addr, caller, res, False, what)

    def alloc_exact_nid_raw(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                            caller: str, what: str = "") -> int | None:
        """memblock_alloc_exact_nid_raw(); None on failure."""
        fn = "memblock_alloc_exact_nid_raw"
        self._dbg_call(fn, size, align, nid, min_addr, max_addr, caller)
        res = self._alloc_internal(size, align, min_addr, max_addr, nid, True)
        return self._record(fn, size, align, nid, min_addr, max_addr, caller, res, True, what)

    def phys_alloc_range(self, size: int, align: int, start: int, end: int, caller: str,
                         what: str = "") -> int | None:
        """memblock_phys_alloc_range(); None on failure."""
        fn = "memblock_phys_alloc_range"
        self._dbg_call(fn, size, align, None, start, end, caller)
        res = self.alloc_range_nid(size, align, start, end, NUMA_NO_NODE, False)
        return self._record(fn, size, align, NUMA_NO_NODE, start, end, caller, res, False, what)

    def phys_alloc_try_nid(self, size: int, align: int, nid: int, caller: str,
                           what: str = "") -> int | None:
        """memblock_phys_alloc_try_nid() (prints no debug line of its own in 6.1)."""
        res = self.alloc_range_nid(size, align, 0, ALLOC_ACCESSIBLE, nid, False)
        return self._record("memblock_phys_alloc_try_nid", size, align, nid, 0, ALLOC_ACCESSIBLE,
                            caller, res, False, what)
