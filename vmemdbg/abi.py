"""x86-64 kernel ABI constants shared by the engine and the simulator.

Fixed numbers of the x86-64 kernel that every supported version shares: page and page-table
sizes, page-table entry bits, the kernel-image mapping, the default (non-KASLR) region bases,
sparsemem's section geometry, the low ``section_mem_map`` flag bits and the e820 types. What
changes between kernel versions lives in :mod:`vmemdbg.versions`, not here.
"""

from __future__ import annotations

# -- pages and page-table levels (arch/x86/include/asm/page_types.h, pgtable_64_types.h) ----------
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PMD_SHIFT = 21
PMD_SIZE = 1 << PMD_SHIFT
PUD_SHIFT = 30
PUD_SIZE = 1 << PUD_SHIFT
#: Table level names from the top, by paging depth.
LEVEL_NAMES = {4: ("pgd", "pud", "pmd", "pte"), 5: ("pgd", "p4d", "pud", "pmd", "pte")}

# -- page-table entry bits (arch/x86/include/asm/pgtable_types.h) --------------------------------
PAGE_PRESENT = 1 << 0
PAGE_RW = 1 << 1
PAGE_USER = 1 << 2
PAGE_ACCESSED = 1 << 5
PAGE_DIRTY = 1 << 6
#: Leaf at the PMD (2 MiB) or PUD (1 GiB) level.
PAGE_PSE = 1 << 7
PAGE_GLOBAL = 1 << 8
PAGE_NX = 1 << 63
#: PTE_PFN_MASK: the frame bits of a table entry or a 4 KiB leaf.
PTE_PFN_MASK = 0x000FFFFFFFFFF000
#: _PAGE_TABLE / _KERNPG_TABLE: what the kernel puts in a non-leaf entry (user or kernel-only).
PAGE_TABLE = PAGE_PRESENT | PAGE_RW | PAGE_USER | PAGE_ACCESSED | PAGE_DIRTY
KERNPG_TABLE = PAGE_PRESENT | PAGE_RW | PAGE_ACCESSED | PAGE_DIRTY
#: PAGE_KERNEL (4 KiB leaves), PAGE_KERNEL_LARGE (2 MiB / 1 GiB leaves) and its executable variant.
PAGE_KERNEL = PAGE_NX | PAGE_GLOBAL | KERNPG_TABLE
PAGE_KERNEL_LARGE = PAGE_KERNEL | PAGE_PSE
PAGE_KERNEL_LARGE_EXEC = PAGE_GLOBAL | PAGE_PSE | KERNPG_TABLE

# -- the kernel image mapping (arch/x86/include/asm/page_64_types.h) -----------------------------
#: ``__START_KERNEL_map``: the kernel image's virtual base.
START_KERNEL_MAP = 0xFFFFFFFF80000000
#: ``KERNEL_IMAGE_SIZE`` with CONFIG_RANDOMIZE_BASE: 1 GiB of image area above START_KERNEL_MAP.
KERNEL_IMAGE_SIZE = 1 << 30
#: CONFIG_PHYSICAL_START (x86-64 default, and every distro's): the link-time physical address of
#: ``_text``; ``__START_KERNEL = __START_KERNEL_map + CONFIG_PHYSICAL_START`` is its virtual one.
PHYSICAL_START = 0x1000000
START_KERNEL = START_KERNEL_MAP + PHYSICAL_START

# -- default (non-KASLR) region bases by paging depth (Documentation/arch/x86/x86_64/mm.rst) ------
DEFAULT_BASES: dict[int, dict[str, int]] = {
    4: {"page_offset_base": 0xFFFF888000000000, "vmalloc_base": 0xFFFFC90000000000,
        "vmemmap_base": 0xFFFFEA0000000000},
    5: {"page_offset_base": 0xFF11000000000000, "vmalloc_base": 0xFFA0000000000000,
        "vmemmap_base": 0xFFD4000000000000},
}

# -- sparsemem geometry (arch/x86/include/asm/sparsemem.h) ---------------------------------------
#: SECTION_SIZE_BITS: 128 MiB sections.
SECTION_SIZE_BITS = 27
#: MAX_PHYSMEM_BITS by paging depth: pgtable_l5_enabled() ? 52 : 46.
MAX_PHYSMEM_BITS = {4: 46, 5: 52}
#: Largest MAX_NUMNODES: 1 << CONFIG_NODES_SHIFT, which arch/x86/Kconfig limits to 10.
MAX_NUMNODES = 1 << 10

# -- section_mem_map flag bits common to every layout (include/linux/mmzone.h) -------------------
SECTION_MARKED_PRESENT = 1 << 0
SECTION_HAS_MEM_MAP = 1 << 1
SECTION_IS_ONLINE = 1 << 2
SECTION_IS_EARLY = 1 << 3

# -- e820 types (arch/x86/include/asm/e820/types.h) ----------------------------------------------
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4
E820_UNUSABLE = 5
E820_PMEM = 7
E820_PRAM = 12
E820_SOFT_RESERVED = 0xEFFFFFFF
E820_RESERVED_KERN = 128
