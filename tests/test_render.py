"""Human text of every view (vmemdbg/render.py): no Python reprs, the kernel's flag names, one
spelling of "no node", on every committed fixture."""

from __future__ import annotations

import re

import pytest
from conftest import REAL, real_truth, shared_kernel

from vmemdbg import views
from vmemdbg.errors import VmemdbgError
from vmemdbg.kernel import Kernel
from vmemdbg.commands import COMMANDS, output, parser

CASES = sorted({str(p.parent.relative_to(REAL)) for p in REAL.glob("**/vmcore.elf*")})
FORMS = [["summary", "-v"], ["sections"], ["sections", "-v"], ["vmemmap", "-v"], ["memblock"], ["e820"],
         ["memory-blocks", "-v"], ["audit", "-v"], ["check", "-v"], ["explain", "pfn:0x1000", "phys:0x100000000"]]
#: what a Python value looks like when it leaks into text: a bool, None, a list or dict repr
REPR = re.compile(r"\b(True|False|None)\b|\[\d+, \d|\['[^']*', '|\{'|=(True|False|None)\b")


def command_output(kernel: "Kernel", argv: list[str]) -> str:
    """What ``vmemdbg ARGV[0] DUMP ARGV[1:]`` prints for ``kernel`` (vmemdbg/commands.py)."""
    command = COMMANDS[argv[0]]
    return output(kernel, command, parser(command, f"vmemdbg {argv[0]}").parse_args(argv[1:]))


@pytest.mark.parametrize("case", CASES)
def test_no_python_reprs(case: str) -> None:
    kernel = shared_kernel(case)
    printed = 0
    for argv in FORMS:
        try:
            text = command_output(kernel, argv)
        except VmemdbgError:  # memblock/e820 without symbols (5.10), check without a profile (5.10, 7.2)
            continue
        printed += 1
        assert not [line for line in text.splitlines() if REPR.search(line)], argv
        # section flags as the kernel names them without SECTION_: never the short IS_-less forms
        assert not re.search(r"(?<![A-Z_])(ONLINE|EARLY|PRESENT)\b", text.replace("SYSTEM_RUNNING", "")), argv
    assert printed >= 7


def test_memblock_no_node_is_a_dash() -> None:
    """6.1 keeps MAX_NUMNODES (1024) in reservations made after NUMA setup: printed '-' like every
    'no node'; real nids as they are (the serial log's memblock=debug lines, via drgn's truth)."""
    doc = views.memblock(shared_kernel("6g-2node-kaslr"))
    assert doc["max_numnodes"] == 1024
    text = command_output(shared_kernel("6g-2node-kaslr"), ["memblock"])
    rows = [line.split() for line in text.split("reserved:")[1].splitlines()[2:] if line.strip()]
    nids = [r["nid"] for r in doc["reserved"]["regions"]]
    assert 1024 in nids and {0, 1} <= set(nids)
    assert [r[5] for r in rows] == ["-" if n == 1024 else str(n) for n in nids]  # SIZE is two words
    assert real_truth("6g-2node-kaslr")["memblock"]["reserved"]["regions"][-1]["nid"] == nids[-1]
    assert "1024" not in {r[5] for r in rows}


def test_booleans_in_words() -> None:
    k = shared_kernel("1000m")
    explain = command_output(k, ["explain", "pfn:0x1000"]).splitlines()
    assert explain[2].endswith("pageblock 8 (Movable)  pfn_valid: yes")
    hole = command_output(k, ["explain", "pfn:0x40000"]).splitlines()  # section 8: no RAM
    assert hole[2] == "  section 8 (not present)  subsection 0 (not valid)  pageblock 0 (?)  pfn_valid: no"
    memblock = command_output(k, ["memblock"]).splitlines()
    assert memblock[0].endswith(": allocates top-down, current_limit 0x3e7df000")
    assert memblock[1] == "system_state SYSTEM_RUNNING; discarded (memblock_memory = 0x0 (NULL: memblock_discard() ran))"
    audit = command_output(k, ["audit"]).splitlines()
    assert audit[-1] == ("memblock: discarded (memblock_memory = 0x0 (NULL: memblock_discard() ran)); "
                         "memory frozen, reserved frozen")
