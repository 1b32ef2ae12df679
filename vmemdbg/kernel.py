"""One analysed x86-64 kernel: the layout and the reader.

:class:`Kernel` validates VMCOREINFO and holds what follows from it -- section constants
(include/linux/mmzone.h), paging depth, KASLR offsets, the page-table root -- plus the bases,
symbols, memory reads, address translation and the node list. It knows nothing of the concept
modules (mmzone, vmemmap, census, ...): those take a Kernel and keep their results in
:attr:`Kernel.cache`, as drgn's helpers keep theirs in ``prog.cache``.
The variable bases ``page_offset_base``, ``vmemmap_base`` and ``vmalloc_base``
(arch/x86/kernel/head64.c, randomised by arch/x86/mm/kaslr.c) are not all in VMCOREINFO
(docs/kaslr.md#recovering-the-layout-from-a-dump), so they are read from the kernel variables found through kallsyms (6.0+)
or a user-given symbol file, with the fallbacks the kernel layout guarantees.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np

from .abi import (
    KERNEL_IMAGE_SIZE,
    MAX_NUMNODES,
    MAX_PHYSMEM_BITS,
    PAGE_SIZE,
    SECTION_HAS_MEM_MAP,
    SECTION_SIZE_BITS,
    START_KERNEL_MAP,
)
from .errors import LayoutError, MemoryFault, VmemdbgError
from .kallsyms import Kallsyms
from .memory import MemorySource
from .pagetable import PageTableWalker, Translation
from .versions import KernelVersion
from .vmcoreinfo import VmcoreInfo


T = TypeVar("T")


class DebugFacts(Protocol):
    """What a debugger with kernel DWARF can tell that a dump alone cannot."""

    def sizeof(self, type_name: str) -> int | None:
        """``sizeof(type_name)``, or None if the type is unknown."""

    def enumerator(self, name: str) -> int | None:
        """Value of an enum constant (e.g. ``SECTION_TAINT_ZONE_DEVICE_BIT``), or None if absent."""


class SymbolLookup(Protocol):
    """User symbols: a System.map / vmlinux table (a mapping) or a debugger's lookup (gdb's)."""

    def get(self, name: str, /) -> int | None:
        """Address of ``name``, or None if unknown."""


class Kernel:
    """A kernel read from a :class:`MemorySource`.

    ``symbols`` override kallsyms: link-time addresses from System.map / vmlinux (the KASLR slide
    is added), or, with ``symbols_relocated=True``, runtime addresses from a debugger that already
    relocated them (drgn, gdb). Any mapping works, so front ends can pass lazy lookups.
    ``debug`` answers type questions from DWARF when a debugger has it (see :class:`DebugFacts`);
    without it, layouts are detected from the dump or assumed (and the reason says which).
    """

    def __init__(self, source: MemorySource, *, vmcoreinfo: bytes | None = None,
                 symbols: SymbolLookup | None = None, symbols_relocated: bool = False,
                 debug: "DebugFacts | None" = None):
        self.source = source
        self.notes: list[str] = []
        self.unreadable: list[str] = []
        #: results of the concept modules, by key (``prog.cache`` in drgn): filled by them, not here.
        self.cache: dict[str, Any] = {}
        self.info = VmcoreInfo(self._vmcoreinfo_text(source, vmcoreinfo))
        self.release = self.info.release
        self.version = KernelVersion.parse(self.release)
        self.page_size = self.info.page_size
        if self.page_size != PAGE_SIZE:
            raise LayoutError(f"PAGESIZE={self.page_size}: only 4 KiB-page x86-64 kernels are supported")
        self.init_top_pgt = self._image_layout()
        self._paging_layout()
        self._section_layout()
        self._sme_and_nodes()
        self.pt = PageTableWalker(self.read_phys, self.kimg_to_phys(self.init_top_pgt), self.pgtable_levels,
                                  self.sme_mask, self.max_physmem_bits)
        self._user_symbols = symbols
        self._kallsyms_error: str | None = None
        self.debug = debug
        self.kallsyms_rule: str | None = None  # which kallsyms_offsets rule decoded the symbols
        self.kallsyms_error: str | None = None  # why the dump's kallsyms could not be decoded
        self._symbols_slide = 0 if symbols_relocated else self.kaslr_offset
        if not symbols_relocated:
            self._check_symbol_file()

    def cached(self, key: str, compute: "Callable[[Kernel], T]") -> T:
        """``cache[key]``, set to ``compute(self)`` the first time (how concept modules keep their
        results: the Kernel never calls them itself)."""
        if key not in self.cache:
            self.cache[key] = compute(self)
        return self.cache[key]

    # -- VMCOREINFO validation, in the order the values depend on each other -------------------------
    def _vmcoreinfo_text(self, source: MemorySource, given: bytes | None) -> bytes:
        """The VMCOREINFO text: given, the source's note, else found by scanning its memory."""
        text = given or source.vmcoreinfo()
        if text:
            return text
        text = source.find_vmcoreinfo()
        if not text:
            raise LayoutError(
                f"{source.description}: no VMCOREINFO (QEMU dumps need -device vmcoreinfo and the guest's "
                "qemu_fw_cfg driver); pass --vmcoreinfo FILE")
        self.notes.append("VMCOREINFO found by scanning memory (no note in the dump)")
        return text

    def _image_layout(self) -> int:
        """KERNELOFFSET and phys_base; returns init_top_pgt, a page of the kernel image."""
        info = self.info
        root_va = info.symbol("init_top_pgt") or info.symbol("swapper_pg_dir")
        if root_va is None or root_va < START_KERNEL_MAP:
            raise LayoutError("VMCOREINFO has no SYMBOL(init_top_pgt): not an x86-64 kernel")
        if not self.in_kernel_image(root_va) or root_va & 0xFFF:
            raise LayoutError(f"SYMBOL(init_top_pgt)={root_va:x} is not a page of the kernel image")
        self.kaslr_offset = info.kernel_offset
        if not 0 <= self.kaslr_offset < KERNEL_IMAGE_SIZE:  # _text - __START_KERNEL, inside the image area
            raise LayoutError(f"KERNELOFFSET={self.kaslr_offset:x} is outside the 1 GiB kernel image area")
        phys_base = info.number("phys_base")
        if phys_base is None:
            raise LayoutError("VMCOREINFO has no NUMBER(phys_base): not an x86-64 kernel")
        self.phys_base = phys_base
        return root_va

    def _paging_layout(self) -> None:
        """Paging depth and MAX_PHYSMEM_BITS (arch/x86/include/asm/sparsemem.h: 52 with 5 levels, 46 with 4)."""
        l5 = self.info.number("pgtable_l5_enabled")
        maxbits = self.info.number("MAX_PHYSMEM_BITS")
        if l5 not in (None, 0, 1):
            raise LayoutError(f"NUMBER(pgtable_l5_enabled)={l5} is not 0 or 1")
        if l5 is None:
            l5 = 1 if maxbits == MAX_PHYSMEM_BITS[5] else 0
        self.pgtable_levels = 5 if l5 else 4
        want_bits = MAX_PHYSMEM_BITS[self.pgtable_levels]
        self.max_physmem_bits = maxbits if maxbits is not None else want_bits
        if self.max_physmem_bits != want_bits:
            raise LayoutError(f"NUMBER(MAX_PHYSMEM_BITS)={self.max_physmem_bits} is impossible with "
                              f"{self.pgtable_levels}-level paging (x86-64 has {want_bits})")

    def _section_layout(self) -> None:
        """Section and struct sizes, the kernel image inside physical memory, section counts and
        the mem_section root array (include/linux/mmzone.h)."""
        info = self.info
        self.section_size_bits = info.number("SECTION_SIZE_BITS") or SECTION_SIZE_BITS
        self.struct_page_size = info.size("page") or 64
        self.mem_section_size = info.size("mem_section") or 16
        if self.mem_section_size not in (16, 32):
            raise LayoutError(f"SIZE(mem_section)={self.mem_section_size} is absurd (expected 16 or 32)")
        if self.section_size_bits != SECTION_SIZE_BITS:
            raise LayoutError(f"NUMBER(SECTION_SIZE_BITS)={self.section_size_bits} is not x86-64's {SECTION_SIZE_BITS}")
        if self.struct_page_size not in range(32, 257, 8):
            raise LayoutError(f"SIZE(page)={self.struct_page_size} is absurd")
        if not -(1 << self.max_physmem_bits) < self.phys_base < 1 << self.max_physmem_bits \
                or not 0 <= self.kimg_to_phys(self.init_top_pgt) < 1 << self.max_physmem_bits:
            raise LayoutError(f"NUMBER(phys_base)={self.phys_base} puts the kernel image outside physical memory")
        self.pfn_section_shift = self.section_size_bits - 12
        self.pages_per_section = 1 << self.pfn_section_shift
        self.nr_mem_sections = 1 << (self.max_physmem_bits - self.section_size_bits)
        self.sections_per_root = self.page_size // self.mem_section_size
        nr_roots = info.length("mem_section")
        expect = self.nr_mem_sections // self.sections_per_root
        if nr_roots is None:
            nr_roots = expect
        elif nr_roots != expect:
            raise LayoutError(f"LENGTH(mem_section)={nr_roots} disagrees with NR_SECTION_ROOTS={expect} "
                              f"(MAX_PHYSMEM_BITS={self.max_physmem_bits}, SIZE(mem_section)={self.mem_section_size})")
        self.nr_section_roots = nr_roots
        roots_addr = info.symbol("mem_section")
        if roots_addr is None:
            raise LayoutError("VMCOREINFO has no SYMBOL(mem_section): kernel without SPARSEMEM?")
        if roots_addr and not self.is_kernel_address(roots_addr):  # 0: not allocated yet (mid-boot)
            raise LayoutError(f"SYMBOL(mem_section)={roots_addr:x} is not a kernel address")
        self.roots_addr: int = roots_addr

    def _sme_and_nodes(self) -> None:
        """The AMD memory-encryption C-bit and NODES_SHIFT."""
        self.sme_mask = self.info.number("sme_mask") or 0
        # The C-bit: one physical-address bit (arch/x86/mm/mem_encrypt_identity.c).
        if self.sme_mask and (self.sme_mask & (self.sme_mask - 1) or not 1 << 32 <= self.sme_mask < 1 << 52):
            raise LayoutError(f"NUMBER(sme_mask)={self.sme_mask} is not a single physical-address bit")
        node_len = self.info.length("node_data")
        # MAX_NUMNODES = 1 << CONFIG_NODES_SHIFT, NODES_SHIFT 1..10 on x86 (arch/x86/Kconfig)
        if node_len is not None and (node_len & (node_len - 1) or not 1 <= node_len <= MAX_NUMNODES):
            raise LayoutError(f"LENGTH(node_data)={node_len} is not a power of two up to MAX_NUMNODES={MAX_NUMNODES}")
        self.nodes_shift = (node_len.bit_length() - 1) if node_len else 0

    def _check_symbol_file(self) -> None:
        """Refuse a link-time symbol table that is not this kernel's: its ``init_top_pgt`` (in
        VMCOREINFO on every x86-64 kernel) and ``_stext`` must land where VMCOREINFO says."""
        if self._user_symbols is None:
            return
        for name in ("init_top_pgt", "_stext"):
            want, have = self.info.symbol(name), self._user_symbols.get(name)
            if want is None or have is None:
                continue
            if have + self._symbols_slide != want:
                src = getattr(self._user_symbols, "source", "the given symbol table")
                raise LayoutError(f"{src} is not this kernel's: {name} {have:#x} + KERNELOFFSET {self.kaslr_offset:#x} "
                                  f"!= SYMBOL({name}) {want:#x} (kernel {self.release})")

    def is_kernel_address(self, va: int) -> bool:
        """True for a canonical address of the kernel half (sign-extended from bit 47 or 56)."""
        bits = 56 if self.pgtable_levels == 5 else 47
        return 0 <= va < 1 << 64 and va >> bits == (1 << (64 - bits)) - 1

    def _check_base(self, name: str, value: int, span: int) -> str | None:
        """Why ``value`` cannot be the base of a randomised region of ``span`` bytes (None if it can).

        arch/x86/mm/kaslr.c (kernel_randomize_memory) places page_offset_base, vmalloc_base and
        vmemmap_base PUD-aligned in the kernel half; the default bases are PUD-aligned too."""
        if not self.is_kernel_address(value):
            return f"{name}={value:#x} is not a kernel address"
        if value & ((1 << 30) - 1):
            return f"{name}={value:#x} is not 1 GiB aligned"
        if value + span >= 1 << 64:
            return f"{name}={value:#x} leaves no room for {span:#x} bytes below 2^64"
        return None

    # -- memory -------------------------------------------------------------------------------------
    def read_phys(self, addr: int, size: int) -> bytes:
        """Physical read through the source; addresses outside 2^MAX_PHYSMEM_BITS fault."""
        if addr < 0 or size < 0 or addr + size > 1 << self.max_physmem_bits:
            raise MemoryFault(addr, size, why="outside the physical address space")
        return self.source.read_phys(addr, size)

    def kimg_to_phys(self, va: int) -> int:
        """``__phys_addr_symbol``: kernel-image VA to physical (arch/x86/include/asm/page_64.h)."""
        return va - START_KERNEL_MAP + self.phys_base

    def in_kernel_image(self, va: int) -> bool:
        """True for ``__START_KERNEL_map`` addresses."""
        return START_KERNEL_MAP <= va < START_KERNEL_MAP + KERNEL_IMAGE_SIZE

    @property
    def vmemmap_span(self) -> int:
        """Bytes of vmemmap covering every possible section: NR_MEM_SECTIONS * PAGES_PER_SECTION
        * sizeof(struct page)."""
        return self.nr_mem_sections * self.pages_per_section * self.struct_page_size

    def in_vmemmap(self, va: int) -> bool:
        """True for addresses of the vmemmap (a ``struct page`` of some pfn)."""
        return self.vmemmap_base <= va < self.vmemmap_base + self.vmemmap_span

    def in_direct_map(self, va: int) -> bool:
        """True for addresses of the direct map (page_offset_base + phys)."""
        po = self.page_offset_base
        return po <= va < po + (1 << self.max_physmem_bits)

    def virt_to_phys(self, va: int) -> int:
        """Translate a kernel VA: image and direct map by formula (``__pa``), others by page walk."""
        if self.in_kernel_image(va):
            return self.kimg_to_phys(va)
        if self.in_direct_map(va):
            return va - self.page_offset_base
        t = self.pt.translate(va)
        if t.phys is None:
            raise MemoryFault(va, 1, "virtual", "not mapped")
        return t.phys

    def translate(self, va: int) -> Translation:
        """Full page-table translation with the path (for ``explain``)."""
        return self.pt.translate(va)

    def read(self, va: int, size: int) -> bytes:
        """Read kernel virtual memory."""
        if va < 0 or size < 0 or va + size > 1 << 64:
            raise MemoryFault(va, size, "virtual", "outside the 64-bit address space")
        if self.in_kernel_image(va) or self.in_direct_map(va):
            return self.read_phys(self.virt_to_phys(va), size)
        out = bytearray()
        cur = va
        while cur < va + size:
            n = min(va + size, (cur | 0xFFF) + 1) - cur
            out += self.read_phys(self.virt_to_phys(cur), n)
            cur += n
        return bytes(out)

    def read_u64(self, va: int) -> int:
        """Read one unsigned 64-bit kernel word."""
        return struct.unpack("<Q", self.read(va, 8))[0]

    def read_u32(self, va: int) -> int:
        """Read one unsigned 32-bit kernel word."""
        return struct.unpack("<I", self.read(va, 4))[0]

    # -- symbols ------------------------------------------------------------------------------------
    @cached_property
    def kallsyms(self) -> Kallsyms | None:
        """The dump's kallsyms tables, or None if they cannot be read (the reason is noted)."""
        try:
            table = Kallsyms(self.info, lambda va, n: self.read_phys(self.kimg_to_phys(va), n))
        except MemoryFault as e:
            self.unreadable.append(f"kallsyms tables ({e})")
            self.kallsyms_error = "the dump's kallsyms tables are unreadable"
            self.notes.append("kallsyms unreadable: symbol-based values fall back to layout rules")
            return None
        except LayoutError as e:
            self.kallsyms_error = str(e)
            self.notes.append(str(e))
            self._kallsyms_error = str(e)
            return None
        self.kallsyms_rule = table.rule.origin
        return table

    @cached_property
    def symbols(self) -> dict[str, int]:
        """Every runtime symbol address decoded from the dump's kallsyms (empty if unavailable).
        The engine looks names up one by one (:meth:`symbol`) and never needs this."""
        return {} if self.kallsyms is None else self.kallsyms.table().first_addresses()

    def symbol(self, name: str) -> int | None:
        """Runtime address of symbol ``name`` (user symbols first, then kallsyms), or None."""
        if self._user_symbols is not None:
            v = self._user_symbols.get(name)
            return None if v is None else v + self._symbols_slide
        return None if self.kallsyms is None else self.kallsyms.address(name)

    @property
    def symbol_source(self) -> str:
        """Where symbol addresses come from, in one line (``summary -v``)."""
        if self._user_symbols is not None:
            return getattr(self._user_symbols, "source", "the given symbol table")
        if self.kallsyms is not None:
            return f"the dump's kallsyms, {self.kallsyms.num} symbols; offsets rule: {self.kallsyms_rule}"
        return f"none: {self.kallsyms_error or 'no kallsyms in the dump'}"

    def missing_symbol(self, name: str, needed_for: str) -> str:
        """One line saying why symbol ``name`` is unknown and what to do about it."""
        if self._user_symbols is not None:
            src = getattr(self._user_symbols, "source", "the given symbol table")
            return f"{needed_for} needs the kernel symbol {name}, which {src} does not have"
        if self.kallsyms is not None:
            return f"{needed_for} needs the kernel symbol {name}, which the dump's kallsyms does not have"
        why = self.kallsyms_error or "no kallsyms in the dump"
        if not self.version.at_least(6, 0):
            why = (f"kernel {self.release} is older than 6.0, whose VMCOREINFO exports no kallsyms tables "
                   "(5fd8fea935a1)")
        return f"{needed_for} needs the kernel symbol {name}: {why}; pass --symbols VMLINUX|System.map"

    def require_symbol(self, name: str, needed_for: str) -> int:
        """Runtime address of ``name``; raises a one-line :class:`VmemdbgError` if it is unknown."""
        addr = self.symbol(name)
        if addr is None:
            raise VmemdbgError(self.missing_symbol(name, needed_for))
        return addr

    def read_symbol_u64(self, name: str) -> int | None:
        """Value of an unsigned long kernel variable, or None if unknown or unreadable."""
        addr = self.symbol(name)
        if addr is None:
            return None
        if not self.in_kernel_image(addr):  # every variable read this way is kernel-image data
            self.unreadable.append(f"variable {name}: its address {addr:#x} is outside the kernel image")
            return None
        try:
            return self.read_u64(addr)
        except MemoryFault:
            self.unreadable.append(f"variable {name} at {addr:#x}")
            return None

    # -- bases --------------------------------------------------------------------------------------
    @cached_property
    def page_offset_base(self) -> int:
        """Direct-map base: the variable, else SYMBOL(mem_section) translated through the page tables."""
        span = 1 << self.max_physmem_bits
        v = self.read_symbol_u64("page_offset_base")
        if v is not None:
            why = self._check_base("page_offset_base", v, span)
            if why is None:
                return v
            self.unreadable.append(f"variable {why}")
        try:
            return self._page_offset_from_tables(span)
        except LayoutError as e:
            if self._kallsyms_error is None:
                raise
            raise LayoutError(f"{e}; kallsyms: {self._kallsyms_error}") from None  # why no variable

    def _page_offset_from_tables(self, span: int) -> int:
        """page_offset_base = SYMBOL(mem_section) minus its physical address through the page tables."""
        if not self.roots_addr:
            raise LayoutError("cannot find page_offset_base: no usable variable and mem_section is not allocated")
        try:
            t = self.pt.translate(self.roots_addr)
        except MemoryFault as e:
            raise LayoutError(f"cannot find page_offset_base: kallsyms and the page tables are unreadable ({e})") from None
        if t.phys is None:
            raise LayoutError("cannot find page_offset_base: no symbol and SYMBOL(mem_section) is not mapped")
        v = self.roots_addr - t.phys
        why = self._check_base("page_offset_base", v, span)
        if why is not None:
            raise LayoutError(f"cannot find page_offset_base: the mapping of SYMBOL(mem_section) gives {why}")
        self.notes.append("page_offset_base derived from the mapping of SYMBOL(mem_section)")
        return v

    @cached_property
    def vmalloc_base(self) -> int | None:
        """vmalloc base: the variable, else NUMBER(VMALLOC_START) (6.9+)."""
        for v, name in ((self.read_symbol_u64("vmalloc_base"), "variable vmalloc_base"),
                        (self.info.number("VMALLOC_START"), "NUMBER(VMALLOC_START)")):
            if v is not None:
                why = self._check_base(name, v, 1 << 30)
                if why is None:
                    return v
                self.unreadable.append(why)
        if self.symbol("vmalloc_base") is None and self.info.number("VMALLOC_START") is None:
            self.notes.append("vmalloc_base unknown (VMCOREINFO has NUMBER(VMALLOC_START) only since 6.9): "
                              + self.missing_symbol("vmalloc_base", "it"))
        return None

    @cached_property
    def vmemmap_base(self) -> int:
        """vmemmap base: the variable, SYMBOL(vmemmap) (6.9+), else any valid section word."""
        span = self.vmemmap_span
        for v, name in ((self.read_symbol_u64("vmemmap_base"), "variable vmemmap_base"),
                        (self.info.symbol("vmemmap"), "SYMBOL(vmemmap)")):
            if v is not None:
                why = self._check_base(name, v, span)
                if why is None:
                    return v
                self.unreadable.append(why)
        v = self._vmemmap_base_from_sections()
        why = self._check_base("vmemmap_base", v, span)
        if why is not None:
            raise LayoutError(f"cannot find vmemmap_base: the first valid section word gives {why}")
        self.notes.append("vmemmap_base derived from a valid section_mem_map word (docs/sparse-model.md)")
        return v

    def _vmemmap_base_from_sections(self) -> int:
        """vmemmap_base from the first valid section word: word & SECTION_MAP_MASK == vmemmap_base
        (docs/sparse-model.md#section_mem_map-the-coded-memmap-pointer)."""
        roots, _ = self.mem_section_roots()
        for ptr in roots.tolist():
            if not ptr:
                continue
            try:
                page = np.frombuffer(self.read(ptr, 4096), dtype="<u8")[:: self.mem_section_size // 8]
            except VmemdbgError:
                continue
            valid = page[(page & np.uint64(SECTION_HAS_MEM_MAP)) != 0]
            if len(valid):
                return int(valid[0]) & ~0xFFF & ((1 << 64) - 1)
        raise LayoutError("cannot find vmemmap_base: no symbol and no valid section")

    def mem_section_roots(self) -> tuple[np.ndarray, int]:
        """The ``mem_section`` root pointers (bounded by ``__highest_present_section_nr`` when
        known) and that bound (-1 if unknown)."""
        if self.roots_addr == 0:  # a live kernel stopped before memory_present() allocated it
            self.notes.append("mem_section not allocated yet")
            return np.zeros(0, dtype="<u8"), -1
        highest = self.read_symbol_u64("__highest_present_section_nr")
        if highest is not None and highest >= self.nr_mem_sections:
            raise LayoutError(f"__highest_present_section_nr={highest} exceeds NR_MEM_SECTIONS={self.nr_mem_sections}")
        nroots = self.nr_section_roots if highest is None else highest // self.sections_per_root + 1
        try:
            raw = self.read(self.roots_addr, 8 * nroots)
        except MemoryFault as e:
            raise LayoutError(f"mem_section root array at {self.roots_addr:#x} is unreadable ({e})") from None
        return np.frombuffer(raw, dtype="<u8"), -1 if highest is None else highest

    def nr_to_section(self, nr: int) -> int:
        """``__nr_to_section`` (include/linux/mmzone.h, SPARSEMEM_EXTREME):
        ``&mem_section[SECTION_NR_TO_ROOT(nr)][nr & SECTION_ROOT_MASK]``, 0 when that root is not
        allocated. One root pointer is read: for every section use :meth:`mem_section_roots`."""
        if not 0 <= nr < self.nr_mem_sections:
            raise LayoutError(f"section {nr} is outside NR_MEM_SECTIONS={self.nr_mem_sections}")
        if self.roots_addr == 0:
            raise LayoutError("mem_section is not allocated yet")
        root = self.read_u64(self.roots_addr + 8 * (nr // self.sections_per_root))
        return root + (nr % self.sections_per_root) * self.mem_section_size if root else 0

    # -- struct page --------------------------------------------------------------------------------
    def pfn_to_page(self, pfn: int) -> int:
        """``__pfn_to_page`` for SPARSEMEM_VMEMMAP (include/asm-generic/memory_model.h)."""
        return self.vmemmap_base + pfn * self.struct_page_size

    def page_to_pfn(self, page: int) -> int:
        """``__page_to_pfn`` for SPARSEMEM_VMEMMAP."""
        return (page - self.vmemmap_base) // self.struct_page_size

    def page_to_nid(self, flags: np.ndarray) -> np.ndarray:
        """``page_to_nid`` (include/linux/mm.h) of struct pages given their ``page->flags``: the
        node id in the top NODES_SHIFT bits.

        With SPARSEMEM_VMEMMAP SECTIONS_WIDTH is 0, so NODES_PGSHIFT = 64 - NODES_SHIFT
        (include/linux/page-flags-layout.h); NODES_SHIFT = log2(LENGTH(node_data)).
        """
        if self.nodes_shift == 0:
            return np.zeros(np.shape(flags), dtype=np.int64)
        return (np.asarray(flags, dtype=np.uint64) >> np.uint64(64 - self.nodes_shift)).astype(np.int64)

    # -- nodes --------------------------------------------------------------------------------------
    @cached_property
    def nodes(self) -> list[dict]:
        """Online nodes: nid, pglist_data address, node_start_pfn, node_spanned_pages.

        From SYMBOL(node_data) / node_online_map and OFFSET(pglist_data.*) in VMCOREINFO
        (arch/x86 crash_core_64.c; include/linux/mmzone.h).
        """
        info = self.info
        nd = info.symbol("node_data")
        n = info.length("node_data")
        o_start = info.offset("pglist_data.node_start_pfn")
        o_span = info.offset("pglist_data.node_spanned_pages")
        if nd is None or not n or o_start is None or o_span is None:
            return []
        pgdat_size = info.size("pglist_data") or 1 << 20
        if max(o_start, o_span) + 8 > pgdat_size or not self.in_kernel_image(nd):
            self.unreadable.append("node_data: VMCOREINFO gives an absurd node_data address or pglist_data offsets")
            return []
        online = None
        nom = info.symbol("node_online_map")
        if nom is not None:
            try:
                online = int.from_bytes(self.read(nom, max(8, n // 8)), "little") & ((1 << n) - 1)
            except VmemdbgError:
                online = None
        count = online.bit_length() if online else n  # node_data[] up to the highest online node
        try:
            ptrs = np.frombuffer(self.read(nd, 8 * count), dtype="<u8")
        except VmemdbgError:
            self.unreadable.append("node_data[]")
            return []
        max_pfn = 1 << (self.max_physmem_bits - 12)
        out = []
        for nid, p in enumerate(ptrs.tolist()):
            if not p or (online is not None and not online >> nid & 1):
                continue
            if not self.is_kernel_address(p):
                self.unreadable.append(f"node_data[{nid}] = {p:#x} is not a kernel address")
                continue
            try:
                start = self.read_u64(p + o_start)
                span = self.read_u64(p + o_span)
            except VmemdbgError:
                self.unreadable.append(f"pglist_data of node {nid} at {p:#x}")
                continue
            if start >= max_pfn or span > max_pfn - start:
                self.unreadable.append(f"pglist_data of node {nid} at {p:#x}: span pfn {start:#x} + {span:#x} pages "
                                       "is past MAX_PHYSMEM_BITS")
                continue
            out.append({"nid": nid, "pgdat": p, "start_pfn": start, "spanned_pages": span})
        return out
