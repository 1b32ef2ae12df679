"""Version quirks (vmemdbg/versions.py) against the kernel headers they follow (docs/sparse-model.md)."""

from __future__ import annotations

import pytest

from vmemdbg.versions import USAGE_PLAIN, USAGE_RCU, KernelVersion, choose_section_flag_layout, choose_usage_layout


@pytest.mark.parametrize("release, zone_device, word, flags, map_mask, nid_shift", [
    # boot section word V|0xf on every layout; the 5.12-5.19 macro form always has TAINT at bit 4
    ("5.4.286", None, 0xFFFFEA000000000F, ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY"], ~0xF, 3),
    ("5.15.135", None, 0xFFFFEA000000001F,
     ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY", "TAINT_ZONE_DEVICE"], ~0x1F, 6),
    ("6.1.0-56-cloud-amd64", True, 0xFFFFEA0000000007, ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE"], ~0x1F, 5),
    # 6.0+ enum without ZONE_DEVICE: SECTION_MAP_LAST_BIT = 4, the nid stash shifts by 4
    ("6.6.87", False, 0xFFFFEA000000000B, ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_EARLY"], ~0xF, 4),
    # 6.15: IS_VMEMMAP_PREINIT at bit 5 with ZONE_DEVICE, bit 4 without
    ("6.15.0", True, 0xFFFFEA000000002F,
     ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY", "IS_VMEMMAP_PREINIT"], ~0x3F, 6),
    ("6.15.0", False, 0xFFFFEA000000001F,
     ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY", "IS_VMEMMAP_PREINIT"], ~0x1F, 5),
])
def test_section_flag_layouts(release: str, zone_device: bool | None, word: int, flags: list[str], map_mask: int,
                              nid_shift: int) -> None:
    lay, _ = choose_section_flag_layout(KernelVersion.parse(release), zone_device, word & 0x3F)
    assert lay.decode(word) == flags
    assert lay.map_mask == map_mask & (2**64 - 1) and lay.nid_shift == nid_shift
    assert word & lay.map_mask == 0xFFFFEA0000000000  # section_mem_map & MAP_MASK is vmemmap_base


def test_zone_device_inferred_from_a_tainted_section() -> None:
    lay, why = choose_section_flag_layout(KernelVersion.parse("6.6.0"), None, 0x1F)
    assert lay.name == "6.0" and "bit 4" in why


def test_usage_layout_evidence_order() -> None:
    v61 = KernelVersion.parse("6.1.0-56-amd64")
    assert choose_usage_layout(v61, [40, 40], 24)[0] is USAGE_RCU  # debug info wins
    assert choose_usage_layout(v61, [56, 56, 40])[0] is USAGE_RCU  # then the boot-array stride
    assert choose_usage_layout(v61, [40])[0] is USAGE_PLAIN
    lay, why = choose_usage_layout(v61, [])  # then the version, said to be an assumption
    assert lay is USAGE_PLAIN and "assumed" in why
    assert choose_usage_layout(KernelVersion.parse("6.8.0"), [])[0] is USAGE_RCU
    assert (USAGE_RCU.stride, USAGE_RCU.subsection_map, USAGE_RCU.pageblock_flags) == (56, 16, 24)
    assert (USAGE_PLAIN.stride, USAGE_PLAIN.subsection_map, USAGE_PLAIN.pageblock_flags) == (40, 0, 8)
