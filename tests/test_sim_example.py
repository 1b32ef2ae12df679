"""docs/worked-example.md: the simulator must reproduce the 6.1.192 placements observed on real boots exactly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vmemdbg.sim import simulate
from vmemdbg.sim.machine_format import load_machine, machine_from_dict

MACHINE = Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "q35-2node-8g.toml"
V4 = 0xFFFFEA0000000000
V5 = 0xFFD4000000000000


def _alloc(r, what):
    hits = [a for a in r.allocations if a.what == what]
    assert len(hits) == 1, what
    return hits[0]


@pytest.fixture(scope="module")
def r4():
    return simulate(MACHINE, None)


@pytest.fixture(scope="module")
def r5():
    d = tomllib.loads(MACHINE.read_text())
    d["kernel"]["paging_levels"] = 5
    return simulate(machine_from_dict(d), None)


def test_memblock_memory_after_numa(r4):
    # docs/worked-example.md#machine: memblock.memory after NUMA setup
    assert [(b, s, n) for b, s, _, n in r4.memblock_regions("memory")] == [
        (0x1000, 0x9E000, 0), (0x100000, 0x7FEDF000, 0),
        (0x100000000, 0x80000000, 0), (0x180000000, 0x100000000, 1)]


def test_present_sections_and_groups(r4):
    # docs/worked-example.md#sections
    assert r4.present_sections.tolist() == list(range(16)) + list(range(32, 80))
    assert r4.state.sparse.highest_present == 79
    assert list(r4.state.sparse.roots) == [0]
    g = [(x.nid, x.pnum_begin, x.pnum_end, len(x.sections)) for x in r4.state.sparse.groups]
    assert g == [(0, 0, 48, 32), (1, 48, 80, 32)]


def test_allocation_sequence_4level(r4):
    # docs/worked-example.md#allocations table, rows 0-8
    direct = [a.result for a in r4.allocations if a.what.startswith("direct-map")]
    assert direct == [0x27FFFF000, 0x27FFFE000]
    assert r4.node_data == {0: 0x17FFD5000, 1: 0x27FFD3000}
    assert _alloc(r4, "NODE_DATA(0)").size == 0x2B000
    roots = _alloc(r4, "mem_section roots array")
    assert (roots.size, roots.align, roots.nid, roots.result) == (32768, 64, -1, 0x27FFCB000)
    assert r4.roots_addr == 0xFFFF88827FFCB000
    root = _alloc(r4, "mem_section root 0")
    assert (root.size, root.align, root.nid, root.result) == (4096, 64, 0, 0x17FFD4000)
    u0 = _alloc(r4, "usage array node 0")
    assert (u0.size, u0.align, u0.min_addr, u0.max_addr, u0.nid, u0.result) == \
        (1792, 64, 0x178000000, 0x180000000, 0, 0x17FFD3900)
    b0 = _alloc(r4, "sparse buffer node 0")
    assert (b0.size, b0.align, b0.min_addr, b0.exact_nid, b0.result) == (64 << 20, 2 << 20, 16 << 20, True, 0x17BE00000)
    assert [(p, lvl, n) for p, lvl, n in r4.vmemmap_tables] == [(0x17FFD2000, "pud", 0), (0x17FFD1000, "pmd", 0)]
    u1 = _alloc(r4, "usage array node 1")
    assert (u1.min_addr, u1.max_addr, u1.result) == (0x278000000, 0x280000000, 0x27FFCA900)
    assert _alloc(r4, "sparse buffer node 1").result == 0x27BE00000
    # step order of docs/worked-example.md#allocations: roots, root, usage0, buffer0, PUD, PMD, usage1, buffer1
    order = [a.what for a in r4.allocations if a.what and not a.what.startswith(("direct", "real", "init_mem", "NODE"))]
    assert order == ["mem_section roots array", "mem_section root 0", "usage array node 0", "sparse buffer node 0",
                     "vmemmap pud table", "vmemmap pmd table", "usage array node 1", "sparse buffer node 1"]


def test_section_backing_frames(r4):
    # docs/worked-example.md#vmemmap: section -> backing frame, mappings
    pmd = r4.vmemmap_pmd_leaves
    assert len(pmd) == 64 and not r4.vmemmap_pte_leaves and not r4.vmemmap_not_from_buffer
    for sec in range(16):
        assert pmd[V4 + sec * 0x200000] == 0x17BE00000 + sec * 0x200000
    for sec in range(32, 48):
        assert pmd[V4 + sec * 0x200000] == 0x17DE00000 + (sec - 32) * 0x200000
    for sec in range(48, 80):
        assert pmd[V4 + sec * 0x200000] == 0x27BE00000 + (sec - 48) * 0x200000
    assert pmd[V4 + 47 * 0x200000] == 0x17FC00000 and pmd[V4 + 48 * 0x200000] == 0x27BE00000
    for sec in range(16, 32):
        assert V4 + sec * 0x200000 not in pmd
    pt = r4.state.pagetables
    assert pt.get(pt.top, 468) == 0x17FFD2000 | 0x67
    assert pt.get(0x17FFD2000, 0) == 0x17FFD1000 | 0x67
    assert pt.get(0x17FFD1000, 47) == 0x800000017FC001E3
    assert pt.get(0x17FFD1000, 48) == 0x800000027BE001E3


def test_section_words_and_usage(r4):
    # docs/worked-example.md#vmemmap: every boot section word is V|0xf; usage pointers node0/node1 + 56k
    for k, sec in enumerate(list(range(16)) + list(range(32, 48))):
        s = r4.section(sec)
        assert s["word"] == 0xFFFFEA000000000F
        assert s["usage"] == 0xFFFF88817FFD3900 + 56 * k
    for k, sec in enumerate(range(48, 80)):
        assert r4.section(sec)["usage"] == 0xFFFF88827FFCA900 + 56 * k
    assert int(r4.state.sparse.words[16]) == 0


def test_overhead(r4):
    # docs/worked-example.md#overhead: 64 x 2 MiB memmap, 8 KiB page tables, nothing freed by sparse_buffer_fini
    assert sum(1 for _ in r4.vmemmap_pmd_leaves) * (2 << 20) == 128 << 20
    assert len(r4.vmemmap_tables) * 4096 == 8192
    assert not any(line.startswith("memblock_phys_free") and "sparse_buffer" in line for line in r4.trace)
    reserved = r4.memblock_regions("reserved")
    assert (0x17BE00000, 0x4000000, 0, 1024) in reserved  # buffer stays reserved, not merged with tables


def test_five_level_variant(r5):
    # docs/worked-example.md#variants
    roots = _alloc(r5, "mem_section roots array")
    assert (roots.size, roots.result) == (2 << 20, 0x27FDD3000)
    assert roots.result + roots.size - 1 == 0x27FFD2FFF
    assert _alloc(r5, "usage array node 1").result == 0x27FDD2900
    assert _alloc(r5, "sparse buffer node 1").result == 0x27BC00000
    assert _alloc(r5, "sparse buffer node 0").result == 0x17BE00000
    assert [(p, lvl) for p, lvl, _ in r5.vmemmap_tables] == [(0x17FFD2000, "p4d"), (0x17FFD1000, "pud"), (0x17FFD0000, "pmd")]
    assert r5.vmemmap_pmd_leaves[V5] == 0x17BE00000
    assert r5.vmemmap_pmd_leaves[V5 + 48 * 0x200000] == 0x27BC00000
    assert r5.node_data == {0: 0x17FFD5000, 1: 0x27FFD3000}


def test_machine_file_loads():
    m = load_machine(MACHINE)
    assert m.layout.phys_base == 0 and m.nr_section_roots == 4096
