"""Every kernel-version quirk the engine knows, in one place.

Each table names the kernel commit that changed the layout. Decoders elsewhere ask this module
which layout applies and record *why* (shown by ``sections -v``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class KernelVersion:
    """``major.minor.patch`` parsed from OSRELEASE (Debian's ``6.1.0-56-amd64`` gives 6.1.0)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, release: str) -> "KernelVersion":
        """Parse the leading ``X.Y[.Z]`` of a release string; unknown formats give 0.0.0."""
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
        if not m:
            return cls(0, 0, 0)
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def at_least(self, major: int, minor: int) -> bool:
        """True if this is ``major.minor`` or later."""
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# ---------------------------------------------------------------------------------------------
# struct mem_section.section_mem_map flag bits (include/linux/mmzone.h)


@dataclass(frozen=True)
class SectionFlagLayout:
    """Flag bits of ``section_mem_map`` for one family of kernels."""

    name: str
    bits: tuple[tuple[str, int], ...]  # (name without SECTION_ prefix, bit value), in bit order
    map_mask: int  # SECTION_MAP_MASK
    nid_shift: int  # SECTION_NID_SHIFT (early-boot nid stash)
    origin: str

    def decode(self, word: int) -> list[str]:
        """Names of the flag bits set in ``word``."""
        return [n for n, b in self.bits if word & b]


_BASE = (("MARKED_PRESENT", 1), ("HAS_MEM_MAP", 2), ("IS_ONLINE", 4))
_EARLY = _BASE + (("IS_EARLY", 8),)
_M64 = (1 << 64) - 1

SECTION_FLAG_LAYOUTS: dict[str, SectionFlagLayout] = {
    "4.13": SectionFlagLayout("4.13", _BASE, _M64 ^ 0x7, 3, "macros; IS_ONLINE since 2d070eab2e82 (v4.13)"),
    "5.3": SectionFlagLayout("5.3", _EARLY, _M64 ^ 0xF, 3,
                             "IS_EARLY added by 326e1b8f83a4 (v5.3); NID_SHIFT 3 overlaps IS_EARLY"),
    "5.12": SectionFlagLayout("5.12", _EARLY + (("TAINT_ZONE_DEVICE", 0x10),), _M64 ^ 0x1F, 6,
                              "TAINT_ZONE_DEVICE added unconditionally by 1f90a3477df3 (v5.12)"),
    "6.0": SectionFlagLayout("6.0", _EARLY + (("TAINT_ZONE_DEVICE", 0x10),), _M64 ^ 0x1F, 5,
                             "enum form ed7802dd48f7 (v6.0), CONFIG_ZONE_DEVICE=y"),
    "6.0-nozd": SectionFlagLayout("6.0-nozd", _EARLY, _M64 ^ 0xF, 4,
                                  "enum form ed7802dd48f7 (v6.0), CONFIG_ZONE_DEVICE=n"),
    "6.15": SectionFlagLayout("6.15", _EARLY + (("TAINT_ZONE_DEVICE", 0x10), ("IS_VMEMMAP_PREINIT", 0x20)),
                              _M64 ^ 0x3F, 6,
                              "IS_VMEMMAP_PREINIT added by 'mm/sparse: allow for alternate vmemmap section init at boot' (v6.15), ZONE_DEVICE=y"),
    "6.15-nozd": SectionFlagLayout("6.15-nozd", _EARLY + (("IS_VMEMMAP_PREINIT", 0x10),), _M64 ^ 0x1F, 5,
                                   "v6.15 enum with IS_VMEMMAP_PREINIT, CONFIG_ZONE_DEVICE=n"),
}


def choose_section_flag_layout(version: KernelVersion, zone_device: bool | None,
                               words_or: int) -> tuple[SectionFlagLayout, str]:
    """Pick the flag layout for ``version``.

    ``zone_device`` is CONFIG_ZONE_DEVICE when known (debug info), else None. ``words_or`` is the
    OR of the low 6 bits of every section word: a set bit 4 on 6.0–6.14 proves ZONE_DEVICE=y.
    """
    if version.at_least(6, 15):
        fam = "6.15"
    elif version.at_least(6, 0):
        fam = "6.0"
    elif version.at_least(5, 12):
        return SECTION_FLAG_LAYOUTS["5.12"], f"kernel {version} is 5.12–5.19: macro layout with TAINT_ZONE_DEVICE"
    elif version.at_least(5, 3):
        return SECTION_FLAG_LAYOUTS["5.3"], f"kernel {version} is 5.3–5.11"
    else:
        return SECTION_FLAG_LAYOUTS["4.13"], f"kernel {version} is before 5.3"
    if zone_device is None:
        if fam == "6.0" and words_or & 0x10:
            zone_device, why = True, "a section word has bit 4 set (TAINT_ZONE_DEVICE)"
        else:
            zone_device, why = True, "CONFIG_ZONE_DEVICE assumed =y (every distro config; no debug info to check)"
    else:
        why = f"CONFIG_ZONE_DEVICE={'y' if zone_device else 'n'} from debug info"
    name = fam if zone_device else fam + "-nozd"
    return SECTION_FLAG_LAYOUTS[name], f"kernel {version} uses the {fam}+ enum layout; {why}"


# ---------------------------------------------------------------------------------------------
# struct mem_section_usage (include/linux/mmzone.h)


@dataclass(frozen=True)
class UsageLayout:
    """Offsets inside ``struct mem_section_usage``; usemap_size() is 32 bytes on x86-64."""

    name: str
    subsection_map: int
    pageblock_flags: int
    struct_size: int

    @property
    def stride(self) -> int:
        """mem_section_usage_size(): boot-time usage arrays advance by this much per section."""
        return self.struct_size + 32


USAGE_PLAIN = UsageLayout("plain", 0, 8, 8)
USAGE_RCU = UsageLayout("rcu_head", 16, 24, 24)


def choose_usage_layout(version: KernelVersion, strides: list[int],
                        struct_size: int | None = None) -> tuple[UsageLayout, str]:
    """Pick the usage layout.

    The 16-byte ``rcu_head`` came with 5ec8e8ea8b77 ("mm/sparsemem: fix race in accessing
    memory_section->usage", v6.8) and was backported to 5.10/5.15/6.1/6.6 stable in 2024, so the
    version alone cannot tell. ``strides`` are the distances between the usage pointers of
    consecutive sections of one boot group: 56 means rcu_head, 40 means none. Debug info, when a
    debugger has it, settles it directly (``struct_size``).
    """
    if struct_size in (USAGE_RCU.struct_size, USAGE_PLAIN.struct_size):
        lay = USAGE_RCU if struct_size == USAGE_RCU.struct_size else USAGE_PLAIN
        return lay, f"sizeof(struct mem_section_usage) = {struct_size} from debug info"
    counts = {s: strides.count(s) for s in set(strides)}
    if counts.get(56, 0) > counts.get(40, 0):
        return USAGE_RCU, f"boot usage arrays have a 56-byte stride ({counts[56]} pairs): rcu_head present"
    if counts.get(40, 0):
        return USAGE_PLAIN, f"boot usage arrays have a 40-byte stride ({counts[40]} pairs): no rcu_head"
    if version.at_least(6, 8):
        return USAGE_RCU, f"kernel {version} ≥ 6.8 has the rcu_head (no stride evidence)"
    return USAGE_PLAIN, f"kernel {version} < 6.8 and no stride evidence: assumed no rcu_head backport"


# ---------------------------------------------------------------------------------------------
# Pageblock migratetypes (include/linux/mmzone.h enum migratetype, mm/page_alloc.c
# migratetype_names). Bits 0-2 of each 4-bit pageblock group (NR_PAGEBLOCK_BITS = 4, 5.4–6.15).

MIGRATETYPE_NAMES: tuple[str, ...] = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
"""Names with CONFIG_CMA=y and CONFIG_MEMORY_ISOLATION=y (distro configs)."""

NR_PAGEBLOCK_BITS = 4
MIGRATETYPE_MASK = 0x7


def migratetype_name(value: int) -> str:
    """Name of a migratetype value (``"?N"`` for values outside the enum)."""
    return MIGRATETYPE_NAMES[value] if value < len(MIGRATETYPE_NAMES) else f"?{value}"


# ---------------------------------------------------------------------------------------------
# memblock (include/linux/memblock.h) and system_state (include/linux/kernel.h)

MEMBLOCK_FLAGS: tuple[tuple[str, int], ...] = (
    ("HOTPLUG", 0x1), ("MIRROR", 0x2), ("NOMAP", 0x4),
    ("DRIVER_MANAGED", 0x8),  # 5.16
    ("RSRV_NOINIT", 0x10),  # 6.7
    ("RSRV_KERN", 0x20), ("KHO_SCRATCH", 0x40),  # ~6.16 (KHO series)
)


def system_state_names(version: KernelVersion) -> list[str]:
    """``enum system_states``; SYSTEM_FREEING_INITMEM was added between 5.15 and 6.1."""
    names = ["BOOTING", "SCHEDULING"]
    if version.at_least(6, 0):
        names.append("FREEING_INITMEM")
    return names + ["RUNNING", "HALT", "POWER_OFF", "RESTART", "SUSPEND"]


# ---------------------------------------------------------------------------------------------
# x86-64 constants (arch/x86/include/asm/*)


@dataclass(frozen=True)
class X86Defaults:
    """Default (non-KASLR) bases by paging level (Documentation/arch/x86/x86_64/mm.rst)."""

    page_offset_base: dict[int, int] = field(default_factory=lambda: {4: 0xFFFF888000000000, 5: 0xFF11000000000000})
    vmalloc_base: dict[int, int] = field(default_factory=lambda: {4: 0xFFFFC90000000000, 5: 0xFFA0000000000000})
    vmemmap_base: dict[int, int] = field(default_factory=lambda: {4: 0xFFFFEA0000000000, 5: 0xFFD4000000000000})


X86 = X86Defaults()
START_KERNEL_MAP = 0xFFFFFFFF80000000
KERNEL_IMAGE_SIZE = 1 << 30
#: Largest MAX_NUMNODES of x86-64: 1 << CONFIG_NODES_SHIFT, which arch/x86/Kconfig limits to 10.
MAX_NUMNODES = 1 << 10
