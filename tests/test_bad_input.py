"""Bad input: one line naming the problem and exit 2, never a traceback or a hang; a filtered dump
still prints what it can and marks what was unreadable.

The CLI runs in this process (conftest.run_cli: ``vmemdbg.cli.main`` with its output captured); the
one test of the ``vmemdbg`` command as a real process is :func:`test_cli_as_a_process`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_dump, real_truth, rewrite_dump, run_cli

from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel


def test_cli_as_a_process(tmp_path: Path) -> None:
    """Smoke test of the installed front end: ``python -m vmemdbg`` prints a view and exits 0, and
    a bad dump is one line on stderr and exit status 2 from the real interpreter."""
    ok = subprocess.run([sys.executable, "-m", "vmemdbg", "summary", str(real_dump("1g-nokaslr"))],
                        capture_output=True, text=True, timeout=120)
    assert (ok.returncode, ok.stderr) == (0, "") and ok.stdout == run_cli("summary", real_dump("1g-nokaslr")).stdout
    assert ok.stdout.startswith("kernel            6.1.0-56-cloud-amd64  (4-level paging)\n")
    bad = subprocess.run([sys.executable, "-m", "vmemdbg", "summary", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert_one_line_error(bad, "cannot open")
    assert bad.stdout == ""


def assert_one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_not_elf(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello\n" * 100)
    assert_one_line_error(run_cli("summary", str(f)), "not a vmcore")


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("summary", str(tmp_path / "nope")), "cannot open")


def test_truncated_headers(tmp_path: Path) -> None:
    f = tmp_path / "cut.elf"
    f.write_bytes(real_dump("1g-nokaslr").read_bytes()[:100])
    assert_one_line_error(run_cli("sections", str(f)), "truncated")


def test_truncated_data(tmp_path: Path) -> None:
    """Cut in the middle of the memory data: kallsyms and the page tables are gone, so the
    direct-map base cannot be found; one line says so and names the truncation."""
    data = real_dump("1g-nokaslr").read_bytes()
    f = tmp_path / "half.elf"
    f.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("vmemmap", str(f)), "cannot find page_offset_base", "dump file is truncated")


def test_wrong_arch(tmp_path: Path) -> None:
    data = bytearray(real_dump("1g-nokaslr").read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    f = tmp_path / "arm.elf"
    f.write_bytes(bytes(data))
    assert_one_line_error(run_cli("summary", str(f)), "not an x86-64 dump")


def test_no_vmcoreinfo(tmp_path: Path) -> None:
    f = rewrite_dump(real_dump("1g-nokaslr"), tmp_path / "novmci.elf", vmcoreinfo=b"")
    assert_one_line_error(run_cli("summary", str(f)), "no VMCOREINFO")


def test_vmcoreinfo_option_rescues(tmp_path: Path) -> None:
    """--vmcoreinfo supplies the text a dump lacks."""
    src = real_dump("1g-nokaslr")
    f = rewrite_dump(src, tmp_path / "novmci.elf", vmcoreinfo=b"")
    info = tmp_path / "vmcoreinfo.txt"
    info.write_bytes(Kernel(open_dump(src)).info.text.encode())
    p = run_cli("summary", str(f), "--vmcoreinfo", str(info), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["kernel"]["vmemmap_base"] == "0xffffea0000000000"


def test_absurd_vmcoreinfo(tmp_path: Path) -> None:
    src = real_dump("1g-nokaslr")
    text = Kernel(open_dump(src)).info.text.replace("LENGTH(mem_section)=2048", "LENGTH(mem_section)=7")
    f = rewrite_dump(src, tmp_path / "absurd.elf", vmcoreinfo=text.encode())
    assert_one_line_error(run_cli("summary", str(f)), "LENGTH(mem_section)=7")


def test_filtered_dump_marks_unreadable(tmp_path: Path) -> None:
    """Drop the PMD table page and one usage page: sections still print, the gaps are named."""
    truth = real_truth("6g-2node-kaslr")
    pmd_page = truth["explain"][0]["path"][2]["table"]
    po = truth["summary"]["kernel"]["page_offset_base"]
    usage_phys = truth["sections"][40]["usage"] - po  # node 1's usage array
    f = rewrite_dump(real_dump("6g-2node-kaslr"), tmp_path / "filtered.elf", drop_pages=[pmd_page, usage_phys])
    p = run_cli("sections", str(f), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert len(doc["sections"]) == 48
    assert doc["sections"][40]["subsection_map"] is None
    assert doc["sections"][0]["subsection_map"] == "0xffffffffffffffff"
    assert any("usage" in u for u in doc["unreadable"])
    p = run_cli("vmemmap", str(f))
    assert p.returncode == 0, p.stderr
    assert "unreadable" in p.stdout and f"table page {pmd_page:#x}" in p.stdout


def test_page_table_loop_is_reported(tmp_path: Path) -> None:
    """A PMD entry pointing back at its own table is a loop: reported, the rest still walks."""
    truth = real_truth("1g-nokaslr")
    pmd_page = truth["explain"][0]["path"][2]["table"]
    f = rewrite_dump(real_dump("1g-nokaslr"), tmp_path / "loop.elf",
                     patch={pmd_page + 8 * 100: (pmd_page | 0x67).to_bytes(8, "little")})
    p = run_cli("vmemmap", str(f), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [a["kind"] for a in doc["audit"]].count("unreadable") == 1
    assert "loop" in next(a for a in doc["audit"] if a["kind"] == "unreadable")["detail"]
    assert int(doc["runs"][0]["end"], 16) - int(doc["runs"][0]["start"], 16) == 8 << 21


@pytest.mark.parametrize("addr", ["bogus", "0xffffffffffffffff", "pfn:0xfffffffffffff"])
def test_bad_explain_address(addr: str) -> None:
    assert_one_line_error(run_cli("explain", str(real_dump("1g-nokaslr")), addr))
