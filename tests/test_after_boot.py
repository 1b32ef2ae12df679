"""After boot: hot-add, memmap_on_memory and HVO on real Debian 6.1 and 6.12 kernels.

The fixtures are minimal dumps of QEMU guests (tests/realkernel/boot.py cases ``hotplug``,
``memmap-on-memory``, ``hvo``; the last two are 5-level). Independent sources:

* truth.json: drgn 0.3 with the kernel's DWARF (tests/realkernel/drgn_truth.py): provenance per
  vmemmap page from for_each_hstate + HPageVmemmapOptimized, PageVmemmapSelfHosted and
  early_section; hugetlb folios with follow_phys of every vmemmap page; the memory_blocks xarray;
* serial.log: what the guest itself printed: /sys/devices/system/memory, /proc/vmstat,
  /proc/iomem, and the kernel's "HugeTLB: N KiB vmemmap can be freed" lines.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
from conftest import REAL, real_dump, rewrite_dump, run_cli, shared_kernel
from truthcmp import compare, engine_views

from vmemdbg import views
from vmemdbg.dump import open_dump
from vmemdbg.errors import VmemdbgError
from vmemdbg.kernel import Kernel
from vmemdbg.symbols import load_symbol_file

RELEASES = ("6.1", "6.12")
SCENARIOS = ("hotplug", "memmap-on-memory", "hvo")
CASES = [f"{r}-{s}" for r in RELEASES for s in SCENARIOS]
#: The mechanism every scenario's notes must name (besides the low-memory hole).
MECHANISM = {"hotplug": "hotplug", "memmap-on-memory": "self_hosted", "hvo": "hvo"}


def dump(case: str) -> Path:
    return REAL / case / "vmcore.elf"


def truth(case: str) -> dict:
    return json.loads((REAL / case / "truth.json").read_text())


@functools.cache
def kernel(case: str) -> Kernel:
    """One analysed fixture, shared by the read-only tests (edited copies get their own)."""
    return shared_kernel(case)


def guest_lines(case: str, key: str) -> list[str]:
    """The guest's last report of ``vmemdbg: KEY ...`` lines (after the hot-add, if any)."""
    text = (REAL / case / "serial.log").read_text(errors="replace")
    last = text[text.rindex("vmemdbg: block_size_bytes"):]
    return [line.split(f"vmemdbg: {key} ", 1)[1] for line in last.splitlines() if line.startswith(f"vmemdbg: {key} ")]


@pytest.mark.parametrize("case", CASES)
def test_views_and_provenance_equal_drgn_truth(case: str) -> None:
    """Every view, the provenance of every run, the HVO folios and the memory blocks equal drgn's."""
    t = truth(case)
    assert "provenance" in t["vmemmap_pages"]["runs"][0]
    assert compare(engine_views(kernel(case), t), t) == []


@pytest.mark.parametrize("case", CASES)
def test_paging_levels(case: str) -> None:
    """-cpu max has LA57: memmap-on-memory and hvo run 5-level; hotplug uses la57=off (4-level)."""
    levels = 4 if case.endswith("hotplug") else 5
    assert truth(case)["summary"]["kernel"]["pgtable_levels"] == levels
    assert kernel(case).pgtable_levels == levels
    assert kernel(case).vmemmap_base == {4: 0xFFFFEA0000000000, 5: 0xFFD4000000000000}[levels]


@pytest.mark.parametrize("case", CASES)
def test_healthy_guest_audits_clean_with_the_right_notes(case: str) -> None:
    doc = views.vmemmap(kernel(case))
    assert [a for a in doc["audit"] if a["severity"] == "anomaly"] == []
    mechs = {a["mechanism"] for a in doc["audit"]}
    # every x86 guest: 4 KiB of section 0's memmap describe the legacy hole below 1 MiB
    assert mechs == {"boot_section_hole", MECHANISM[case.split("-", 1)[1]]}
    low = [a for a in doc["audit"] if a["mechanism"] == "boot_section_hole"]
    assert len(low) == 1 and "section 0: 4 KiB" in low[0]["detail"] and "legacy hole below 1 MiB" in low[0]["detail"]
    assert doc["counts"]["anomalies"] == 0


@pytest.mark.parametrize("case", CASES)
def test_provenance_counts(case: str) -> None:
    """Hand-checked against the boot: 256 MiB DIMM on node 1 (2 sections, memmap 4 MiB from node 1's
    buddy), a 128 MiB DIMM with its 2 MiB memmap at its own start (0x100000000), 17 folios."""
    runs = views.vmemmap(kernel(case))["runs"]
    prov = {p: sum(r["end"] - r["start"] for r in runs if r["provenance"] == p) for p in ("hotplug", "self_hosted", "hvo")}
    scenario = case.split("-", 1)[1]
    if scenario == "hotplug":
        assert prov == {"hotplug": 4 << 20, "self_hosted": 0, "hvo": 0}
        assert {r["nid"] for r in runs if r["provenance"] == "hotplug"} == {1}
    elif scenario == "memmap-on-memory":
        assert prov == {"hotplug": 0, "self_hosted": 2 << 20, "hvo": 0}
        assert [r["phys"] for r in runs if r["provenance"] == "self_hosted"] == [0x100000000]
    else:  # one 1 GiB folio (4096 vmemmap pages) and sixteen 2 MiB folios (8 each)
        assert prov == {"hotplug": 0, "self_hosted": 0, "hvo": (4096 + 16 * 8) * 4096}


@pytest.mark.parametrize("case", CASES)
def test_memory_blocks_equal_the_guests_sysfs(case: str) -> None:
    """The memory-blocks view equals what the guest printed from /sys/devices/system/memory."""
    doc = views.memory_blocks(kernel(case))
    sysfs = []
    for line in guest_lines(case, "block"):
        m = re.match(r"(\d+) phys_index (\w+) state (\w+) nid (\d+) zones (\S+)", line)
        assert m, line
        sysfs.append((int(m.group(1)), int(m.group(2), 16), m.group(3), int(m.group(4)), m.group(5)))
    mine = [(b["phys_index"], b["phys_index"], b["state"], b["nid"], b["zone"]) for b in doc["blocks"]]
    assert mine == sorted(sysfs)
    hot = [b["phys_index"] for b in doc["blocks"] if not b["early"]]
    assert hot == {"hotplug": [32, 33], "memmap-on-memory": [32], "hvo": []}[case.split("-", 1)[1]]


def test_block_size_is_the_kernels() -> None:
    """block_size_bytes 8000000 in sysfs; "x86/mm: Memory block size: 128MB" in the log."""
    for case in CASES:
        assert views.memory_blocks(kernel(case))["block_size"] == int(guest_lines(case, "block_size_bytes")[0], 16)
        assert "x86/mm: Memory block size: 128MB" in (REAL / case / "serial.log").read_text(errors="replace")


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("6.12-")])
def test_overhead_reconciles_with_the_kernels_vmstat(case: str) -> None:
    """nr_memmap_pages / nr_memmap_boot_pages read from the dump equal /proc/vmstat in the guest and
    the census' frames by provenance (boot; hotplug + self_hosted + hvo)."""
    kc = views.vmemmap(kernel(case))["overhead"]["kernel_counters"]
    vmstat = dict(line.split() for line in guest_lines(case, "vmstat"))
    assert kc["available"]
    assert kc["nr_memmap_pages"] == int(vmstat["nr_memmap_pages"]) == kc["expected_pages"]
    assert kc["nr_memmap_boot_pages"] == int(vmstat["nr_memmap_boot_pages"]) == kc["expected_boot_pages"]


def test_counters_absent_before_6_11() -> None:
    kc = views.vmemmap(kernel("6.1-hvo"))["overhead"]["kernel_counters"]
    assert not kc["available"] and "added in 6.11" in kc["reason"]


@pytest.mark.parametrize("release", RELEASES)
def test_hvo_per_hstate_equals_the_kernels_log(release: str) -> None:
    """"HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page" (x16) and 16380 KiB for 1 GiB."""
    case = f"{release}-hvo"
    doc = views.vmemmap(kernel(case))
    log = (REAL / case / "serial.log").read_text(errors="replace")
    freed = {m.group(2): int(m.group(1)) for m in re.finditer(r"HugeTLB: (\d+) KiB vmemmap can be freed for a ([\d.]+ [GM]iB)", log)}
    hs = {h["hstate"]: h for h in doc["hvo"]["hstates"]}
    assert hs["2 MiB"]["folios"] == 16 and hs["1 GiB"]["folios"] == 1
    assert hs["2 MiB"]["saved_bytes"] == 16 * freed["2.00 MiB"] * 1024
    assert hs["1 GiB"]["saved_bytes"] == freed["1.00 GiB"] * 1024
    assert all(f["vmemmap_optimized_flag"] and not f["violations"] for f in doc["hvo"]["folios"])


def _pte(k: Kernel, va: int) -> tuple[int, int]:
    """(physical address of the PTE mapping ``va``, its value)."""
    step = k.translate(va).path[-1]
    assert step.level == "pte"
    return step.table + 8 * step.index, step.entry


@pytest.mark.parametrize("release", RELEASES)
def test_planted_writable_hvo_tail(release: str, tmp_path: Path) -> None:
    src = dump(f"{release}-hvo")
    k = kernel(f"{release}-hvo")
    folio = [f for f in views.vmemmap(k)["hvo"]["folios"] if f["order"] == 9][3]
    tail = folio["head_page"] + 3 * 4096
    addr, entry = _pte(k, tail)
    edited = rewrite_dump(src, tmp_path / "rw.elf", patch={addr: (entry | 2).to_bytes(8, "little")})
    anomalies = [a for a in views.vmemmap(Kernel(open_dump(edited)))["audit"] if a["severity"] == "anomaly"]
    assert [(a["kind"], a["start"]) for a in anomalies] == [("hvo_writable_tail", tail)]
    assert f"of the 2 MiB folio at pfn {folio['head_pfn']:#x} is writable" in anomalies[0]["detail"]


@pytest.mark.parametrize("release", RELEASES)
def test_planted_tail_aliased_to_the_wrong_page(release: str, tmp_path: Path) -> None:
    src = dump(f"{release}-hvo")
    k = kernel(f"{release}-hvo")
    small = [f for f in views.vmemmap(k)["hvo"]["folios"] if f["order"] == 9]
    victim, other = small[5], small[6]
    tail = victim["head_page"] + 6 * 4096
    addr, entry = _pte(k, tail)
    wrong = (entry & ~0x000FFFFFFFFFF000) | other["shared_page_phys"]
    edited = rewrite_dump(src, tmp_path / "alias.elf", patch={addr: wrong.to_bytes(8, "little")})
    anomalies = [a for a in views.vmemmap(Kernel(open_dump(edited)))["audit"] if a["severity"] == "anomaly"]
    assert [(a["kind"], a["start"]) for a in anomalies] == [("hvo_wrong_alias", tail)]
    assert f"maps {other['shared_page_phys']:#x}" in anomalies[0]["detail"]


@pytest.mark.parametrize("release", RELEASES)
def test_planted_offnode_hot_added_memmap(release: str, tmp_path: Path) -> None:
    """Move the memmap of the hot-added sections (node 1) onto node 0 memory: each PMD entry is
    pointed at a frame at 256 MiB (node 0's span, not otherwise in the dump) holding a copy of the
    pages it had. Node 1 had boot memory, so that is an anomaly."""
    src = dump(f"{release}-hotplug")
    k = kernel(f"{release}-hotplug")
    node0 = next(n for n in k.nodes if n["nid"] == 0)
    new_base = 0x10000000
    assert node0["start_pfn"] <= new_base >> 12 < node0["start_pfn"] + node0["spanned_pages"]
    assert all(end <= new_base or start >= new_base + (8 << 20) for start, end in k.source.ranges())
    hot = [r for r in views.vmemmap(k)["runs"] if r["provenance"] == "hotplug"]
    assert hot and {r["nid"] for r in hot} == {1}
    patch, add = {}, {}
    moved = 0
    for r in hot:
        for va in range(r["start"], r["end"], 2 << 20):  # one PMD leaf each
            pmd = next(st for st in k.translate(va).path if st.level == "pmd")
            old = pmd.entry & 0x000FFFFFFFE00000
            new = new_base + moved * (2 << 20)
            moved += 1
            patch[pmd.table + 8 * pmd.index] = ((pmd.entry & ~0x000FFFFFFFE00000) | new).to_bytes(8, "little")
            for off in range(0, 2 << 20, 4096):  # the pages of the old frame the dump holds
                try:
                    add[new + off] = k.read_phys(old + off, 4096)
                except VmemdbgError:
                    pass
    edited = rewrite_dump(src, tmp_path / "offnode.elf", patch=patch, add=add)
    anomalies = [a for a in views.vmemmap(Kernel(open_dump(edited)))["audit"] if a["severity"] == "anomaly"]
    assert [(a["kind"], a["start"], a["end"]) for a in anomalies] == [("offnode", hot[0]["start"], hot[-1]["end"])]
    assert "memmap of node 1 (pfn 0x100000-0x110000) backed by node 0 memory" in anomalies[0]["detail"]


def test_cli_memory_blocks_and_json_severity() -> None:
    out = run_cli("memory-blocks", dump("6.1-hotplug"), check=True).stdout
    assert "memory32  00000020    online  Normal  1    0x100000000  1         hot-added" in out
    assert "memory0   00000000    online  none    0    0x0          1         boot" in out
    js = json.loads(run_cli("vmemmap", "--json", dump("6.1-memmap-on-memory"), check=True).stdout)
    assert [(a["kind"], a["severity"], a["mechanism"]) for a in js["audit"]] == \
        [("hole_mapped", "note", "boot_section_hole"), ("self_hosted", "note", "self_hosted")]


def test_drgn_plugin_api() -> None:
    """The drgn plugin's memory_blocks / vmemmap on a drgn Program equal the CLI engine's views."""
    drgn = pytest.importorskip("drgn")
    from vmemdbg import drgn_plugin

    prog = drgn.Program()
    prog.set_core_dump(str(dump("6.1-hotplug")))
    assert drgn_plugin.memory_blocks(prog) == views.memory_blocks(kernel("6.1-hotplug"))
    assert drgn_plugin.vmemmap(prog)["runs"] == views.vmemmap(kernel("6.1-hotplug"))["runs"]


def test_hvo_version_quirks() -> None:
    """Where the folio order lives and how many vmemmap pages HVO keeps, by kernel (versions.py);
    the 6.1 (OFFSET(page.compound_order)) and 6.12 (folio->_flags_1) paths run on the real fixtures."""
    from vmemdbg.versions import KernelVersion, folio_order_location, hvo_reserved_pages, zones_shift

    v = KernelVersion.parse
    assert hvo_reserved_pages(v("5.17.0")) == 2 and hvo_reserved_pages(v("5.18.0")) == 1
    assert folio_order_location(v("6.1.0"), {"page_size": 64, "page.compound_order": 17})[:2] == (64 + 17, 0xFF)
    assert folio_order_location(v("6.5.0"), {"page_size": 64, "folio._folio_order": 89})[:2] == (89, 0xFF)
    assert folio_order_location(v("6.12.0"), {"page_size": 64})[:2] == (64, 0xFF)
    assert views.vmemmap(kernel("6.1-hvo"))["hvo"]["order_source"].startswith("page[1].compound_order")
    assert "folio->_flags_1" in views.vmemmap(kernel("6.12-hvo"))["hvo"]["order_source"]
    assert [zones_shift(n) for n in (1, 2, 3, 4, 5, 8)] == [0, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("release", RELEASES)
def test_planted_memmap_for_non_ram_in_a_hot_added_section(release: str, tmp_path: Path) -> None:
    """Shrink the hot-added "System RAM" resource by 16 MiB (struct resource.end in iomem_resource's
    child list): the last 256 KiB of mapped memmap of section 33 then describe pfns that are not RAM
    by the kernel's account, and a section added after boot has no whole-section excuse."""
    src = dump(f"{release}-hotplug")
    k = kernel(f"{release}-hotplug")
    ptr = k.read_u64(k.symbol("iomem_resource") + 56)
    while k.read_u64(ptr) != 0x100000000:
        ptr = k.read_u64(ptr + 48)
    assert k.read_u64(ptr + 8) == 0x10FFFFFFF
    edited = rewrite_dump(src, tmp_path / "ram.elf", patch={k.virt_to_phys(ptr + 8): (0x10EFFFFFF).to_bytes(8, "little")})
    anomalies = [a for a in views.vmemmap(Kernel(open_dump(edited)))["audit"] if a["severity"] == "anomaly"]
    assert [a["kind"] for a in anomalies] == ["hole_mapped"]
    assert anomalies[0]["detail"].startswith("section 33: 256 KiB of mapped memmap describe only pfns that are not RAM")


#: every committed real-kernel dump (fixtures/real/**/vmcore.elf[.xz]); 5.10 gets its System.map subset
ALL_REAL = sorted({str(p.parent.relative_to(REAL)) for p in REAL.glob("**/vmcore.elf*")})


@pytest.mark.parametrize("case", ALL_REAL)
def test_every_real_machine_audits_without_anomaly(case: str) -> None:
    """Healthy real boots (every kernel, hot-add, memmap_on_memory, HVO, 5-level): no anomaly, and
    every note names its mechanism."""
    symbols = load_symbol_file(REAL / "System.map-5.10.0-32-cloud-amd64.subset") if case.startswith("bullseye") \
        else None
    doc = views.vmemmap(shared_kernel(case) if symbols is None else Kernel(open_dump(real_dump(case)), symbols=symbols))
    assert [a for a in doc["audit"] if a["severity"] == "anomaly"] == []
    assert doc["audit"] and all(a["mechanism"] for a in doc["audit"])
    assert doc["unreadable"] == [] and doc["not_audited"] == []
