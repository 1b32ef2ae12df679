"""The engine on simulated fixtures: the worked example's values (docs/worked-example.md) and every audit kind.

The expected numbers are copied from docs/worked-example.md (observed on real boots of Debian
6.1.192), not from the simulator's own record: this checks simulator and engine together against
an independent source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, rewrite_dump

from vmemdbg import views
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.sim import simulate
from vmemdbg.vmemmap import vmemmap_mapping

MACHINES = ROOT / "fixtures" / "machines"


def sim_kernel(tmp_path_factory: pytest.TempPathFactory, machine: str) -> tuple[Kernel, Path]:
    d = tmp_path_factory.mktemp(machine)
    r = simulate(MACHINES / f"{machine}.toml", d / "core.elf")
    return Kernel(open_dump(r.fixture)), Path(r.fixture)


@pytest.fixture(scope="module")
def q35(tmp_path_factory: pytest.TempPathFactory) -> Kernel:
    return sim_kernel(tmp_path_factory, "q35-2node-8g")[0]


def test_section_words_usage_and_roots(q35: Kernel) -> None:
    """docs/worked-example.md#sections, #allocations, #vmemmap: 64 present sections 0-15, 32-79; words V|0xf; usage arrays; roots."""
    doc = views.sections(q35)
    secs = doc["sections"]
    assert [s["nr"] for s in secs] == list(range(16)) + list(range(32, 80))
    assert {s["coded_mem_map"] for s in secs} == {0xFFFFEA000000000F}
    assert [s["usage"] for s in secs[:32]] == [0xFFFF88817FFD3900 + 56 * k for k in range(32)]
    assert [s["usage"] for s in secs[32:]] == [0xFFFF88827FFCA900 + 56 * k for k in range(32)]
    assert {s["subsection_map"] for s in secs} == {0xFFFFFFFFFFFFFFFF}
    assert [s["nid"] for s in secs] == [0] * 32 + [1] * 32
    s = views.summary(q35)
    assert s["sparse"]["roots_addr"] == 0xFFFF88827FFCB000
    assert s["counts"]["highest_present"] == 79 and s["sparse"]["roots_present"] == 1


def test_vmemmap_runs_and_overhead(q35: Kernel) -> None:
    """docs/worked-example.md#vmemmap, #overhead: three runs of PMD leaves, 128 MiB memmap, 8 KiB of page tables."""
    doc = views.vmemmap(q35)
    runs = [(r["start"], r["end"], r["level"], r["phys"], r["nid"]) for r in doc["runs"]]
    assert runs == [
        (0xFFFFEA0000000000, 0xFFFFEA0002000000, "pmd", 0x17BE00000, 0),
        (0xFFFFEA0004000000, 0xFFFFEA0006000000, "pmd", 0x17DE00000, 0),
        (0xFFFFEA0006000000, 0xFFFFEA000A000000, "pmd", 0x27BE00000, 1),
    ]
    assert doc["counts"]["pmd_leaves"] == 64 and doc["counts"]["pte_leaves"] == 0
    assert doc["overhead"]["total"] == {"memmap_bytes": 128 << 20, "pagetable_bytes": 8 << 10,
                                        "by_provenance": {"boot": 128 << 20, "hotplug": 0, "self_hosted": 0, "hvo": 0}}
    assert sorted(vmemmap_mapping(q35).leaves.tables) == [0x17FFD1000, 0x17FFD2000]
    assert {r["provenance"] for r in doc["runs"]} == {"boot"}
    # only the legacy hole below 1 MiB (e820: 0x9fc00-0xfffff not RAM), a note of an early section
    assert [(a["kind"], a["severity"], a["mechanism"]) for a in doc["audit"]] == \
        [("hole_mapped", "note", "boot_section_hole")]


def test_pmd_entries(q35: Kernel) -> None:
    """docs/worked-example.md#vmemmap: PMD for section 47 = 0x800000017fc001e3, section 48 = 0x800000027be001e3; PGD 468."""
    e47 = views.explain(q35, f"pfn:{47 << 15:#x}")
    e48 = views.explain(q35, f"pfn:{48 << 15:#x}")
    assert e47["path"][-1]["entry"] == 0x800000017FC001E3 and e47["leaf"] == "pmd"
    assert e48["path"][-1]["entry"] == 0x800000027BE001E3
    assert e47["path"][0]["index"] == 468 and e47["path"][0]["entry"] & 0xFFF == 0x067


def test_direct_map_uses_1g_leaves(q35: Kernel) -> None:
    """docs/worked-example.md#machine: the CPU has GB pages, so the direct map is PUD (1 GiB) leaves."""
    t = q35.translate(q35.page_offset_base + 0x123456789)
    assert t.leaf == "pud" and t.phys == 0x123456789


def test_five_level_variant(tmp_path_factory: pytest.TempPathFactory) -> None:
    """docs/worked-example.md#variants: 5-level moves the node-1 buffer down one 2 MiB step; P4D/PUD/PMD pages on node 0."""
    src = (MACHINES / "q35-2node-8g.toml").read_text().replace("paging_levels = 4", "paging_levels = 5")
    d = tmp_path_factory.mktemp("l5")
    (d / "m.toml").write_text(src)
    k = Kernel(open_dump(simulate(d / "m.toml", d / "core.elf").fixture))
    assert k.pgtable_levels == 5 and k.vmemmap_base == 0xFFD4000000000000
    runs = views.vmemmap(k)["runs"]
    assert runs[-1]["phys"] == 0x27BC00000 and runs[0]["phys"] == 0x17BE00000
    assert sorted(vmemmap_mapping(k).leaves.tables) == [0x17FFD0000, 0x17FFD1000, 0x17FFD2000]


def test_audit_offnode(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Node 1 owns 2 MiB: its exact-nid sparse buffer fails and the PMD comes from node 0."""
    k, _ = sim_kernel(tmp_path_factory, "offnode-tiny-node1")
    off = [a for a in views.vmemmap(k)["audit"] if a["kind"] == "offnode"]
    assert off == [{"kind": "offnode", "severity": "anomaly", "mechanism": None,
                    "start": 0xFFFFEA0006000000, "end": 0xFFFFEA0006200000,
                    "detail": "memmap of node 1 (pfn 0x180000-0x188000) backed by node 0 memory at 0x17bc00000"}]


def test_audit_pte_fallback_and_unmapped_subsection(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Section 70's 2 MiB block allocation fails (injected): 512 PTEs; then clear one PTE."""
    k, path = sim_kernel(tmp_path_factory, "kaslr-3node-5level")
    audit = views.vmemmap(k)["audit"]
    fb = [a for a in audit if a["kind"] == "pte_fallback"]
    start = k.vmemmap_base + (70 << 15) * 64
    assert [(a["start"], a["end"]) for a in fb] == [(start, start + (2 << 20))]
    assert "section 70" in fb[0]["detail"] and "512 4 KiB PTEs" in fb[0]["detail"]
    # Subsection 3 of section 70 starts 3 * 32 KiB into its memmap: clear the PTE there.
    step = k.translate(start + 3 * (32 << 10)).path[-1]
    broken = rewrite_dump(path, path.with_name("broken.elf"), patch={step.table + 8 * step.index: bytes(8)})
    k2 = Kernel(open_dump(broken))
    un = [a for a in views.vmemmap(k2)["audit"] if a["kind"] == "subsection_unmapped"]
    assert len(un) == 1 and "section 70: valid subsections [3]" in un[0]["detail"]


def test_audit_hvo_split_without_hugetlb_folio(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Edit section 32's PMD the way HVO (mm/hugetlb_vmemmap.c, 6.1) does for one 2 MiB hugetlb
    page: split into 512 PTEs, PTE[1..7] pointing read-only (0x...161) at PTE[0]'s frame -- but
    the struct page there is no hugetlb head (the simulator writes none), so these read-only
    aliases are an anomaly (``hvo_orphan``), reported once and not again as ``aliased``."""
    k, path = sim_kernel(tmp_path_factory, "q35-2node-8g")
    va = k.vmemmap_base + (32 << 15) * 64
    pmd = k.translate(va).path[-1]
    base = pmd.entry & 0x000FFFFFFFE00000
    ptes = [base + i * 4096 | 0x8000000000000163 for i in range(512)]
    ptes[1:8] = [base | 0x8000000000000161] * 7
    table = 0x50000  # a free low page for the new PTE table
    edited = rewrite_dump(path, path.with_name("hvo.elf"), add={table: b"".join(p.to_bytes(8, "little") for p in ptes)},
                          patch={pmd.table + 8 * pmd.index: (table | 0x67).to_bytes(8, "little")})
    doc = views.vmemmap(Kernel(open_dump(edited)))
    anomalies = [a for a in doc["audit"] if a["severity"] == "anomaly"]
    assert [a["kind"] for a in anomalies] == ["hvo_orphan"]
    assert (anomalies[0]["start"], anomalies[0]["end"]) == (va, va + (2 << 20))
    assert anomalies[0]["detail"].startswith("7 read-only vmemmap PTEs that belong to no HVO-optimised hugetlb folio")
    assert doc["hvo"]["folios"] == []
    ro = [r for r in doc["runs"] if not r["writable"]]
    assert [(r["start"], r["end"], r["level"], r["phys"], r["provenance"]) for r in ro] == \
        [(va + 4096 * i, va + 4096 * (i + 1), "pte", base, "hvo") for i in range(1, 8)]
    # the aliased frames are counted once in the memmap overhead: 128 MiB - 7 pages
    assert doc["overhead"]["total"]["memmap_bytes"] == (128 << 20) - 7 * 4096
