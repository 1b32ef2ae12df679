"""VMCOREINFO text and the fixture vmcore file.

The note follows the 6.1 x86-64 order and formats (kernel/crash_core.c:crash_save_vmcoreinfo_init
and arch/x86/kernel/crash_core_64.c:arch_crash_save_vmcoreinfo; docs/kaslr.md#vmcoreinfo), each value printed
in its key's format by :func:`vmemdbg.vmcoreinfo.compose_vmcoreinfo`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..abi import E820_RAM, KERNEL_IMAGE_SIZE, PAGE_SIZE, START_KERNEL
from ..elfwrite import write_elf_core, write_vmcore_layout
from ..vmcoreinfo import compose_vmcoreinfo
from .boot import BootState
from .debuginfo import LAYOUT, PAGEFLAGS_6_1, DebugInfo
from .image import Image, ImageBuilder
from .kdump import compress

#: Link address of init_uts_ns: the page after .rodata's linux_banner. It is not in the generated
#: debug info; VMCOREINFO names it (SYMBOL(init_uts_ns)) because makedumpfile refuses a dump
#: whose release it cannot read there (makedumpfile.c: check_release).
UTS_LINK = START_KERNEL + LAYOUT["rodata"] + 0x1000


def utsname_chunk(st: BootState, dbg: DebugInfo) -> tuple[int, bytes]:
    """(phys, bytes) of init_uts_ns.name, a struct new_utsname of six 65-byte strings
    (include/uapi/linux/utsname.h; OFFSET(uts_namespace.name) is 0 in 6.1)."""
    fields = ("Linux", "vmemdbg-sim", st.machine.profile.release, "#1 SMP PREEMPT_DYNAMIC", "x86_64", "(none)")
    return ImageBuilder(st, dbg).kphys(UTS_LINK), b"".join(f.encode().ljust(65, b"\0") for f in fields)


def vmcoreinfo_text(st: BootState, dbg: DebugInfo, img: Image) -> str:
    """The VMCOREINFO note a 6.1 kernel would have written for this boot."""
    m, p, lay = st.machine, st.machine.profile, st.machine.layout
    ib = ImageBuilder(st, dbg)
    sym = ib.sym
    nodemask_size = (p.max_numnodes + 63) // 64 * 8
    ks = {k: img.kallsyms_va + v for k, v in img.kallsyms.labels.items()}
    pg = {n: i for i, n in enumerate(PAGEFLAGS_6_1)}
    entries: list[tuple[str, int | str | None]] = [
        ("OSRELEASE", p.release),
        ("BUILD-ID", dbg.build_id),
        ("PAGESIZE", PAGE_SIZE),
        ("SYMBOL(init_uts_ns)", ib.kva(UTS_LINK)),
        ("OFFSET(uts_namespace.name)", 0),
        ("SYMBOL(node_online_map)", sym("node_states") + nodemask_size),
        ("SYMBOL(swapper_pg_dir)", sym("init_top_pgt")),
        ("SYMBOL(_stext)", sym("_stext")),
        ("SYMBOL(mem_section)", lay.page_offset_base + st.sparse.roots_phys),
        ("LENGTH(mem_section)", m.nr_section_roots),
        ("SIZE(mem_section)", p.mem_section_size),
        ("OFFSET(mem_section.section_mem_map)", 0),
        ("NUMBER(SECTION_SIZE_BITS)", p.section_size_bits),
        ("NUMBER(MAX_PHYSMEM_BITS)", m.max_physmem_bits),
        ("SIZE(page)", p.struct_page_size),
        ("SIZE(pglist_data)", p.pglist_data_size),
        ("SIZE(nodemask_t)", nodemask_size),
        ("OFFSET(page.flags)", 0),
        ("OFFSET(page._refcount)", 52),
        ("OFFSET(page.mapping)", 24),
        ("OFFSET(page.lru)", 8),
        ("OFFSET(page._mapcount)", 48),
        ("OFFSET(page.private)", 40),
        ("OFFSET(page.compound_head)", 8),
        ("OFFSET(page.compound_order)", 17 if p.version == "6.1" else None),
        ("OFFSET(pglist_data.node_zones)", 0),
        ("OFFSET(pglist_data.nr_zones)", p.off_nr_zones),
        ("OFFSET(pglist_data.node_start_pfn)", p.off_node_start_pfn),
        ("OFFSET(pglist_data.node_spanned_pages)", p.off_node_spanned_pages),
        ("OFFSET(pglist_data.node_id)", p.off_node_id),
        ("NUMBER(PG_lru)", pg["PG_lru"]),
        ("NUMBER(PG_private)", pg["PG_private"]),
        ("NUMBER(PG_swapcache)", pg["PG_owner_priv_1"]),
        ("NUMBER(PG_swapbacked)", pg["PG_swapbacked"]),
        ("NUMBER(PG_slab)", pg["PG_slab"]),
        ("NUMBER(PG_hwpoison)", pg["PG_hwpoison"]),
        ("NUMBER(PG_head_mask)", 1 << pg["PG_head"]),
        ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", -129),
        ("NUMBER(HUGETLB_PAGE_DTOR)", 2),
        ("NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)", -257),
        ("SYMBOL(kallsyms_names)", ks["kallsyms_names"]),
        ("SYMBOL(kallsyms_num_syms)", ks["kallsyms_num_syms"]),
        ("SYMBOL(kallsyms_token_table)", ks["kallsyms_token_table"]),
        ("SYMBOL(kallsyms_token_index)", ks["kallsyms_token_index"]),
        ("SYMBOL(kallsyms_offsets)", ks["kallsyms_offsets"]),
        ("SYMBOL(kallsyms_relative_base)", ks["kallsyms_relative_base"]),
        ("NUMBER(phys_base)", lay.phys_base),
        ("SYMBOL(init_top_pgt)", sym("init_top_pgt")),
        ("NUMBER(pgtable_l5_enabled)", 1 if m.paging_levels == 5 else 0),
        ("SYMBOL(node_data)", sym("node_data")),
        ("LENGTH(node_data)", p.max_numnodes),
        ("KERNELOFFSET", lay.kernel_offset),
        ("NUMBER(KERNEL_IMAGE_SIZE)", KERNEL_IMAGE_SIZE),
        ("NUMBER(sme_mask)", 0),
    ]
    return compose_vmcoreinfo(entries)


#: fixture layouts: "pages" (only the bytes the image holds, one PT_LOAD per run: small files),
#: "vmcore" (kdump /proc/vmcore: one PT_LOAD per System RAM range, sparse file, kdump p_vaddr),
#: "qemu" (dump-guest-memory without paging: the same ranges with p_vaddr = p_paddr),
#: "kdump" (the vmcore layout rewritten kdump-compressed, free memory excluded: vmemdbg.sim.kdump).
LAYOUTS = ("pages", "vmcore", "qemu", "kdump")


def ram_ranges(st: BootState) -> list[tuple[int, int]]:
    """System RAM ranges of the machine as /proc/iomem lists them: e820 usable entries, without
    the first page, which setup_arch marks reserved (arch/x86/kernel/setup.c:
    e820__range_update(0, PAGE_SIZE, E820_TYPE_RAM, E820_TYPE_RESERVED)), page aligned inwards,
    and the memory hot-added after boot (register_memory_resource, mm/memory_hotplug.c)."""
    out = []
    for e in st.machine.e820:
        if e.type == E820_RAM:
            a, b = max(e.start, PAGE_SIZE), e.end
            a, b = (a + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), b & ~(PAGE_SIZE - 1)
            if b > a:
                out.append((a, b))
    out += [(s << 12, e << 12) for s, e, _ in st.hotplug]
    return sorted(out)


def write_fixture(path: str | os.PathLike[str], st: BootState, dbg: DebugInfo, img: Image,
                  layout: str = "pages") -> str:
    """Write the ELF vmcore in ``layout`` (see :data:`LAYOUTS`); returns the VMCOREINFO text."""
    text = vmcoreinfo_text(st, dbg, img)
    img.chunks.append(utsname_chunk(st, dbg))
    lay = st.machine.layout
    image = (lay.image_phys, lay.image_phys + lay.image_size, ImageBuilder(st, dbg).kva(START_KERNEL))
    records = (img.page_phys, st.machine.profile.struct_page_size, (rows for _, rows in img.page_blocks()))
    if layout == "pages":
        write_elf_core(path, img.chunks, text.encode(), page_offset=lay.page_offset_base,
                       kernel_image=image, records=records)
    elif layout == "kdump":
        elf = Path(f"{os.fspath(path)}.elf-tmp")
        try:
            write_vmcore_layout(elf, ram_ranges(st), img.chunks, text.encode(), page_offset=lay.page_offset_base,
                                kernel_image=image, records=records)
            compress(elf, path)
        finally:
            elf.unlink(missing_ok=True)
    else:
        kdump = layout == "vmcore"
        write_vmcore_layout(path, ram_ranges(st), img.chunks, text.encode(),
                            page_offset=lay.page_offset_base if kdump else None,
                            kernel_image=image if kdump else None, records=records)
    return text
