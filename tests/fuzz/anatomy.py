"""Where things are in a clean dump: ELF headers, the VMCOREINFO note, and the kernel data the views
read (section roots and entries, usage objects, page-table pages, kallsyms tables, node data,
memblock, e820, the layout variables), as file offsets the mutators can edit.

The locations come from running the engine itself on the clean dump, so every mutation lands on
bytes a view really reads.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from pathlib import Path

from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.census import vmemmap_census
from vmemdbg.vmemmap import vmemmap_mapping

_PHDR = struct.Struct("<IIQQQQQQ")


@dataclass
class Anatomy:
    """A clean ELF dump and the file offsets of everything the views read."""

    name: str
    data: bytes
    phoff: int
    phnum: int
    note_off: int  # file offset of the PT_NOTE segment
    note_size: int
    vmcoreinfo: str
    loads: list[tuple[int, int, int]]  # (p_paddr, p_offset, p_filesz)
    chunks: list[tuple[int, bytes]]  # the dump's memory, for rebuilding it with other VMCOREINFO
    page_offset_base: int
    #: label -> list of file offsets of u64 words (or byte ranges for "area" labels)
    words: dict[str, list[int]] = field(default_factory=dict)
    areas: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    tables: list[int] = field(default_factory=list)  # file offsets of page-table pages (root first)
    table_phys: list[int] = field(default_factory=list)
    boundaries: list[int] = field(default_factory=list)  # file offsets where a structure starts or ends
    explain_addrs: list[str] = field(default_factory=list)

    def file_offset(self, phys: int) -> int | None:
        """File offset of physical address ``phys``, or None if the dump does not hold it."""
        i = bisect.bisect_right(self._starts, phys) - 1
        if i >= 0:
            paddr, off, filesz = self.loads[i]
            if phys < paddr + filesz:
                return off + phys - paddr
        return None

    def __post_init__(self) -> None:
        self.loads.sort()
        self._starts = [p for p, _, _ in self.loads]


def _loads(data: bytes, phoff: int, phnum: int) -> tuple[list[tuple[int, int, int]], int, int]:
    loads, note_off, note_size = [], 0, 0
    for i in range(phnum):
        p_type, _f, off, _va, paddr, filesz, _memsz, _al = _PHDR.unpack_from(data, phoff + i * 56)
        if p_type == 1:
            loads.append((paddr, off, filesz))
        elif p_type == 4:
            note_off, note_size = off, filesz
    return loads, note_off, note_size


def analyse(path: Path, name: str | None = None) -> Anatomy:
    """Locate everything in the clean dump ``path``."""
    data = path.read_bytes()
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phnum = struct.unpack_from("<H", data, 56)[0]
    if phnum == 0xFFFF:
        shoff = struct.unpack_from("<Q", data, 40)[0]
        phnum = struct.unpack_from("<I", data, shoff + 44)[0]
    loads, note_off, note_size = _loads(data, phoff, phnum)
    src = ElfCoreSource(path)
    k = Kernel(src)
    a = Anatomy(name or path.parent.name, data, phoff, phnum, note_off, note_size, k.info.text, loads,
                [(s, src.read_phys(s, e - s)) for s, e in src.ranges()], k.page_offset_base)
    words: dict[str, list[int]] = {}
    areas: dict[str, list[tuple[int, int]]] = {}

    def add_word(label: str, phys: int | None) -> None:
        if phys is None:
            return
        off = a.file_offset(phys)
        if off is not None:
            words.setdefault(label, []).append(off)

    def add_area(label: str, phys: int, size: int) -> None:
        off = a.file_offset(phys)
        if off is not None:
            areas.setdefault(label, []).append((off, size))

    def va_phys(va: int | None) -> int | None:
        if va is None:
            return None
        try:
            return k.virt_to_phys(va)
        except Exception:
            return None

    secs = present_sections(k)
    census = vmemmap_census(k)  # noqa: F841  (walks the page tables, reads the struct pages for nids)
    roots_phys = va_phys(k.roots_addr)
    if roots_phys is not None:
        for r in range(int(secs.nr[-1]) // k.sections_per_root + 1 if len(secs) else 1):
            add_word("root", roots_phys + 8 * r)
    for addr in secs.addr.tolist():
        p = va_phys(addr)
        add_word("section_word", p)
        add_word("section_usage", None if p is None else p + 8)
    for u in secs.usage.tolist():
        if u:
            add_area("usage", u - k.page_offset_base, 48)
    a.table_phys = [k.pt.root] + [t for t in vmemmap_mapping(k).leaves.tables]
    a.tables = [o for o in (a.file_offset(t) for t in a.table_phys) if o is not None]
    for name_ in ("kallsyms_num_syms", "kallsyms_relative_base"):
        add_word(name_, va_phys(k.info.symbol(name_)))
    for name_, size in (("kallsyms_offsets", 4096), ("kallsyms_names", 4096), ("kallsyms_token_table", 1024),
                        ("kallsyms_token_index", 512)):
        p = va_phys(k.info.symbol(name_))
        if p is not None:
            add_area(name_, p, size)
    for var in ("page_offset_base", "vmemmap_base", "vmalloc_base", "__highest_present_section_nr",
                "memblock_memory", "system_state", "e820_table", "e820_table_firmware", "e820_table_kexec"):
        add_word("var:" + var, va_phys(k.symbol(var)))
    nd = k.info.symbol("node_data")
    for node in k.nodes:
        add_word("node_data", va_phys(nd + 8 * node["nid"]) if nd else None)
        add_word("pgdat_start", va_phys(node["pgdat"] + k.info.offset("pglist_data.node_start_pfn")))
        add_word("pgdat_span", va_phys(node["pgdat"] + k.info.offset("pglist_data.node_spanned_pages")))
    add_word("node_online_map", va_phys(k.info.symbol("node_online_map")))
    mb = k.symbol("memblock")
    if mb is not None:
        for t in (16, 56):
            add_word("memblock_cnt", va_phys(mb + t))
            add_word("memblock_max", va_phys(mb + t + 8))
            add_word("memblock_regions", va_phys(mb + t + 24))
    for var in ("e820_table", "e820_table_firmware"):
        ptr = k.read_symbol_u64(var)
        if ptr:
            add_word("e820_nr", va_phys(ptr))
            add_area("e820_entries", va_phys(ptr) + 4, 20 * 8)
    leaves = vmemmap_mapping(k).leaves
    for ph in leaves.phys[:64].tolist():
        add_word("page_flags", ph)  # struct pages read for the node of a backing frame
    a.words, a.areas = words, areas
    b = {0, 64, phoff, phoff + 56 * phnum, note_off, note_off + note_size, len(data)}
    for _paddr, off, filesz in loads:
        b |= {off, off + filesz}
    for offs in words.values():
        b |= set(offs)
    for ranges in areas.values():
        b |= {o for o, _ in ranges}
    b |= set(a.tables)
    a.boundaries = sorted(x for x in b if 0 <= x <= len(data))
    pfns = [0x1000, int(leaves.phys[0]) >> 12 if len(leaves) else 1]
    a.explain_addrs = [f"pfn:{p:#x}" for p in pfns] + [f"{k.vmemmap_base + 64 * 0x1000:#x}", "0x100000"]
    src.close()
    return a
