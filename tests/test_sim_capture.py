"""The simulator predicts real boots exactly: memblock=debug captures and drgn's view of the dumps.

Debian 6.1.0-56-cloud-amd64 and 6.12.107+deb12-cloud-amd64 were booted under QEMU (TCG, SeaBIOS,
``-kernel``/``-initrd``) with ``console=ttyS0 memblock=debug loglevel=8 ignore_loglevel``, each kernel
in the same three machines:

* ``1g-nokaslr``: pc, -m 1G, -cpu qemu64 (4-level, no pdpe1gb: 2 MiB direct map), nokaslr;
* ``1000m``: q35, -m 1000M, -cpu max (5-level, 1 MiB roots array), nokaslr, RAM ends mid-section 7;
* ``6g-2node-kaslr``: q35, -m 6G as two 3 GiB NUMA nodes, -cpu max,la57=off, KASLR.

The 6.1 fixtures are fixtures/real/<case>/, the 6.12 ones fixtures/real/6.12/<case>/.
fixtures/captures/<case>.txt is fixtures/real/<case>/serial.log trimmed to the e820/SRAT/memblock
lines up to the end of sparse_init ("Zone ranges:"), timestamps removed (:func:`capture`, which
the 6.12 cases apply to their serial.log directly); the machine files
fixtures/machines/real[-6.12]-<case>.toml were written from those logs (e820, SRAT, kernel image,
initrd, ACPI tables; the 6g bases from the dump because KASLR does not print them).
<fixture dir>/truth.json is drgn's reading of the real dump (tests/realkernel/drgn_truth.py).
The two kernels differ in one placement rule (vmemdbg/versions.py BOOT_RULES: NODE_DATA rounded
to pages in 6.1, to the cache line in 6.12); the 6.12 cases would fail with the 6.1 rule.

Nothing here has a tolerance: every memblock allocation up to the end of sparse_init (request and
resulting range), every section word, usage address, nid and subsection map, every vmemmap leaf
and table page and SYMBOL(mem_section) must be what the real kernel produced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from conftest import hexed

from vmemdbg import cli
from vmemdbg.sim import SimResult, simulate

ROOT = Path(__file__).resolve().parent.parent
CASES = ("1g-nokaslr", "1000m", "6g-2node-kaslr")
#: (kernel, case) → (fixture directory, machine file)
BOOTS = {("6.1", c): (ROOT / "fixtures" / "real" / c, ROOT / "fixtures" / "machines" / f"real-{c}.toml")
         for c in CASES} | {
        ("6.12", c): (ROOT / "fixtures" / "real" / "6.12" / c, ROOT / "fixtures" / "machines" / f"real-6.12-{c}.toml")
        for c in CASES}
OFFS = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")
RANGE = re.compile(r"\[(?:mem )?(0x[0-9a-f]+)-(0x[0-9a-f]+)\]")
#: a memblock_alloc* / memblock_phys_alloc* request line (mm/memblock.c memblock_dbg formats)
ALLOC = ("memblock_alloc", "memblock_phys_alloc")


#: serial-log lines a capture keeps (boot order, up to "Zone ranges:")
_CAPTURE_KEEP = ("BIOS-e820", "e820:", "memblock_", "MEMBLOCK configuration", " memory", " reserved",
                 "RAMDISK", "NODE_DATA", "    NODE_DATA", "ACPI: SRAT:", "NUMA:", "No NUMA", "Faking a node",
                 "Using GB pages")


def capture(serial_log: str) -> list[str]:
    """A memblock=debug serial log trimmed to its e820/SRAT/memblock/NODE_DATA lines from the first
    BIOS-e820 line up to "Zone ranges:" (the end of sparse_init), timestamps removed."""
    out: list[str] = []
    started = False
    for ln in serial_log.splitlines():
        ln = re.sub(r"^\[ *[0-9.]+\] ?", "", ln)
        started |= ln.startswith("BIOS-e820")
        if not started:
            continue
        if ln.startswith("Zone ranges:"):
            break
        if ln.startswith(_CAPTURE_KEEP) and not ln.startswith("  "):
            out.append(ln)
    return out


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


@pytest.mark.parametrize("name", CASES)
def test_capture_trimming(name: str) -> None:
    """capture() of a 6.1 serial.log is the committed capture of that boot."""
    committed = (ROOT / "fixtures" / "captures" / f"{name}.txt").read_text().splitlines()
    assert capture((ROOT / "fixtures" / "real" / name / "serial.log").read_text()) == committed


@pytest.fixture(scope="module", params=sorted(BOOTS), ids=lambda k: f"{k[0]}-{k[1]}")
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[str, list[str], dict, SimResult]:
    """(name, cleaned capture lines, truth.json, simulation with a written fixture)."""
    kernel, name = request.param
    fdir, machine = BOOTS[request.param]
    if kernel == "6.1":
        cap = _clean((ROOT / "fixtures" / "captures" / f"{name}.txt").read_text().splitlines())
    else:
        cap = _clean(capture((fdir / "serial.log").read_text()))
    truth = json.loads((fdir / "truth.json").read_text())
    assert truth["summary"]["kernel"]["release"].startswith(kernel + ".")
    out = tmp_path_factory.mktemp("cap") / "core.elf"
    return name, cap, truth, simulate(machine, out)


def test_6_12_needs_its_own_rule() -> None:
    """With the 6.1 NODE_DATA rule a 6.12 machine is predicted wrong (NODE_DATA 0x680 lower on the
    1g boot, the kernel's [0x3feb6680-0x3fee0fff]), which is why the profile carries the series."""
    from vmemdbg.sim.machine_format import load_machine
    m = load_machine(BOOTS[("6.12", "1g-nokaslr")][1])
    assert m.profile.nd_size == 174464
    r12 = simulate(m, None)
    r61 = simulate(dataclasses.replace(m, profile=dataclasses.replace(m.profile, version="6.1")), None)
    assert r12.node_data[0] == 0x3FEB6680 and r61.node_data[0] == 0x3FEB6000


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
    assert got == {s["nr"]: hexed(s["subsection_map"]) for s in t["sections"]}


def test_memblock_nids_as_the_kernel_left_them(case):
    """memblock.memory (with nids) and the reserved regions below 16 MiB (never touched after NUMA
    init) equal the dump's frozen memblock: in 6.1 [0, 1M) is one node-0 region; in 6.12
    numa_memblks_init resets nids to NUMA_NO_NODE and numa_cleanup_meminfo starts at
    memblock_start_of_DRAM() (0x1000), so [0, 4K) keeps no node."""
    _, _, t, r = case
    mb = t["memblock"]
    low = [(x["base"], x["size"], x["nid"]) for x in mb["reserved"]["regions"] if x["base"] < 1 << 24]
    assert [(b, s, n) for b, s, _, n in r.memblock_regions("reserved") if b < 1 << 24] == low
    assert [(b, s, n) for b, s, _, n in r.memblock_regions("memory")] == \
        [(x["base"], x["size"], x["nid"]) for x in mb["memory"]["regions"]]
    six12 = t["summary"]["kernel"]["release"].startswith("6.12.")
    assert low[0] == ((0, 4096, -1) if six12 else (0, 1 << 20, 0))
