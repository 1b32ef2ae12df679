"""What gdb's kernel debug info tells: symbol addresses (KASLR-relocated), type sizes, VMCOREINFO.

gdb loads a vmlinux at its link addresses unless told ``symbol-file -o OFFSET``. A KASLR kernel
runs ``KERNELOFFSET`` higher (``_text - __START_KERNEL``, VMCOREINFO, kernel/crash_core.c), so
every symbol address vmemdbg takes from gdb is moved by :func:`relocation`, the difference between
where the vmcore says ``_text`` is and where gdb has it (0 when gdb's symbols are already
relocated). Variables are then read at those addresses (``*(T *)ADDR``), never through gdb's own
symbol lookup, which would read the unrelocated address.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import gdb

from ..abi import MAX_PHYSMEM_BITS, PAGE_SIZE, SECTION_SIZE_BITS, START_KERNEL
from ..errors import VmemdbgError
from ..vmcoreinfo import VmcoreInfo
from ..vmcoreinfo import compose_vmcoreinfo as vmcoreinfo_text


def value(expr: str) -> int:
    """An integer C expression evaluated by gdb."""
    return int(gdb.parse_and_eval(f"(unsigned long)({expr})"))


def link_address(name: str) -> int | None:
    """Address gdb gives symbol ``name`` (as loaded, maybe unrelocated), or None if unknown."""
    try:
        return value(f"&'{name}'")
    except gdb.error:
        return None


def has_kernel_debug_info() -> bool:
    """True if gdb has a vmlinux's symbols and types (``_text`` and ``struct page``)."""
    if link_address("_text") is None:
        return False
    try:
        gdb.lookup_type("struct page")
    except gdb.error:
        return False
    return True


class GdbSymbols(Mapping[str, int]):
    """Runtime addresses of kernel symbols: gdb's address plus the relocation ``slide``."""

    def __init__(self, slide: int = 0):
        self.slide = slide
        self.source = "gdb's symbols" + (f" + KERNELOFFSET relocation {slide:#x}" if slide else "")

    def __getitem__(self, name: str) -> int:
        addr = link_address(name)
        if addr is None:
            raise KeyError(name)
        return addr + self.slide

    def __iter__(self) -> Iterator[str]:
        raise TypeError("gdb's symbols are looked up by name; gdb's Python API cannot list them")

    def __len__(self) -> int:
        raise TypeError("gdb's symbols are looked up by name; gdb's Python API cannot count them")


def relocation(info: VmcoreInfo, vmlinux: str) -> int:
    """How far gdb's symbols lie below the kernel of ``info``: its ``_text`` minus gdb's.

    Refuses a vmlinux that is not this kernel's: once moved, ``init_top_pgt`` (in every x86-64
    VMCOREINFO) must land where VMCOREINFO puts it.
    """
    gdb_text = link_address("_text")
    if gdb_text is None:
        raise VmemdbgError(f"{vmlinux} has no _text symbol: not a kernel")
    slide = START_KERNEL + info.kernel_offset - gdb_text
    want, have = info.symbol("init_top_pgt"), link_address("init_top_pgt")
    if want is not None and have is not None and have + slide != want:
        raise VmemdbgError(f"{vmlinux} is not this kernel's: its init_top_pgt {have:#x} + relocation {slide:#x} "
                           f"(KERNELOFFSET {info.kernel_offset:#x}) is not VMCOREINFO's {want:#x}")
    return slide


class GdbDebugFacts:
    """Type facts from gdb's DWARF (:class:`vmemdbg.kernel.DebugFacts`)."""

    def sizeof(self, type_name: str) -> int | None:
        """``sizeof(type_name)`` or None."""
        try:
            return value(f"sizeof({type_name})")
        except gdb.error:
            return None

    def enumerator(self, name: str) -> int | None:
        """The value of enum constant ``name`` or None."""
        try:
            return value(name)
        except gdb.error:
            return None


def compose_vmcoreinfo(symbols: GdbSymbols) -> str:
    """The VMCOREINFO lines the engine needs, from gdb's symbols and types and the kernel's memory.

    For a live kernel, which writes its VMCOREINFO only at crash_save_vmcoreinfo_init (a
    subsys_initcall): the lines that function writes (kernel/crash_core.c,
    arch/x86/kernel/crash_core_64.c, 6.1), valid at any point of boot once the kernel runs on its
    own page tables. ``SYMBOL(mem_section)`` is the pointer *value* (NULL before sparse_init's
    memblocks_present). Reading memory can raise ``gdb.MemoryError``.
    """
    def addr(name: str) -> int:
        return symbols[name]

    def var(name: str, ctype: str = "unsigned long") -> int:
        return value(f"*({ctype} *){addr(name):#x}")

    def optional(name: str, ctype: str) -> int:  # variables some configs lack
        return var(name, ctype) if name in symbols else 0

    l5 = optional("__pgtable_l5_enabled", "unsigned int")
    maxbits = MAX_PHYSMEM_BITS[5 if l5 else 4]
    sec_size = value("sizeof(struct mem_section)")
    top = addr("init_top_pgt")
    release = gdb.parse_and_eval(f"((struct uts_namespace *){addr('init_uts_ns'):#x})->name.release").string()
    n_online = value("sizeof(nodemask_t)") * value("N_ONLINE")
    entries: list[tuple[str, int | str | None]] = [
        ("OSRELEASE", release),
        ("PAGESIZE", PAGE_SIZE),
        ("SYMBOL(init_uts_ns)", addr("init_uts_ns")),
        ("SYMBOL(node_online_map)", addr("node_states") + n_online),
        ("SYMBOL(swapper_pg_dir)", top),
        ("SYMBOL(mem_section)", var("mem_section")),
        ("LENGTH(mem_section)", (1 << (maxbits - SECTION_SIZE_BITS)) // (PAGE_SIZE // sec_size)),
        ("SIZE(mem_section)", sec_size),
        ("NUMBER(SECTION_SIZE_BITS)", SECTION_SIZE_BITS),
        ("NUMBER(MAX_PHYSMEM_BITS)", maxbits),
        ("SIZE(page)", value("sizeof(struct page)")),
        ("SIZE(pglist_data)", value("sizeof(struct pglist_data)")),
    ]
    entries += [(f"OFFSET(pglist_data.{member})", value(f"&((struct pglist_data *)0)->{member}"))
                for member in ("node_start_pfn", "node_spanned_pages", "node_id")]
    entries += [
        ("NUMBER(phys_base)", var("phys_base")),
        ("SYMBOL(init_top_pgt)", top),
        ("NUMBER(pgtable_l5_enabled)", 1 if l5 else 0),
        ("SYMBOL(node_data)", addr("node_data")),
        ("LENGTH(node_data)", value("sizeof(node_data) / sizeof(node_data[0])")),
        ("KERNELOFFSET", addr("_text") - START_KERNEL),
        ("NUMBER(sme_mask)", optional("sme_me_mask", "unsigned long")),
    ]
    return vmcoreinfo_text(entries)
