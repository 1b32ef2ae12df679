"""``vmemdbg check`` and ``vmemdbg describe`` on the real-kernel fixtures of both kernels.

Every real fixture is consistent with the replay of the machine its own dump implies (exit 0), with
exact physical placement compared on every node. Copies with one planted fault (tests/conftest.py
rewrite_dump) are reported with exactly that fault and exit 1. describe → simulate reproduces the
dump's vmemmap frame by frame (drgn's truth).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from conftest import hexed, real_dump, real_truth, rewrite_dump, shared_kernel

from vmemdbg import cli
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.sim import simulate
from vmemdbg.mmzone import present_sections
from vmemdbg.vmemmap import vmemmap_mapping


def _cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(list(argv))
    return rc, buf.getvalue()


def _check(path: Path) -> tuple[int, dict]:
    rc, out = _cli("check", str(path), "--json")
    return rc, json.loads(out)


def _kernel(case: str) -> Kernel:
    return shared_kernel(case)


def test_real_fixture_is_consistent(any_real_case: str) -> None:
    rc, doc = _check(real_dump(any_real_case))
    assert rc == 0 and doc["consistent"] and doc["differences"] == []
    assert doc["schema"] == "vmemdbg/2" and doc["command"] == "check"
    assert all(p["determined"] for p in doc["placement"].values())
    truth = real_truth(any_real_case)
    # the replay was compared leaf by leaf: as many leaves as drgn counted 2 MiB runs
    assert doc["counts"]["expected_leaves"] == sum((r["end"] - r["start"]) >> 21 for r in truth["vmemmap_pages"]["runs"])
    assert doc["rules"] == truth["summary"]["kernel"]["release"][:4].rstrip(".")


#: every committed real-kernel dump (fixtures/real/**/vmcore.elf[.xz]), so after-boot scenarios
#: (hot-add, memmap_on_memory, HVO boots) and every kernel series are checked as soon as they exist
REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real"
ALL_REAL_CASES = sorted({str(p.parent.relative_to(REAL)) for p in REAL.glob("**/vmcore.elf*")})
PROFILED = ("6.1.", "6.12.")


@pytest.mark.parametrize("case", ALL_REAL_CASES)
def test_every_real_dump_is_consistent(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Kernels with a simulator profile: exit 0, every difference explained, exact placement
    compared on every node. Other kernels (5.10, 7.2): refused in one line naming the profiles."""
    release = real_truth(case)["summary"]["kernel"]["release"]
    if not release.startswith(PROFILED):
        rc, out = _cli("check", str(real_dump(case)))
        err = capsys.readouterr().err.splitlines()
        assert rc == 2 and out == "" and len(err) == 1
        assert f"'{release}'" in err[0] and "has no simulator profile; supported: 6.1, 6.12" in err[0]
        return
    rc, doc = _check(real_dump(case))
    assert rc == 0, [d["text"] for d in doc["differences"] if not d["explained"]]
    assert all(p["determined"] for p in doc["placement"].values())


def test_check_text_exit_0(capsys) -> None:
    assert cli.main(["check", str(real_dump("6.12/1g-nokaslr"))]) == 0
    out = capsys.readouterr().out
    assert "replayed with the 6.12 rules: consistent" in out and "node 0: compared" in out


def _pmd_entry(k: Kernel, va: int) -> tuple[int, int]:
    """(physical address, value) of the PMD entry mapping vmemmap ``va``."""
    step = next(s for s in k.translate(va).path if s.level == "pmd")
    return step.table + 8 * step.index, step.entry


def _planted(tmp_path: Path, case: str, patch: dict[int, bytes]) -> dict:
    bad = rewrite_dump(real_dump(case), tmp_path / "bad.elf", patch=patch)
    rc, doc = _check(bad)
    assert rc == 1 and not doc["consistent"]
    return doc


def _unexplained(doc: dict) -> list[dict]:
    return [d for d in doc["differences"] if not d["explained"]]


def test_pmd_moved_to_another_frame(any_real_case: str, tmp_path: Path) -> None:
    k = _kernel(any_real_case)
    lv = vmemmap_mapping(k).leaves
    va, phys = int(lv.va[3]), int(lv.phys[3])
    addr, entry = _pmd_entry(k, va)
    target = int(lv.phys.min()) - (8 << 20)          # free RAM below the sparse buffer, same node
    doc = _planted(tmp_path, any_real_case, {addr: (entry - phys + target).to_bytes(8, "little")})
    (d,) = doc["differences"]
    assert d["kind"] == "vmemmap_phys" and d["va"] == [hexed(va), hexed(va + (1 << 21))] and d["phys"][0] == hexed(target)
    assert f"expected {phys:#x}" in d["text"]


def test_missing_usage(any_real_case: str, tmp_path: Path) -> None:
    k = _kernel(any_real_case)
    secs = present_sections(k)
    i = len(secs) // 2
    nr, usage = int(secs.nr[i]), int(secs.usage[i])
    doc = _planted(tmp_path, any_real_case, {int(secs.addr[i]) - k.page_offset_base + 8: bytes(8)})
    (d,) = doc["differences"]
    assert (d["kind"], d["section"]) == ("usage", nr) and f"expected {usage:#x}" in d["text"]


@pytest.mark.parametrize("case", ["6g-2node-kaslr", "6.12/6g-2node-kaslr"])
def test_offnode_backing_page(case: str, tmp_path: Path) -> None:
    """Section 0's first PMD (node 0 memmap) pointed at a free node-1 frame."""
    k = _kernel(case)
    lv = vmemmap_mapping(k).leaves
    va, phys = int(lv.va[0]), int(lv.phys[0])
    addr, entry = _pmd_entry(k, va)
    target = 0x1F0000000                              # node 1 = [0x140000000, 0x200000000)
    doc = _planted(tmp_path, case, {addr: (entry - phys + target).to_bytes(8, "little")})
    (d,) = doc["differences"]
    assert d["kind"] == "vmemmap_offnode" and d["va"] == [hexed(va), hexed(va + (1 << 21))]
    assert "memmap of node 0" in d["text"] and "on node 1" in d["text"]


def test_table_page_freed_and_reused(any_real_case: str, tmp_path: Path) -> None:
    """The vmemmap PMD table page zeroed in place (freed, then reused as a zeroed page)."""
    k = _kernel(any_real_case)
    va = int(vmemmap_mapping(k).leaves.va[0])
    table = next(s for s in k.translate(va).path if s.level == "pmd").table
    doc = _planted(tmp_path, any_real_case, {table: bytes(4096)})
    (d,) = doc["differences"]
    assert d["kind"] == "table_page" and d["phys"] == [hexed(table), hexed(table + 4096)] and "freed and reused" in d["text"]


def test_describe_then_simulate_reproduces_vmemmap(any_real_case: str, tmp_path: Path) -> None:
    """describe -o machine.toml; simulate it; every vmemmap leaf frame and table page is drgn's."""
    toml = tmp_path / "m.toml"
    rc, out = _cli("describe", str(real_dump(any_real_case)), "-o", str(toml))
    assert rc == 0 and "assumed" in out
    text = toml.read_text()
    # the image end is _brk_end where the dump holds it, else assumed (and said so)
    assert ("# ASSUMED  layout.image" in text or "# derived  layout.image: [_text, _brk_end)" in text)
    assert "# derived  e820: e820_table_firmware" in text
    r = simulate(toml, None)
    truth = real_truth(any_real_case)
    leaves = {}
    for run in truth["vmemmap_pages"]["runs"]:
        for va in range(run["start"], run["end"], 1 << 21):
            leaves[va] = run["phys"] + va - run["start"]
    assert r.vmemmap_pmd_leaves == leaves
    assert sorted(ph for ph, _, _ in r.vmemmap_tables) == sorted(truth["vmemmap_pages"]["table_pages"])
    assert r.roots_addr == truth["summary"]["sparse"]["roots_addr"]
    assert {ts["nr"]: ts["usage"] for ts in truth["sections"]} == \
        {s["nr"]: s["usage"] for s in r.sections()}


def test_unsupported_release_refused(tmp_path: Path) -> None:
    """A dump of a kernel series without a profile: one line naming the supported ones, exit 2."""
    src = real_dump("1g-nokaslr")
    info = open_dump(src).vmcoreinfo().replace(b"OSRELEASE=6.1.0-56-cloud-amd64", b"OSRELEASE=6.6.0-56-cloud-amd64")
    bad = rewrite_dump(src, tmp_path / "v66.elf", vmcoreinfo=info)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc, _ = _cli("check", str(bad))
    assert rc == 2
    assert err.getvalue() == ("vmemdbg: error: kernel '6.6.0-56-cloud-amd64' (series 6.6) has no simulator "
                              "profile; supported: 6.1, 6.12\n")


def test_simulated_offnode_is_expected_not_a_difference(tmp_path: Path) -> None:
    """offnode-tiny-node1: node 1 is too small for its sparse buffer, so its memmap falls back to
    node 0 memory (vmemmap_alloc_block_buf → memblock, any node). The replay predicts it: consistent,
    with the mechanism named in the notes."""
    out = tmp_path / "o.elf"
    simulate(Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "offnode-tiny-node1.toml", out)
    rc, doc = _check(out)
    assert rc == 0 and doc["differences"] == []
    assert any("off-node fallback" in n for n in doc["notes"])
    assert any("sparse buffer exhausted" in n for n in doc["notes"])


def test_unpredicted_pte_fallback_is_unexplained(tmp_path: Path) -> None:
    """kaslr-3node-5level injects a failed 2 MiB block for section 70: the dump has 512 PTEs where
    the replay (with memory to spare) installs a PMD — one unexplained difference, exit 1."""
    out = tmp_path / "k.elf"
    simulate(Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "kaslr-3node-5level.toml", out)
    rc, doc = _check(out)
    assert rc == 1
    (d,) = doc["differences"]
    assert d["kind"] == "vmemmap_level" and d["section"] == 70 and not d["explained"]


@pytest.mark.parametrize("symbols, message", [
    (("e820_table", "e820_table_firmware"), "no e820 table readable (e820_table_firmware, e820_table): "
                                            "cannot tell the RAM layout"),
    (("node_data",), "no node spans readable (node_data / pglist_data): cannot tell the NUMA layout"),
])
def test_missing_inputs_one_line(symbols, message, tmp_path: Path) -> None:
    """A dump without what describe cannot assume: one line, exit 2, for describe and check."""
    k = _kernel("1g-nokaslr")
    bad = rewrite_dump(real_dump("1g-nokaslr"), tmp_path / "bad.elf",
                       drop_pages=[k.kimg_to_phys(k.symbols[s]) for s in symbols])
    for cmd in (["check", str(bad)], ["describe", str(bad), "-o", str(tmp_path / "m.toml")]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc, out = _cli(*cmd)
        assert (rc, out, err.getvalue()) == (2, "", f"vmemdbg: error: {message}\n")
    assert not (tmp_path / "m.toml").exists()
