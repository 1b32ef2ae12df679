"""The engine's JSON views (docs/json.md) of a simulated fixture equal the replay record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmemdbg import cli
from vmemdbg.jsonout import decode
from vmemdbg.sim import simulate

MACHINES = Path(__file__).resolve().parent.parent / "fixtures" / "machines"


def _json(capsys, *argv):
    """The CLI's JSON with its "0x…" addresses read back as integers (vmemdbg/2, vmemdbg/jsonout.py)."""
    assert cli.main([*argv, "--json"]) == 0
    return decode(json.loads(capsys.readouterr().out))


@pytest.fixture(scope="module", params=["q35-2node-8g.toml", "kaslr-3node-5level.toml"])
def sim(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("eng")
    return simulate(MACHINES / request.param, d / "core.elf")


def test_summary(sim, capsys):
    doc = _json(capsys, "summary", str(sim.fixture))
    k, s, c = doc["kernel"], doc["sparse"], doc["counts"]
    assert k["page_offset_base"] == sim.bases["page_offset_base"]
    assert k["vmemmap_base"] == sim.bases["vmemmap_base"]
    assert k["kaslr_offset"] == sim.bases["kernel_offset"] and k["phys_base"] == sim.bases["phys_base"]
    assert k["pgtable_levels"] == sim.machine.paging_levels
    assert s["roots_addr"] == sim.roots_addr and s["nr_section_roots"] == sim.machine.nr_section_roots
    assert s["usage_size"] == sim.machine.profile.usage_size
    n = len(sim.present_sections)
    assert c["present"] == c["valid"] == c["early"] == c["online"] == n
    assert c["highest_present"] == sim.state.sparse.highest_present
    assert doc["memmap"]["pmd_leaves"] == len(sim.vmemmap_pmd_leaves)
    assert doc["memmap"]["pte_leaves"] == len(sim.vmemmap_pte_leaves)


def test_sections(sim, capsys):
    doc = _json(capsys, "sections", str(sim.fixture))
    got = {s["nr"]: s for s in doc["sections"]}
    assert sorted(got) == sim.present_sections.tolist()
    for nr, s in got.items():
        ref = sim.section(nr)
        assert s["coded_mem_map"] == ref["word"]
        assert s["usage"] == ref["usage"]
        assert s["nid"] == ref["nid"]
        assert s["subsection_map"] == 0xFFFFFFFFFFFFFFFF


def test_vmemmap_runs(sim, capsys):
    doc = _json(capsys, "vmemmap", str(sim.fixture))
    leaves = {**{va: (ph, 1 << 21, "pmd") for va, ph in sim.vmemmap_pmd_leaves.items()},
              **{va: (ph, 4096, "pte") for va, ph in sim.vmemmap_pte_leaves.items()}}
    covered = 0
    for run in doc["runs"]:
        va, ph = run["start"], run["phys"]
        while va < run["end"]:
            lph, size, level = leaves[va]
            assert (lph, level) == (ph, run["level"])
            va, ph, covered = va + size, ph + size, covered + 1
    assert covered == len(leaves)
    total = doc["overhead"]["total"]
    assert total["memmap_bytes"] == len(sim.vmemmap_pmd_leaves) * (1 << 21) + len(sim.vmemmap_pte_leaves) * 4096
    assert total["pagetable_bytes"] == 4096 * len(sim.vmemmap_tables)
