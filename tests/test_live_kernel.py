"""vmemdbg on a live kernel: the recorded guest run of tests/realkernel/live.py, checked offline.

Inside a QEMU guest (Debian 6.1.0-56 and 6.12.107 cloud kernels, 1 GiB over two NUMA nodes, KASLR),
``vmemdbg ... /proc/kcore --json`` (the CLI reading through drgn's ``set_kernel``), the drgn plugin
under ``drgn -k`` with the -dbg vmlinux (Python API, ``vmemdbg`` command, interactive ``%vmemdbg``)
and without debug info wrote the documents under ``fixtures/live/<case>/live/``. The host then dumped the guest's memory;
``vmcore.elf`` is that dump reduced by ``vmemdbg extract``. Here the dump side is recomputed with
the current engine and compared with the live side, as live.py did with the full dump; the dump
side is checked against drgn's truth (drgn_truth.py on the full dump).
Every fixture directory must be listed in RELEASES (checked below).

If an engine change alters a view's values on purpose, re-run live.py (tests/realkernel/README.md).
"""

from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT
from livecmp import compare_all, dump_documents, load_fixture
from truthcmp import compare, engine_views

from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel

LIVE = ROOT / "fixtures" / "live"
#: fixture directory -> the kernel release that ran in the guest
RELEASES = {"6.1-1g-2node-kaslr": "6.1.0-56-cloud-amd64", "6.12-1g-2node-kaslr": "6.12.107+deb12-cloud-amd64"}


@pytest.fixture(scope="module", params=sorted(RELEASES))
def case(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def live(case: str) -> dict:
    return load_fixture(LIVE / case)


@pytest.fixture(scope="module")
def dump(case: str, live: dict) -> dict:
    return dump_documents(LIVE / case / "vmcore.elf", live)


def _strip_added(result: dict) -> dict:
    """The recorded result without the count of keys newer engines add (not compared)."""
    result = json.loads(json.dumps(result))
    for p in result["pairs"]:
        p.pop("added_on_dump_side")
    return result


def test_live_equals_dump_as_recorded(case: str, live: dict, dump: dict) -> None:
    """Every stable field of every live document equals the dump; the result is what live.py recorded."""
    result = compare_all(live, dump)
    assert result["problems"] == []
    recorded = json.loads((LIVE / case / "result.json").read_text())
    assert _strip_added(result) == _strip_added(recorded)


def test_dump_equals_drgn_truth(case: str) -> None:
    """The dump side itself equals drgn's helpers on the full dump (drgn_truth.py), so the live
    views equal an independent oracle, not only vmemdbg's reading of a file."""
    truth = json.loads((LIVE / case / "truth.json").read_text())
    kernel = Kernel(open_dump(LIVE / case / "vmcore.elf"))
    assert compare(engine_views(kernel, truth), truth) == []
    assert truth["summary"]["counts"]["present"] == 8 and truth["vmemmap_pages"]["runs"]


def test_live_run_covers_every_front_end(case: str, live: dict) -> None:
    """The guest ran the CLI views, the plugin with and without debug info, on a KASLR 2-node kernel."""
    assert set(live) >= {"cli-audit-json", "cli-summary-json", "cli-sections-json", "cli-vmemmap-json",
                         "cli-memblock-json", "cli-e820-json", "cli-sections-v-json", "cli-explain-json",
                         "drgn-api", "drgn-cmd-audit-json", "drgn-nodebug-api", "drgn-nodebug-cmd-audit-json"}
    assert set(live["drgn-repl"]) == {"vmemdbg summary", "vmemdbg vmemmap", "vmemdbg explain pfn:0x20000"}
    assert live["cli-audit-text"] and live["drgn-cmd-audit-text"]
    assert live["drgn-api"]["debug_info"] is True
    assert live["drgn-nodebug-api"]["debug_info"] is False
    s = live["cli-summary-json"]
    assert s["kernel"]["release"] == RELEASES[case]
    assert s["kernel"]["kaslr_offset"] != 0
    # 1 GiB = sections 0-7; two 512 MiB nodes: pgdat spans meet at pfn 0x20000
    assert s["counts"]["present"] == 8
    assert [(n["nid"], n["start_pfn"]) for n in s["nodes"]][1] == (1, 0x20000)
    runs = live["cli-vmemmap-json"]["runs"]
    assert {r["nid"] for r in runs} == {0, 1}
    assert live["cli-memblock-json"]["memory"]["regions"]


def test_comparison_catches_a_changed_stable_field(live: dict, dump: dict) -> None:
    """A moved vmemmap leaf or a changed line of %vmemdbg output is a problem; a changed pageblock
    migratetype word is allowed."""
    bad = copy.deepcopy(live)
    bad["cli-vmemmap-json"]["runs"][0]["phys"] += 0x200000
    problems = compare_all(bad, dump)["problems"]
    assert problems == [f"cli-vmemmap-json vs dump cli-vmemmap-json: runs[0].phys: live "
                        f"{bad['cli-vmemmap-json']['runs'][0]['phys']!r} != dump "
                        f"{dump['cli-vmemmap-json']['runs'][0]['phys']!r}"]
    typo = copy.deepcopy(live)
    typo["drgn-repl"]["vmemdbg vmemmap"][1] += " "
    n = len(typo["drgn-repl"]["vmemdbg vmemmap"])
    assert compare_all(typo, dump)["problems"] == [
        f"drgn-repl %vmemdbg vmemmap vs dump text: {n} lines, dump {n}, {n - 1} equal"]
    ok = copy.deepcopy(live)
    ok["cli-sections-json"]["sections"][3]["pageblock_flags"][0] ^= 1
    assert compare_all(ok, dump)["problems"] == []


def test_every_live_fixture_is_tested() -> None:
    assert sorted(p.name for p in LIVE.iterdir() if p.is_dir()) == sorted(RELEASES)
