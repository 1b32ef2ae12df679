"""The simulator predicts real boots exactly: memblock=debug captures and drgn's view of the dumps.

Debian 6.1.0-56-cloud-amd64 was booted under QEMU (TCG, SeaBIOS, ``-kernel``/``-initrd``) with
``console=ttyS0 memblock=debug loglevel=8 ignore_loglevel``:

* ``1g-nokaslr``: pc, -m 1G, -cpu qemu64 (4-level, no pdpe1gb: 2 MiB direct map), nokaslr;
* ``1000m``: q35, -m 1000M, -cpu max (5-level, 1 MiB roots array), nokaslr, RAM ends mid-section 7;
* ``6g-2node-kaslr``: q35, -m 6G as two 3 GiB NUMA nodes, -cpu max,la57=off, KASLR.

fixtures/captures/<case>.txt is fixtures/real/<case>/serial.log trimmed to the e820/SRAT/memblock
lines up to the end of sparse_init ("Zone ranges:"), timestamps removed; the machine files
fixtures/machines/real-<case>.toml were written from those logs (e820, SRAT, kernel image, initrd,
ACPI tables; the 6g bases from the dump because KASLR does not print them).
fixtures/real/<case>/truth.json is drgn's reading of the real dump (tests/realkernel/drgn_truth.py).

Nothing here has a tolerance: every memblock allocation up to the end of sparse_init (request and
resulting range), every section word, usage address, nid and subsection map, every vmemmap leaf
and table page and SYMBOL(mem_section) must be what the real kernel produced.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from vmemdbg import cli
from vmemdbg.sim import SimResult, simulate

ROOT = Path(__file__).resolve().parent.parent
CASES = ("1g-nokaslr", "1000m", "6g-2node-kaslr")
OFFS = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")
RANGE = re.compile(r"\[(?:mem )?(0x[0-9a-f]+)-(0x[0-9a-f]+)\]")
#: a memblock_alloc* / memblock_phys_alloc* request line (mm/memblock.c memblock_dbg formats)
ALLOC = ("memblock_alloc", "memblock_phys_alloc")


def _clean(lines: list[str]) -> list[str]:
    """Strip whitespace and the %pS "+off/len" suffixes (the simulator prints bare symbols)."""
    return [OFFS.sub("", ln.strip()) for ln in lines]


def _allocation_log(lines: list[str]) -> list[str]:
    """Every allocation request with the memblock_reserve it resulted in, memblock_phys_free lines
    and the NODE_DATA(n) messages, in boot order.  Plain memblock_reserve calls are left out: the
    kernel makes some of them before memblock=debug is parsed (early_reserve_memory)."""
    keep = ALLOC + ("memblock_reserve: [", "memblock_phys_free", "NODE_DATA(")
    return [ln for ln in lines if ln.startswith(keep)
            and (not ln.startswith("memblock_reserve") or ln.endswith("memblock_alloc_range_nid"))]


def _span(ln: str) -> tuple[int, int]:
    """[start, end) of the first "[a-b]" (end inclusive) in a log line."""
    m = RANGE.search(ln)
    assert m, ln
    return int(m.group(1), 16), int(m.group(2), 16) + 1


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of half-open ranges."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _last_dump(lines: list[str], kind: str) -> list[tuple[int, int, int]]:
    """(base, end, nid) of the last memblock_dump_all() listing of ``kind`` before sparse_init."""
    start = max(i for i, ln in enumerate(lines) if ln == "MEMBLOCK configuration:")
    out = []
    for ln in lines[start:]:
        if ln.startswith(f"{kind}["):
            s, e = _span(ln)
            m = re.search(r"on node (\d+)", ln)
            out.append((s, e, int(m.group(1)) if m else -1))
    return out


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[str, list[str], dict, SimResult]:
    """(name, cleaned capture lines, truth.json, simulation with a written fixture)."""
    name = request.param
    cap = _clean((ROOT / "fixtures" / "captures" / f"{name}.txt").read_text().splitlines())
    truth = json.loads((ROOT / "fixtures" / "real" / name / "truth.json").read_text())
    out = tmp_path_factory.mktemp("cap") / "core.elf"
    return name, cap, truth, simulate(ROOT / "fixtures" / "machines" / f"real-{name}.toml", out)


def test_every_allocation_up_to_sparse_init_end(case):
    """reserve_real_mode, the init_mem_mapping probe, NODE_DATA, then sparse_init (roots array),
    sparse_index_alloc, sparse_init_nid (usage array, sparse buffer) and vmemmap_populate's
    vmemmap_alloc_block_zero table pages: size, align, nid, from, max_addr and the reserved range,
    in order, and nothing else (the 1g no-gbpages direct map takes all its tables from brk)."""
    _, cap, _, r = case
    assert _allocation_log(_clean(r.trace)) == _allocation_log(cap)
    assert any("sparse_init_nid" in ln for ln in _allocation_log(cap))


def test_reservations_and_memory_before_sparse_init(case):
    """The machine's pre-sparse reservations are the log's: the last MEMBLOCK configuration dump
    (after NUMA setup) plus the sparse_init results covers exactly what the simulator reserved, and
    memblock.memory (with nids) is the dump's."""
    _, cap, _, r = case
    pre = [(s, e) for s, e, _ in _last_dump(cap, "reserved")]
    i = max(i for i, ln in enumerate(cap) if ln == "MEMBLOCK configuration:")
    sparse = [_span(ln) for ln in _allocation_log(cap[i:]) if ln.startswith("memblock_reserve")]
    sim = [(b, b + s) for b, s, _, _ in r.memblock_regions("reserved")]
    assert _union(sim) == _union(pre + sparse)
    assert [(b, b + s, n) for b, s, _, n in r.memblock_regions("memory")] == _last_dump(cap, "memory")
    for ln in cap:  # plain reservations the log shows (brk, [0,1M), ACPI tables) are all in
        if ln.startswith("memblock_reserve") and not ln.endswith("memblock_alloc_range_nid"):
            s, e = _span(ln)
            assert any(a <= s and e <= b for a, b in _union(sim)), ln


def test_truth_roots_and_bases(case):
    """SYMBOL(mem_section) (the roots array's direct-map address) and the virtual bases."""
    _, _, t, r = case
    k = t["summary"]["kernel"]
    assert r.roots_addr == int(t["vmcoreinfo"]["SYMBOL(mem_section)"], 16) == t["summary"]["sparse"]["roots_addr"]
    assert r.machine.nr_section_roots == int(t["vmcoreinfo"]["LENGTH(mem_section)"])
    assert r.machine.profile.mem_section_size == int(t["vmcoreinfo"]["SIZE(mem_section)"])
    assert r.bases == {"page_offset_base": k["page_offset_base"], "vmalloc_base": k["vmalloc_base"],
                       "vmemmap_base": k["vmemmap_base"], "kernel_offset": k["kaslr_offset"],
                       "phys_base": k["phys_base"]}
    assert r.state.sparse.highest_present == t["summary"]["counts"]["highest_present"]


def test_truth_sections(case):
    """Every present section: section_mem_map word, usage address, early nid."""
    _, _, t, r = case
    assert r.present_sections.tolist() == [s["nr"] for s in t["sections"]]
    for ts in t["sections"]:
        s = r.section(ts["nr"])
        assert (s["word"], s["usage"], s["nid"]) == (ts["coded_mem_map"], ts["usage"], ts["nid"]), ts["nr"]


def test_truth_vmemmap(case):
    """Every vmemmap leaf's backing frame (drgn's runs expanded to 2 MiB leaves), no PTE leaves,
    the vmemmap page-table pages, memblock.current_limit."""
    _, _, t, r = case
    vm = t["vmemmap_pages"]
    leaves = {}
    for run in vm["runs"]:
        assert run["level"] == "pmd"
        for va in range(run["start"], run["end"], 1 << 21):
            leaves[va] = run["phys"] + va - run["start"]
    assert r.vmemmap_pmd_leaves == leaves and not r.vmemmap_pte_leaves
    assert sorted(ph for ph, _, _ in r.vmemmap_tables) == sorted(vm["table_pages"])
    assert r.state.memblock.current_limit == t["memblock"]["current_limit"]


def test_truth_subsection_maps(case):
    """subsection_map of every section as read back from the written fixture by the engine; the
    1000m boot's last section is only 52 subsections (0x3e7df000 rounded up to 2 MiB) deep."""
    _, _, t, r = case
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["sections", str(r.fixture), "--json"]) == 0
    got = {s["nr"]: s["subsection_map"] for s in json.loads(buf.getvalue())["sections"]}
    assert got == {s["nr"]: s["subsection_map"] for s in t["sections"]}
