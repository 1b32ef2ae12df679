"""x86-64 kernel ABI constants shared by the engine and the simulator.

Fixed numbers of the x86-64 kernel that every supported version shares: page and page-table
sizes, page-table entry bits, the kernel-image mapping, the default (non-KASLR) region bases,
sparsemem's section geometry and the low ``section_mem_map`` flag bits. Version-dependent
layouts live in :mod:`vmemdbg.versions`, not here.
"""

from __future__ import annotations

# -- pages and page-table levels (arch/x86/include/asm/page_types.h, pgtable_64_types.h) ----------
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PMD_SHIFT = 21
PMD_SIZE = 1 << PMD_SHIFT
PUD_SHIFT = 30
PUD_SIZE = 1 << PUD_SHIFT

# -- the kernel image mapping (arch/x86/include/asm/page_64_types.h) -----------------------------
#: ``__START_KERNEL_map``: the kernel image's virtual base.
START_KERNEL_MAP = 0xFFFFFFFF80000000
#: ``KERNEL_IMAGE_SIZE`` with CONFIG_RANDOMIZE_BASE: 1 GiB of image area above START_KERNEL_MAP.
KERNEL_IMAGE_SIZE = 1 << 30

# -- default (non-KASLR) region bases by paging depth (Documentation/arch/x86/x86_64/mm.rst) ------
PAGE_OFFSET_BASE_DEFAULT = {4: 0xFFFF888000000000, 5: 0xFF11000000000000}
VMALLOC_BASE_DEFAULT = {4: 0xFFFFC90000000000, 5: 0xFFA0000000000000}
VMEMMAP_BASE_DEFAULT = {4: 0xFFFFEA0000000000, 5: 0xFFD4000000000000}

# -- sparsemem geometry (arch/x86/include/asm/sparsemem.h) ---------------------------------------
#: SECTION_SIZE_BITS: 128 MiB sections.
SECTION_SIZE_BITS = 27
#: MAX_PHYSMEM_BITS with 4-level and 5-level paging.
MAX_PHYSMEM_BITS = {4: 46, 5: 52}

# -- section_mem_map flag bits common to every layout (include/linux/mmzone.h) -------------------
SECTION_MARKED_PRESENT = 1 << 0
SECTION_HAS_MEM_MAP = 1 << 1
SECTION_IS_ONLINE = 1 << 2
SECTION_IS_EARLY = 1 << 3
