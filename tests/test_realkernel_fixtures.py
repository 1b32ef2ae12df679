"""Every view on the committed real-kernel fixtures equals drgn's truth, field by field.

The fixtures are minimal dumps (``vmemdbg extract``) of real Debian 6.1.0-56-cloud-amd64 boots
(fixtures/real/) and 6.12.107+deb12-cloud-amd64 boots (fixtures/real/6.12/, same three machines) under QEMU (tests/realkernel/); truth.json was computed by drgn 0.3's own helpers on the full
dump. Cases: 1 GiB nokaslr 4-level; 6 GiB two nodes, KASLR, q35; 1000 MiB 5-level (RAM ends
mid-section).
"""

from __future__ import annotations


import pytest
from conftest import REAL, cli_json, hexed, real_dump, real_truth, run_cli, shared_kernel
from truthcmp import compare, engine_views

from vmemdbg.dump import open_dump
from vmemdbg.errors import LayoutError
from vmemdbg.kernel import Kernel
from vmemdbg import views
from vmemdbg.symbols import load_system_map
from vmemdbg.mmzone import present_sections
from vmemdbg.vmemmap import vmemmap_mapping

SYSTEM_MAP = REAL / "System.map-6.1.0-56-cloud-amd64.subset"


def test_views_equal_drgn_truth(any_real_case: str) -> None:
    truth = real_truth(any_real_case)
    kernel = shared_kernel(any_real_case)
    assert compare(engine_views(kernel, truth), truth) == []


def test_truth_is_not_trivial(any_real_case: str) -> None:
    """Guard against an empty truth making the comparison vacuous."""
    truth = real_truth(any_real_case)
    assert truth["summary"]["counts"]["present"] >= 8
    assert truth["vmemmap_pages"]["runs"] and truth["explain"]


def test_kallsyms_decoding_matches_system_map(real_case: str) -> None:
    """Symbols decoded from the dump's own kallsyms equal the -dbg System.map plus KERNELOFFSET."""
    kernel = shared_kernel(real_case)
    smap = load_system_map(SYSTEM_MAP)
    for name, addr in smap.items():
        assert kernel.symbols[name] == addr + kernel.kaslr_offset, name


def test_system_map_override_gives_same_views() -> None:
    truth = real_truth("6g-2node-kaslr")
    kernel = Kernel(open_dump(real_dump("6g-2node-kaslr")), symbols=load_system_map(SYSTEM_MAP))
    assert compare(engine_views(kernel, truth), truth) == []


def test_known_layout_values() -> None:
    """Values read off the 6g boot's serial log (memblock=debug) and dmesg, not from drgn."""
    kernel = shared_kernel("6g-2node-kaslr")
    secs = present_sections(kernel)
    # "memblock_alloc_try_nid: 1344 bytes ... sparse_init_nid" then reserve [0x13ffd3ac0-...]: node-0 usage
    assert int(secs.usage[0]) - kernel.page_offset_base == 0x13FFD3AC0
    # 24 sections x 56 bytes = 1344: the rcu_head layout
    assert secs.usage_layout.stride == 56
    # "memblock_alloc_exact_nid_raw: 50331648 bytes ... reserve [0x13ce00000-0x13fdfffff]": node-0 buffer
    runs = vmemmap_mapping(kernel).leaves
    assert int(runs.phys[0]) == 0x13CE00000
    assert sorted(vmemmap_mapping(kernel).leaves.tables) == [0x13FFD1000, 0x13FFD2000]


@pytest.mark.parametrize("command", ["summary", "sections", "vmemmap", "explain"])
def test_cli_json_schema(command: str) -> None:
    extra = ["pfn:0x1000"] if command == "explain" else []
    doc = cli_json(command, real_dump("1000m"), *extra)
    truth = real_truth("1000m")
    assert doc["schema"] == "vmemdbg/2" and doc["command"] == command
    if command == "summary":
        for k in ("kaslr_offset", "page_offset_base", "vmemmap_base", "vmalloc_base"):
            assert doc["kernel"][k] == hexed(truth["summary"]["kernel"][k])
        for k in ("release", "pgtable_levels"):
            assert doc["kernel"][k] == truth["summary"]["kernel"][k]
        assert doc["kernel"]["pgtable_levels"] == 5
    elif command == "sections":
        first = doc["sections"][0]
        assert set(first) >= {"nr", "coded_mem_map", "mem_map", "start_pfn", "flags", "nid", "usage", "subsection_map"}
        assert first["flags"] == ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY"]
    elif command == "vmemmap":
        assert set(doc["runs"][0]) >= {"start", "end", "level", "writable", "phys", "nid"}
        assert doc["overhead"]["total"]["memmap_bytes"] == 8 << 21
    else:
        assert doc["pfn"] == 0x1000 and doc["leaf"] == "pmd"


def test_cli_text_output() -> None:
    out = run_cli("vmemmap", real_dump("1000m"), check=True).stdout
    assert "0xffd4000000000000  0xffd4000001000000  PMD" in out
    # RAM ends at 1000 MiB - 0x22000 reserved: 384 KiB of section 7's memmap describe no RAM, which is
    # the normal whole-section memmap of an early section: a note, not an anomaly
    assert "audit: 0 anomalies, 2 notes" in out
    assert ("note    boot_section_hole    0xffd4000000e00000-0xffd4000001000000  section 7: 384 KiB of mapped memmap "
            "describe only pfns that are not RAM (the end of RAM)") in out
    assert "section 0: 4 KiB of mapped memmap describe only pfns that are not RAM (the legacy hole below 1 MiB)" in out


def test_kallsyms_decoding_matches_drgn(real_case: str) -> None:
    """drgn's own vmlinux-less kallsyms loader, on the same minimal dump, agrees for every 7th symbol."""
    drgn = pytest.importorskip("drgn")
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    prog = drgn.Program()
    prog.set_core_dump(str(real_dump(real_case)))
    index = load_vmlinux_kallsyms(prog)
    mine = shared_kernel(real_case).symbols
    assert len(mine) > 80000
    for name, addr in list(mine.items())[::7]:
        assert addr in {s.address for s in index(prog, name, None, False)}, name


#: crash's STATE letters (memory.c, dump_mem_sections): Present, Mem map, Online, Early, Device.
CRASH_STATE = {"P": "MARKED_PRESENT", "M": "HAS_MEM_MAP", "O": "IS_ONLINE", "E": "IS_EARLY", "D": "TAINT_ZONE_DEVICE"}


def test_sections_equal_crash_kmem_n(real_case: str) -> None:
    """crash 8's ``kmem -n`` on the full dump (tests/realkernel/crash_truth.py) is a second oracle."""
    rows = (REAL / real_case / "crash-kmem-n.txt").read_text().splitlines()[1:]
    assert rows
    crash = [(int(nr), int(sec, 16), int(coded, 16), int(mm, 16), sorted(CRASH_STATE[c] for c in state), int(pfn))
             for nr, sec, coded, mm, state, pfn in (r.split() for r in rows)]
    kernel = shared_kernel(real_case)
    mask = present_sections(kernel).flag_layout.map_mask

    mine = [(s["nr"], s["section"], s["coded_mem_map"] & mask, s["mem_map"], sorted(s["flags"]), s["start_pfn"])
            for s in views.sections(kernel)["sections"]]
    assert mine == crash


def test_nr_to_section_equals_crash_kmem_n(real_case: str) -> None:
    """``Kernel.nr_to_section`` (one section, as gdb's $vmemdbg_pfn_to_section uses it) gives
    crash's SECTION column for every present section, and refuses a number past NR_MEM_SECTIONS."""
    rows = [r.split() for r in (REAL / real_case / "crash-kmem-n.txt").read_text().splitlines()[1:]]
    assert rows
    kernel = shared_kernel(real_case)
    assert [kernel.nr_to_section(int(r[0])) for r in rows] == [int(r[1], 16) for r in rows]
    with pytest.raises(LayoutError, match="outside NR_MEM_SECTIONS"):
        kernel.nr_to_section(kernel.nr_mem_sections)


def test_sections_text_columns_equal_crash_kmem_n(real_case: str) -> None:
    """The text table's NR, SECTION, CODED_MEM_MAP (masked with SECTION_MAP_MASK, as crash's
    section_mem_map_addr() does), MEM_MAP and PFN columns are crash's ``kmem -n`` columns; ``-v`` adds
    the raw word, flags included, and the flag names are the kernel's."""
    crash = [r.split() for r in (REAL / real_case / "crash-kmem-n.txt").read_text().splitlines()[1:]]
    text = run_cli("sections", real_dump(real_case), check=True).stdout.splitlines()
    head = text[0].split()
    assert head[:5] == ["NR", "SECTION", "CODED_MEM_MAP", "MEM_MAP", "PFN"]
    mine = [line.split() for line in text[1:]]
    assert [(int(r[0]), int(r[1], 16), int(r[2], 16), int(r[3], 16), int(r[4], 16)) for r in mine] == \
        [(int(nr), int(sec, 16), int(coded, 16), int(mm, 16), int(pfn)) for nr, sec, coded, mm, _, pfn in crash]
    assert {r[head.index("FLAGS")] for r in mine} == {"MARKED_PRESENT|HAS_MEM_MAP|IS_ONLINE|IS_EARLY"}
    verbose = run_cli("sections", "-v", real_dump(real_case), check=True).stdout.splitlines()
    raw = verbose[0].split().index("SECTION_MEM_MAP")
    words = {s["nr"]: s["coded_mem_map"] for s in real_truth(real_case)["sections"]}  # drgn: the raw word
    assert [int(line.split()[raw], 16) for line in verbose[1:1 + len(mine)]] == [words[int(r[0])] for r in mine]
    assert all(words[int(r[0])] & 0x1F == 0xF for r in mine)  # the raw word does carry the flags


def test_sections_nr_range() -> None:
    """``sections --nr 40-41``: node 1's first two sections, as drgn saw them."""
    rows = cli_json("sections", real_dump("6g-2node-kaslr"), "--nr", "40-41")["sections"]
    truth = {s["nr"]: s for s in real_truth("6g-2node-kaslr")["sections"]}
    assert [(r["nr"], r["mem_map"], r["usage"], r["nid"]) for r in rows] == \
        [(n, hexed(truth[n]["mem_map"]), hexed(truth[n]["usage"]), 1) for n in (40, 41)]
