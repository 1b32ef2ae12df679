"""Build the physical-memory image of a simulated 6.1 kernel after boot.

Only meaningful bytes become chunks ``(phys, bytes)``: kernel-image variables, kallsyms tables,
every page-table page (direct map, kernel mapping, vmemmap), the mem_section roots array and root
pages, the usage arrays, the pglist_data fields, the memblock arrays, the e820 tables and the
``struct page`` of (a) the first pfn of every present section and (b) every vmemmap backing frame.
Post-boot state is modelled as in a running system (docs/memblock.md#after-boot-can-the-memblock-data-be-trusted):
memblock_memory is NULL, system_state is SYSTEM_RUNNING, the e820 tables are kmemdup'd copies in the direct map.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from collections.abc import Callable, Iterator

import numpy as np

from ..abi import (
    E820_RAM,
    E820_RESERVED_KERN,
    KERNPG_TABLE,
    PAGE_KERNEL_LARGE_EXEC,
    PAGE_SIZE,
    PAGE_TABLE,
    PMD_SIZE,
    SECTION_HAS_MEM_MAP,
    START_KERNEL,
)
from ..intervals import containing
from .boot import BootState
from .debuginfo import KALLSYMS_AREA, LAYOUT, PG_RESERVED, DebugInfo, pageflags
from .kallsyms_image import KallsymsBlob, encode
from .machine import SZ_16M, E820Entry
from .memblock import MemblockType

SYSTEM_RUNNING = 3
#: struct resource flags (include/linux/ioport.h)
IORESOURCE_MEM, IORESOURCE_SYSRAM, IORESOURCE_BUSY = 0x200, 0x01000000, 0x80000000
N_POSSIBLE, N_ONLINE, N_NORMAL_MEMORY, N_MEMORY, N_CPU = 0, 1, 2, 3, 4
NR_NODE_STATES = 6
ZONE_DMA_END_PFN, ZONE_DMA32_END_PFN = SZ_16M >> 12, (4 << 30) >> 12


@dataclass
class Image:
    """The memory image: explicit chunks plus the struct pages kept as compact arrays."""

    chunks: list[tuple[int, bytes]]
    kallsyms: KallsymsBlob
    kallsyms_va: int           # runtime VA of the kallsyms blob
    page_phys: np.ndarray      # uint64 physical address of each struct page in a PMD leaf, ascending
    page_pfns: np.ndarray      # int64 pfn each of those struct pages describes, same order
    page_rows: Callable[[np.ndarray], np.ndarray]  # pfns → (n, sizeof(struct page)) uint8 contents

    def page_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(phys, contents) of the struct pages in address order, in blocks of _BLOCK pages, so
        their bytes (64 MiB for a 64 TiB machine) never exist all at once."""
        for lo in range(0, len(self.page_phys), _BLOCK):
            yield self.page_phys[lo:lo + _BLOCK], self.page_rows(self.page_pfns[lo:lo + _BLOCK])


#: bit i of a 16-bit index → bit 4i (one pageblock's NR_PAGEBLOCK_BITS=4 flag group)
_SPREAD4 = np.bitwise_or.reduce([(np.arange(1 << 16, dtype=np.uint64) >> np.uint64(b) & np.uint64(1))
                                  << np.uint64(4 * b) for b in range(16)])


def _set_units(masks: np.ndarray, a: int, b: int) -> None:
    """Set bits [a, b) of the bitmap made of consecutive 64-bit words ``masks`` (bits past the
    last word are dropped)."""
    b = min(b, len(masks) * 64)
    if a >= b:
        return
    w0, w1 = a >> 6, (b - 1) >> 6
    lo = ~((1 << (a & 63)) - 1) & 0xFFFFFFFFFFFFFFFF
    hi = (1 << (((b - 1) & 63) + 1)) - 1
    if w0 == w1:
        masks[w0] |= np.uint64(lo & hi)
        return
    masks[w0] |= np.uint64(lo)
    masks[w0 + 1:w1] = np.uint64(0xFFFFFFFFFFFFFFFF)
    masks[w1] |= np.uint64(hi)


#: pfns per block in struct_pages (bounds the temporaries to a few MiB)
_BLOCK = 1 << 16


class ImageBuilder:
    """Turns a :class:`BootState` into memory chunks."""

    def __init__(self, st: BootState, dbg: DebugInfo) -> None:
        self.st = st
        self.machine = st.machine
        self.profile = st.machine.profile
        self.layout = st.machine.layout
        self.dbg = dbg
        self.page_offset = self.layout.page_offset_base
        self.chunks: list[tuple[int, bytes]] = []

    # -- address helpers ---------------------------------------------------------------------
    def kphys(self, link_va: int) -> int:
        """Physical address of a kernel-image link address."""
        return self.layout.image_phys + (link_va - START_KERNEL)

    def kva(self, link_va: int) -> int:
        """Runtime virtual address of a kernel-image link address (KASLR slide applied)."""
        return link_va + self.layout.kernel_offset

    def sym(self, name: str) -> int:
        """Runtime virtual address of a debug-ELF symbol."""
        return self.kva(self.dbg.addr(name))

    def put_sym(self, name: str, data: bytes, offset: int = 0) -> None:
        """Write data into the kernel image at symbol+offset."""
        self.chunks.append((self.kphys(self.dbg.addr(name)) + offset, data))

    # -- pieces ----------------------------------------------------------------------------------
    def kernel_mapping(self) -> None:
        """init_top_pgt[511] → level3/level2_kernel_pgt mapping the image with 2 MiB pages."""
        pt = self.st.pagetables
        l3 = self.kphys(self.dbg.addr("level3_kernel_pgt"))
        l2 = self.kphys(self.dbg.addr("level2_kernel_pgt"))
        fix = self.kphys(self.dbg.addr("level2_fixmap_pgt"))
        pt.add_table(l3, "pud", "level3_kernel_pgt")
        pt.add_table(l2, "pmd", "level2_kernel_pgt")
        pt.add_table(fix, "pmd", "level2_fixmap_pgt")
        if pt.levels == 5:
            l4 = self.kphys(self.dbg.addr("level4_kernel_pgt"))
            pt.add_table(l4, "p4d", "level4_kernel_pgt")
            pt.set(pt.top, 511, l4 | PAGE_TABLE)
            pt.set(l4, 511, l3 | PAGE_TABLE)
        else:
            pt.set(pt.top, 511, l3 | PAGE_TABLE)
        pt.set(l3, 510, l2 | KERNPG_TABLE)
        pt.set(l3, 511, fix | PAGE_TABLE)
        text_rt = self.kva(START_KERNEL)
        first = (text_rt - 0xFFFFFFFF80000000) // PMD_SIZE
        last = (text_rt + self.layout.image_size - 1 - 0xFFFFFFFF80000000) // PMD_SIZE
        for i in range(first, last + 1):
            pt.set(l2, i, (i * PMD_SIZE + self.layout.phys_base) | PAGE_KERNEL_LARGE_EXEC)

    def page_tables(self) -> None:
        """Every page-table page, 4 KiB each."""
        for phys, tp in self.st.pagetables.tables.items():
            self.chunks.append((phys, tp.to_bytes()))

    def kallsyms(self) -> tuple[KallsymsBlob, int]:
        """kallsyms tables at START_KERNEL + LAYOUT['kallsyms'] (.rodata)."""
        blob = encode(self.dbg.kallsyms(), self.layout.kernel_offset)
        link = START_KERNEL + LAYOUT["kallsyms"]
        if len(blob.data) + 64 > KALLSYMS_AREA:
            raise ValueError("kallsyms tables do not fit the reserved area")
        self.chunks.append((self.kphys(link), blob.data.ljust(KALLSYMS_AREA, b"\0")))
        return blob, self.kva(link)

    def strings(self, after: int) -> dict[str, int]:
        """memblock type names in .rodata right after the kallsyms tables."""
        out: dict[str, int] = {}
        link = (after + 63) & ~63
        for s in ("memory", "reserved"):
            self.chunks.append((self.kphys(link), s.encode() + b"\0"))
            out[s] = self.kva(link)
            link += 16
        return out

    def variables(self, names: dict[str, int]) -> None:
        """Scalar kernel variables and small structures."""
        st, lay, p = self.st, self.layout, self.profile
        q = lambda v: struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)  # noqa: E731
        self.put_sym("page_offset_base", q(lay.page_offset_base))
        self.put_sym("vmalloc_base", q(lay.vmalloc_base))
        self.put_sym("vmemmap_base", q(lay.vmemmap_base))
        self.put_sym("phys_base", q(lay.phys_base))
        self.put_sym("mem_section", q(self.page_offset + st.sparse.roots_phys))
        self.put_sym("__highest_present_section_nr", q(st.sparse.highest_present))
        nd = np.zeros(p.max_numnodes, np.uint64)
        for nid, ph in st.node_data.items():
            nd[nid] = self.page_offset + ph
        self.put_sym("node_data", nd.astype("<u8").tobytes())
        words = (p.max_numnodes + 63) // 64
        masks = np.zeros((NR_NODE_STATES, words), np.uint64)
        for nid in (n.nid for n in self.machine.nodes):
            masks[N_POSSIBLE, nid // 64] |= np.uint64(1 << (nid % 64))
        for nid in st.node_data:
            for state in (N_ONLINE, N_NORMAL_MEMORY, N_MEMORY, N_CPU):
                masks[state, nid // 64] |= np.uint64(1 << (nid % 64))
        self.put_sym("node_states", masks.astype("<u8").tobytes())
        self.put_sym("system_state", struct.pack("<I", SYSTEM_RUNNING))
        self.put_sym("init_mm", q(self.sym("init_top_pgt")), offset=80)
        self.put_sym("memblock_memory", q(0))
        mb = st.memblock
        hdr = struct.pack("<?7xQ", mb.bottom_up, mb.current_limit)
        self.put_sym("memblock", hdr + self._mtype(mb.memory, "memblock_memory_init_regions", names["memory"])
                     + self._mtype(mb.reserved, "memblock_reserved_init_regions", names["reserved"]))

    def _mtype(self, t: MemblockType, static: str, name_va: int) -> bytes:
        """struct memblock_type plus its region array (static array or the doubled one)."""
        arr = b"".join(struct.pack("<QQIi", r.base, r.size, r.flags, r.nid) for r in t.regions)
        if t.array_phys is None:
            self.put_sym(static, arr)
            regions = self.sym(static)
        else:
            self.chunks.append((t.array_phys, arr.ljust(t.max * 24, b"\0")))
            regions = self.page_offset + t.array_phys
        return struct.pack("<QQQQQ", t.cnt, t.max, t.total_size, regions, name_va)

    def e820(self) -> None:
        """kmemdup'd e820_table / e820_table_kexec / e820_table_firmware (free_initmem time)."""
        st = self.st

        def table(entries: list[E820Entry]) -> bytes:
            return struct.pack("<I", len(entries)) + b"".join(
                struct.pack("<QQI", e.start, e.end - e.start, e.type) for e in entries)

        blobs = {"e820_table": table(st.e820_table), "e820_table_kexec": table(st.e820_firmware),
                 "e820_table_firmware": table(st.e820_firmware)}
        total = sum((len(b) + 63) & ~63 for b in blobs.values()) + 64 * (len(st.e820_table) + len(st.hotplug))
        base = next(s for s, e in st.memblock.free_ranges(-1, reverse=False)
                    if s >= SZ_16M and e - ((s + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) >= total)
        addr = (base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        for name, b in blobs.items():
            self.chunks.append((addr, b))
            self.put_sym(name, struct.pack("<Q", self.page_offset + addr))
            addr += (len(b) + 63) & ~63
        self._iomem(addr)

    def _iomem(self, addr: int) -> None:
        """iomem_resource's top-level "System RAM" children (kernel/resource.c): boot RAM from
        e820__reserve_resources, hot-added RAM from register_memory_resource (memory_hotplug.c)."""
        ram = [(e.start, e.end) for e in self.st.e820_table if e.type in (E820_RAM, E820_RESERVED_KERN)]
        ram += [(s << 12, e << 12) for s, e, _ in self.st.hotplug]
        ram.sort()
        root = self.sym("iomem_resource")
        flags = IORESOURCE_MEM | IORESOURCE_SYSRAM | IORESOURCE_BUSY
        res = []
        for i, (s, e) in enumerate(ram):
            sib = self.page_offset + addr + (i + 1) * 64 if i + 1 < len(ram) else 0
            res.append(struct.pack("<QQQQQQQQ", s, e - 1, 0, flags, 0, root, sib, 0))
        self.chunks.append((addr, b"".join(res)))
        self.put_sym("iomem_resource", struct.pack("<QQQQQQQQ", 0, (1 << 52) - 1, 0, IORESOURCE_MEM, 0, 0, 0,
                                                   self.page_offset + addr if ram else 0))

    def node_data(self) -> None:
        """pglist_data fields VMCOREINFO exports (node_start_pfn, present, spanned, node_id, nr_zones)."""
        p = self.profile
        for nid, ph in self.st.node_data.items():
            start, spanned, present = self.st.node_spans.get(nid, (0, 0, 0))
            self.chunks.append((ph + p.off_nr_zones, struct.pack("<i", self._nr_zones(start, spanned))))
            self.chunks.append((ph + p.off_node_start_pfn, struct.pack("<QQQi", start, present, spanned, nid)))

    @staticmethod
    def _nr_zones(start: int, spanned: int) -> int:
        """pgdat->nr_zones: highest populated zone index + 1 (DMA, DMA32, NORMAL)."""
        end = start + spanned
        return 3 if end > ZONE_DMA32_END_PFN else 2 if end > ZONE_DMA_END_PFN else 1

    def sections(self) -> None:
        """Roots array, root pages and usage arrays."""
        st, p, m = self.st, self.profile, self.machine
        sp = st.sparse
        spr = p.sections_per_root
        roots = np.zeros(m.nr_section_roots, np.uint64)
        for r, ph in sp.roots.items():
            roots[r] = self.page_offset + ph
        self.chunks.append((sp.roots_phys, roots.astype("<u8").tobytes()))
        ncol = p.mem_section_size // 8
        n = sp.nr_sections
        secs = np.zeros((max(sp.roots) + 1) * spr * ncol, np.uint64).reshape(-1, ncol)
        secs[:n, 0] = sp.words
        has_usage = sp.usage != 0
        secs[:n, 1] = np.where(has_usage, sp.usage + np.uint64(self.page_offset), np.uint64(0))
        for r, ph in sp.roots.items():
            self.chunks.append((ph, secs[r * spr:(r + 1) * spr].tobytes()))
        sub, pbf = self._usage_bits()
        off = p.usage_struct_size // 8 - 1
        cols = p.usage_size // 8
        for g in sp.groups:
            if g.usage is None:
                continue
            valid = g.sections[sp.usage[g.sections] != 0]
            arr = np.zeros((len(valid), cols), np.uint64)
            arr[:, off] = sub[valid]
            arr[:, off + 1:off + 5] = pbf[valid]
            self.chunks.append((g.usage, arr.astype("<u8").tobytes()))

    def _usage_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """subsection_map (subsection_map_init) and pageblock flags (memmap_init: MOVABLE at each
        pageblock-aligned pfn inside a memory range) for every section.

        Subsections and pageblocks are both 512 pfns (SUBSECTION_SHIFT 21, pageblock_order 9), 64
        per section: each memory range sets a run of per-section 64-bit unit masks; a pageblock's
        4 flag bits then get MIGRATE_MOVABLE (1) in their low bit.
        """
        n = self.st.sparse.nr_sections
        sub = np.zeros(n, np.uint64)
        pb = np.zeros(n, np.uint64)
        for s, e, _ in [*self.st.memblock.mem_pfn_ranges(), *self.st.hotplug]:
            _set_units(sub, s >> 9, ((e - 1) >> 9) + 1)
            _set_units(pb, (s + 511) >> 9, (e + 511) >> 9)
        pbf = np.empty((n, 4), np.uint64)
        for w in range(4):
            pbf[:, w] = _SPREAD4[((pb >> np.uint64(16 * w)) & np.uint64(0xFFFF)).astype(np.intp)]
        return sub, pbf

    def struct_pages(self) -> tuple[np.ndarray, np.ndarray]:
        """struct page of each present section's first pfn, of each vmemmap backing frame and of
        each vmemmap page-table page (their node is what overhead-per-node reports read).

        Returns (phys, pfns) of the pages inside a PMD leaf, sorted by physical address (their
        contents come from :meth:`_page_rows` when written); pages PTE-mapped or straddling a
        leaf boundary are written to the chunks here.  Work is done in blocks of pfns so a
        64 TiB machine (1M pages) needs no full-size temporaries.
        """
        st, p = self.st, self.profile
        sp = st.sparse
        vm = st.vmemmap.state
        valid_secs = np.flatnonzero(sp.words & np.uint64(SECTION_HAS_MEM_MAP))
        pfns = np.unique(np.concatenate([
            valid_secs.astype(np.int64) << p.nr_section_bits,
            np.frombuffer(vm.pmd_phys, np.uint64).astype(np.int64) >> 12,
            np.fromiter(vm.pte.values(), np.int64, len(vm.pte)) >> 12,
            np.array([ph for ph, _, _ in vm.tables], np.int64) >> 12,
            np.array([ph >> 12 for ph, _, _, _ in st.hugetlb] + [(ph >> 12) + 1 for ph, _, _, _ in st.hugetlb],
                     np.int64)]))
        if st.hvo_tails:  # an HVO tail's struct pages are the head page's: never written through it
            page_va = (np.uint64(self.layout.vmemmap_base) + pfns.astype(np.uint64) * np.uint64(p.struct_page_size)) \
                & ~np.uint64(PAGE_SIZE - 1)
            pfns = pfns[~np.isin(page_va, np.array(sorted(st.hvo_tails), np.uint64))]
        secs = pfns >> p.nr_section_bits
        pfns = pfns[(secs < sp.nr_sections) & ((sp.words[np.minimum(secs, sp.nr_sections - 1)]
                                                 & np.uint64(SECTION_HAS_MEM_MAP)) != 0)]
        del secs
        phys = np.zeros(len(pfns), np.uint64)  # 0: not inside one PMD leaf
        for lo in range(0, len(pfns), _BLOCK):
            phys[lo:lo + _BLOCK] = self._page_phys(pfns[lo:lo + _BLOCK])
        vbase, sps = self.layout.vmemmap_base, p.struct_page_size
        for pfn in pfns[phys == 0].tolist():
            self._write_vmemmap(vbase + pfn * sps, self._page_rows(np.array([pfn], np.int64))[0].tobytes())
        keep = np.flatnonzero(phys)
        order = keep[np.argsort(phys[keep], kind="stable")]
        return phys[order], pfns[order]

    def _page_phys(self, pfns: np.ndarray) -> np.ndarray:
        """Physical address of the struct page of each pfn if it lies inside one PMD leaf, else 0."""
        sps = self.profile.struct_page_size
        vm = self.st.vmemmap.state
        rel = np.frombuffer(vm.pmd_va, np.uint64) - np.uint64(self.layout.vmemmap_base)
        if not len(rel):
            return np.zeros(len(pfns), np.uint64)
        leaf_ph = np.frombuffer(vm.pmd_phys, np.uint64)
        vaoff = pfns.astype(np.uint64) * np.uint64(sps)
        kk, inside = containing(rel, rel + np.uint64(PMD_SIZE), vaoff, vaoff + np.uint64(sps))
        return np.where(inside, leaf_ph[kk] + (vaoff - rel[kk]), np.uint64(0))

    def _page_rows(self, pfns: np.ndarray) -> np.ndarray:
        """Contents of the struct pages of ``pfns``: (len(pfns), sizeof(struct page)) uint8.

        page->flags holds the node in the top NODES_SHIFT bits and the zone below it
        (SECTIONS_WIDTH is 0 with VMEMMAP); memblock-reserved and hole pages are PG_reserved
        with _refcount 1 (__init_single_page + reserve_bootmem_region), others are free;
        _mapcount is -1 (include/linux/mm_types.h offsets 48/52).
        """
        p, sp = self.profile, self.st.sparse
        pa = pfns << 12
        mb_base, mb_end, mb_nid = self._regions("memory")
        i, in_mem = containing(mb_base, mb_end, pa)
        nid = np.where(in_mem, mb_nid[i],
                       sp.early_nid[pfns >> p.nr_section_bits].astype(np.int64))
        rs_base, rs_end, _ = self._regions("reserved")
        reserved = ~in_mem | containing(rs_base, rs_end, pa)[1]
        zone = np.where(pfns < ZONE_DMA_END_PFN, 0, np.where(pfns < ZONE_DMA32_END_PFN, 1, 2))
        nodes_shift = 64 - p.nodes_shift
        zones_shift = nodes_shift - (p.max_nr_zones - 1).bit_length()
        flags = (zone.astype(np.uint64) << np.uint64(zones_shift)) | \
            (reserved.astype(np.uint64) << np.uint64(PG_RESERVED))
        if p.nodes_shift:
            flags |= nid.astype(np.uint64) << np.uint64(nodes_shift)
        rows = np.zeros((len(pfns), p.struct_page_size), np.uint8)
        if self.st.hugetlb:
            flags = self._hugetlb_rows(pfns, flags, rows)
        rows[:, 0:8] = flags.astype("<u8").view(np.uint8).reshape(-1, 8)
        rows[:, 48:52] = np.full(len(pfns), -1, "<i4").view(np.uint8).reshape(-1, 4)
        rows[:, 52:56] = reserved.astype("<i4").view(np.uint8).reshape(-1, 4)
        return rows

    def _hugetlb_rows(self, pfns: np.ndarray, flags: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Head and first tail of each huge page reserved by an event (include/linux/page-flags.h,
        mm/hugetlb.c): PG_head on the head, HPG_vmemmap_optimized (bit 4 of page->private) when HVO'd,
        the folio order in page[1] — byte 17 (OFFSET(page.compound_order), 6.1) or the low byte of
        page[1].flags (folio->_flags_1, 6.6+)."""
        heads = np.array([ph >> 12 for ph, _, _, _ in self.st.hugetlb], np.int64)
        orders = np.array([(size >> 12).bit_length() - 1 for _, size, _, _ in self.st.hugetlb], np.uint64)
        hvo = np.array([h for _, _, _, h in self.st.hugetlb], bool)
        head_bit = pageflags(self.profile).index("PG_head")
        is_head = np.isin(pfns, heads)
        flags = np.where(is_head, flags | np.uint64(1 << head_bit), flags)
        at = {int(h): k for k, h in enumerate(heads)}
        for r, pfn in enumerate(pfns.tolist()):
            if pfn in at and hvo[at[pfn]]:
                rows[r, 40] = 1 << 4
            if pfn - 1 in at:
                order = int(orders[at[pfn - 1]])
                if self.profile.version == "6.1":
                    rows[r, 17] = order
                else:
                    flags[r] = (int(flags[r]) & ~0xFF) | order
        return flags

    def _regions(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base, end, nid) arrays of the non-empty final memblock.memory or .reserved regions."""
        t = self.st.memblock.memory if kind == "memory" else self.st.memblock.reserved
        regs = [r for r in t.regions if r.size]
        return (np.array([r.base for r in regs], np.int64), np.array([r.base + r.size for r in regs], np.int64),
                np.array([r.nid for r in regs], np.int64))

    def _write_vmemmap(self, va: int, data: bytes) -> None:
        """Write data at a vmemmap VA through the replayed leaves (split at leaf boundaries)."""
        vm = self.st.vmemmap.state
        while data:
            leaf = va & ~(PMD_SIZE - 1)
            leaf_phys = vm.pmd_at(leaf)
            if leaf_phys is not None:
                phys, size = leaf_phys + (va - leaf), PMD_SIZE - (va - leaf)
            else:
                page = va & ~(PAGE_SIZE - 1)
                phys, size = vm.pte[page] + (va - page), PAGE_SIZE - (va - page)
            n = min(size, len(data))
            self.chunks.append((phys, data[:n]))
            va, data = va + n, data[n:]

    def build(self) -> Image:
        """Assemble every piece."""
        self.kernel_mapping()
        blob, ks_va = self.kallsyms()
        names = self.strings(START_KERNEL + LAYOUT["kallsyms"] + KALLSYMS_AREA)
        self.variables(names)
        self.put_sym("linux_banner",
                     f"Linux version {self.profile.release} (vmemdbg-sim) #1 SMP PREEMPT_DYNAMIC\n".encode() + b"\0")
        self.e820()
        self.node_data()
        self.sections()
        phys, pfns = self.struct_pages()
        self.page_tables()
        return Image(self.chunks, blob, ks_va, phys, pfns, self._page_rows)


def build_image(st: BootState, dbg: DebugInfo) -> Image:
    """Build the memory image of a booted simulated machine."""
    return ImageBuilder(st, dbg).build()
