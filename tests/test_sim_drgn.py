"""drgn 0.3 opens a simulated fixture with its debug ELF; its helpers agree with SimResult."""

from __future__ import annotations

from pathlib import Path

import pytest

drgn = pytest.importorskip("drgn")
from drgn import Program  # noqa: E402
from drgn.helpers.linux.mm import follow_phys, page_to_pfn, pfn_to_page  # noqa: E402
from drgn.helpers.linux.mmzone import (decode_section_flags, for_each_present_section,  # noqa: E402
                                       section_decode_mem_map)

from vmemdbg.sim import simulate  # noqa: E402

MACHINES = Path(__file__).resolve().parent.parent / "fixtures" / "machines"


@pytest.fixture(scope="module", params=["q35-2node-8g.toml", "kaslr-3node-5level.toml"])
def loaded(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    r = simulate(MACHINES / request.param, d / "core.elf", debuginfo=d / "core.debug")
    prog = Program()
    prog.set_core_dump(str(r.fixture))
    prog.load_debug_info([str(r.debuginfo_path)])
    assert prog.main_module().debug_file_status == drgn.ModuleFileStatus.HAVE
    return r, prog


def test_sections_agree(loaded):
    r, prog = loaded
    seen = []
    for nr, sec in for_each_present_section(prog):
        s = r.section(nr)
        seen.append(nr)
        assert sec.section_mem_map.value_() == s["word"]
        assert sec.usage.value_() == s["usage"]
        assert decode_section_flags(sec) == "SECTION_MARKED_PRESENT|SECTION_HAS_MEM_MAP|SECTION_IS_ONLINE|SECTION_IS_EARLY"
        pfn = nr << 15
        assert section_decode_mem_map(sec, nr).value_() == r.bases["vmemmap_base"] + pfn * 64
    assert seen == r.present_sections.tolist()


def test_vmemmap_translation_agrees(loaded):
    r, prog = loaded
    mm = prog["init_mm"].address_of_()
    for va, phys in list(r.vmemmap_pmd_leaves.items())[::7]:
        assert follow_phys(mm, va + 0x1234).value_() == phys + 0x1234
    for va, phys in list(r.vmemmap_pte_leaves.items())[::97]:
        assert follow_phys(mm, va + 8).value_() == phys + 8


def test_struct_pages_and_nodes(loaded):
    r, prog = loaded
    shift = 64 - r.machine.profile.nodes_shift
    for nr in r.present_sections.tolist()[::5]:
        page = pfn_to_page(prog, nr << 15)
        assert page_to_pfn(page).value_() == nr << 15
        assert page.flags.value_() >> shift == r.section(nr)["nid"]
    for nid, phys in r.node_data.items():
        pgdat = prog["node_data"][nid]
        assert pgdat.value_() == r.bases["page_offset_base"] + phys
        assert pgdat.node_id.value_() == nid
        start, spanned, _ = r.state.node_spans[nid]
        assert (pgdat.node_start_pfn.value_(), pgdat.node_spanned_pages.value_()) == (start, spanned)


def test_memblock_and_globals(loaded):
    r, prog = loaded
    mb = prog["memblock"]
    for kind in ("memory", "reserved"):
        t = getattr(mb, kind)
        regs = [(t.regions[i].base.value_(), t.regions[i].size.value_(), t.regions[i].flags.value_(),
                 t.regions[i].nid.value_()) for i in range(t.cnt.value_())]
        assert regs == r.memblock_regions(kind)
    assert prog["memblock_memory"].value_() == 0
    assert prog["system_state"].value_() == 3
    assert prog["mem_section"].value_() == r.roots_addr
    assert prog["vmemmap_base"].value_() == r.bases["vmemmap_base"]
    assert prog["page_offset_base"].value_() == r.bases["page_offset_base"]
    e820 = prog["e820_table"]
    assert [(e820.entries[i].addr.value_(), e820.entries[i].size.value_())
            for i in range(e820.nr_entries.value_())] == [(e.start, e.end - e.start) for e in r.state.e820_table]
