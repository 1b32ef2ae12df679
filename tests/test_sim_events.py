"""Events after boot (docs/machine-format.md): the state the kernel leaves behind, read back by the
engine from the written fixture, and ``check`` explaining every change by its mechanism.

fixtures/machines/after-boot-2node.toml: a 6.12 two-node machine; hot-add of section 64 on node 1
(memmap from the page allocator), of section 65 with memmap_on_memory (then offlined), four 2 MiB
and one 1 GiB huge page with HVO.  Expected values follow the kernel source:

* hot-added sections are PRESENT | HAS_MEM_MAP (| ONLINE when onlined), never IS_EARLY
  (mm/sparse.c sparse_add_section / section_activate); their subsection map is full;
* memmap_on_memory: the memmap of a 128 MiB block is the 2 MiB at the block's own start
  (mm/sparse-vmemmap.c vmemmap_alloc_block_buf → altmap_alloc_block_buf);
* HVO (mm/hugetlb_vmemmap.c): the folio's vmemmap PMDs are split into PTEs; its first vmemmap page
  is RW, the other 7 (2 MiB) or 4095 (1 GiB) map that same frame read-only; on 6.12 that frame is
  a new page, on 6.1 the head's own frame.
"""

from __future__ import annotations

import contextlib
import io
import json
import tomllib
from pathlib import Path

import pytest

from vmemdbg import cli
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.vmemmap import vmemmap_mapping
from vmemdbg.sim import simulate
from vmemdbg.sim.machine import MachineError
from vmemdbg.sim.machine_format import machine_from_dict

ROOT = Path(__file__).resolve().parent.parent
MACHINE = ROOT / "fixtures" / "machines" / "after-boot-2node.toml"
SECTION = 1 << 27


def _run(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(list(argv))
    return rc, buf.getvalue()


@pytest.fixture(scope="module", params=["6.12", "6.1"])
def after_boot(request, tmp_path_factory):
    data = tomllib.loads(MACHINE.read_text())
    if request.param == "6.1":
        data["kernel"] = {"profile": "debian-6.1-cloud"}
        data["layout"]["image"] = "0x1000000-0x3810fff"
    out = tmp_path_factory.mktemp("ev") / "after.elf"
    r = simulate(machine_from_dict(data, "after-boot"), out)
    return request.param, r, Kernel(open_dump(out))


def test_hot_added_sections(after_boot) -> None:
    _, _, k = after_boot
    secs = present_sections(k)
    pos = {int(n): i for i, n in enumerate(secs.nr)}
    for nr, online in ((64, True), (65, False)):
        i = pos[nr]
        w = int(secs.word[i])
        assert w & 0xF == (0x1 | 0x2 | (0x4 if online else 0)), hex(w)       # never IS_EARLY
        assert int(secs.nid[i]) == 1 and int(secs.subsection_map[i]) == (1 << 64) - 1
        assert int(secs.usage[i]) != 0
    assert secs.highest_present == 65
    # the online hot-add grew node 1's span to the end of section 64, the offline one did not
    node1 = next(n for n in k.nodes if n["nid"] == 1)
    assert (node1["start_pfn"] + node1["spanned_pages"]) << 12 == 0x208000000


def test_memmap_on_memory_is_self_hosted(after_boot) -> None:
    _, _, k = after_boot
    va = k.vmemmap_base + 65 * (SECTION >> 12) * 64
    phys, ok = vmemmap_mapping(k).translate([va])
    assert ok[0] and int(phys[0]) == 65 * SECTION           # the block's first 2 MiB
    phys, ok = vmemmap_mapping(k).translate([va - (2 << 20)])       # section 64: page allocator, node 1
    assert ok[0] and 0x140000000 <= int(phys[0]) < 0x200000000 and int(phys[0]) >> 27 != 64


def test_hvo_shape(after_boot) -> None:
    series, r, k = after_boot
    lv = vmemmap_mapping(k).leaves
    folios = r.state.hugetlb
    assert [(size, nid) for _, size, nid, _ in folios] == [(2 << 20, 0)] * 4 + [(1 << 30, 1)]
    for folio, size, _, _ in folios:
        npages = (size >> 12) * 64 // 4096
        head = k.vmemmap_base + (folio >> 12) * 64
        i = int(lv.va.searchsorted(head))
        va = lv.va[i:i + npages].tolist()
        assert va == list(range(head, head + npages * 4096, 4096))
        assert lv.shift[i:i + npages].tolist() == [12] * npages
        assert lv.writable[i:i + npages].tolist() == [True] + [False] * (npages - 1)
        assert len(set(lv.phys[i:i + npages].tolist())) == 1
        if series == "6.1":   # the head keeps its frame: inside the node's sparse buffer
            assert int(lv.phys[i]) & 0x1FFFFF == (head & 0x1FFFFF)
        else:                 # a new page from the page allocator
            assert int(lv.phys[i]) & 0x1FFFFF != (head & 0x1FFFFF)


def test_check_explains_every_event(after_boot) -> None:
    _, r, _ = after_boot
    rc, out = _run("check", str(r.fixture), "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["consistent"], [d for d in doc["differences"] if not d["explained"]]
    mech = {(d["kind"], d["mechanism"], d["section"]) for d in doc["differences"]}
    assert ("section_extra", "hot-added after boot", 64) in mech
    assert ("section_extra", "hot-added after boot", 65) in mech
    assert ("vmemmap_extra", "hot-added after boot", 64) in mech
    assert ("vmemmap_extra", "memmap_on_memory (altmap)", 65) in mech
    hvo = [d for d in doc["differences"] if d["mechanism"] == "HVO remap"]
    assert len(hvo) == 1 + 8                                 # 4 x 2 MiB share one PMD; 1 GiB spans 8
    assert all(p["determined"] for p in doc["placement"].values())


def test_describe_recovers_hot_add(after_boot, tmp_path) -> None:
    _, r, _ = after_boot
    _, out = _run("describe", str(r.fixture), "--json")
    ev = json.loads(out)["machine"]["event"]
    assert ev == [{"kind": "hot-add", "range": "0x200000000-0x207ffffff", "node": 1, "memmap_on_memory": False,
                   "online": True},
                  {"kind": "hot-add", "range": "0x208000000-0x20fffffff", "node": 1, "memmap_on_memory": True,
                   "online": False}]


@pytest.mark.parametrize("event, field", [
    ({"kind": "hot-add", "range": "0x200000000-0x203ffffff", "node": 1}, "event[0].range"),
    ({"kind": "hot-add", "range": "0x200000000-0x207ffffff", "node": 7}, "event[0].node"),
    ({"kind": "hugetlb", "size": "4M"}, "event[0].size"),
    ({"kind": "reboot"}, "event[0].kind"),
])
def test_bad_event_named(event, field) -> None:
    data = tomllib.loads(MACHINE.read_text())
    data["event"] = [event]
    with pytest.raises(MachineError) as ei:
        machine_from_dict(data)
    assert str(ei.value).startswith(field + ":")


def test_hot_add_over_present_memory_refused(tmp_path) -> None:
    data = tomllib.loads(MACHINE.read_text())
    data["event"] = [{"kind": "hot-add", "range": "0x100000000-0x107ffffff", "node": 0}]
    with pytest.raises(MachineError, match="section 32 is already present"):
        simulate(machine_from_dict(data), None)


def test_folio_struct_pages_and_iomem(after_boot) -> None:
    """What an HVO/hot-add reader needs besides the page tables: each huge page's head has PG_head
    (NUMBER(PG_head_mask)) and HPG_vmemmap_optimized (bit 4 of page->private), page[1] holds the
    order (6.1: byte OFFSET(page.compound_order) = 17; 6.12: the low byte of page[1].flags); the
    hot-added ranges are "System RAM" children of iomem_resource (register_memory_resource)."""
    series, r, k = after_boot
    head_mask = k.info.number("PG_head_mask")
    for folio, size, _, _ in r.state.hugetlb:
        va = k.vmemmap_base + (folio >> 12) * 64
        head, tail = k.read(va, 64), k.read(va + 64, 64)
        assert int.from_bytes(head[:8], "little") & head_mask
        assert int.from_bytes(head[40:48], "little") == 1 << 4
        order = tail[17] if series == "6.1" else tail[0]
        assert order == (size >> 12).bit_length() - 1
    assert (k.info.offset("page.compound_order") == 17) == (series == "6.1")
    ptr = k.read_u64(k.symbols["iomem_resource"] + 56)
    ram = []
    while ptr:
        raw = k.read(ptr, 64)
        start, end, flags = (int.from_bytes(raw[o:o + 8], "little") for o in (0, 8, 24))
        assert flags & 0x01000000  # IORESOURCE_SYSRAM
        ram.append((start, end))
        ptr = int.from_bytes(raw[48:56], "little")
    assert ram[-2:] == [(0x200000000, 0x207FFFFFF), (0x208000000, 0x20FFFFFFF)]
    assert (0x100000000, 0x1FFFFFFFF) in ram


def test_altmap_frame_is_compared(after_boot, tmp_path) -> None:
    """The altmap determines the memmap_on_memory frame (the block's first 2 MiB): the same PMD
    pointed 2 MiB further into the hot-added block is one unexplained vmemmap_phys difference."""
    from conftest import rewrite_dump

    _, r, k = after_boot
    va = k.vmemmap_base + 65 * (SECTION >> 12) * 64
    step = next(s for s in k.translate(va).path if s.level == "pmd")
    entry = step.entry + (2 << 20)
    bad = rewrite_dump(r.fixture, tmp_path / "bad.elf", patch={step.table + 8 * step.index: entry.to_bytes(8, "little")})
    rc, out = _run("check", str(bad), "--json")
    doc = json.loads(out)
    unexplained = [d for d in doc["differences"] if not d["explained"]]
    assert rc == 1 and len(unexplained) == 1
    assert unexplained[0]["kind"] == "vmemmap_phys" and unexplained[0]["section"] == 65
    assert "the altmap of block 0x208000000 puts it at 0x208000000" in unexplained[0]["text"]


def test_hugetlb_events_from_cmdline() -> None:
    """describe turns the real HVO boot's command line (issue-10's scenario) into hugetlb events:
    hugepagesz= applies to the following hugepages= (mm/hugetlb.c), pages spread over the nodes."""
    from vmemdbg.sim.describe import _hugetlb_events

    line = ("console=ttyS0 memblock=debug nokaslr hugetlb_free_vmemmap=on hugepagesz=1G hugepages=1 "
            "hugepagesz=2M hugepages=16")
    assert _hugetlb_events(line, [0]) == [
        {"kind": "hugetlb", "size": "1G", "pages": 1, "node": 0, "free_vmemmap": True},
        {"kind": "hugetlb", "size": "2M", "pages": 16, "node": 0, "free_vmemmap": True}]
    assert _hugetlb_events("hugepages=3", [0, 1]) == [
        {"kind": "hugetlb", "size": "2M", "pages": 2, "node": 0, "free_vmemmap": False},
        {"kind": "hugetlb", "size": "2M", "pages": 1, "node": 1, "free_vmemmap": False}]


@pytest.mark.parametrize("layout", ["vmcore", "kdump"])
def test_hot_added_memory_in_dump_layouts(after_boot, layout, tmp_path) -> None:
    """The /proc/vmcore and kdump layouts hold the hot-added memory as System RAM (it is in
    /proc/iomem, register_memory_resource), so the machine with events writes in them too and
    every view equals the one of the page-run layout."""
    from vmemdbg import views
    from vmemdbg.elfcore import ElfCoreSource

    _, r, k = after_boot
    out = tmp_path / f"after.{layout}"
    simulate(r.machine, out, layout=layout)
    k2 = Kernel(open_dump(out))
    assert views.vmemmap(k2) == views.vmemmap(k) and views.sections(k2) == views.sections(k)
    if layout == "vmcore":  # one PT_LOAD per RAM range: the hot-added sections are one of them
        hot = {(s << 12, e << 12) for s, e, _ in r.state.hotplug}
        assert hot and hot <= {(a, b) for a, b, _, _ in ElfCoreSource(out).loads()}
