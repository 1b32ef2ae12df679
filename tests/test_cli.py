"""The command table (vmemdbg/commands.py) and the CLI generated from it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from conftest import real_dump

from vmemdbg import commands
from vmemdbg.addresses import FORMS
from vmemdbg.cli import build_parser
from vmemdbg.commands import COMMANDS, DEBUGGER_COMMANDS
from vmemdbg.errors import VmemdbgError
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel

SOURCE_FLAGS = ["--vmcoreinfo", "--symbols"]


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(p: argparse.ArgumentParser) -> list[str]:
    return [s for a in p._actions for s in (a.option_strings or [a.dest])]


def test_the_cli_offers_each_declared_command_with_its_declared_arguments() -> None:
    subs = _subparsers(build_parser())
    assert list(subs) == ["summary", "sections", "vmemmap", "memblock", "e820", "memory-blocks", "audit", "describe",
                          "check", "explain", "map", "extract", "simulate"] == list(COMMANDS)
    for name, command in COMMANDS.items():
        declared = [f for a in command.arguments for f in a.flags]
        source = [] if command.reads == "nothing" else ["dump", *SOURCE_FLAGS]
        assert _flags(subs[name]) == ["-h", "--help", *source, *declared], name
        assert subs[name].description == command.description
    assert [n for n, c in COMMANDS.items() if not c.debugger] == ["extract", "simulate"]
    assert list(DEBUGGER_COMMANDS) == list(COMMANDS)[:11]


def test_simulate_layouts_are_the_simulators() -> None:
    from vmemdbg.sim.writer import LAYOUTS

    assert commands.SIMULATE_LAYOUTS == LAYOUTS


def test_explain_help_lists_every_address_form() -> None:
    (addrs,) = [a for a in COMMANDS["explain"].arguments if a.complete == "address"]
    for form, _ in FORMS:
        assert form in addrs.help
    assert [a.flags for a in COMMANDS["extract"].arguments if a.complete == "address"] == [("--keep",)]


def test_summary_does_not_import_the_simulator() -> None:
    code = ("import sys; from vmemdbg.cli import main; rc = main(['summary', sys.argv[1]]); "
            "print(rc, 'vmemdbg.sim' in sys.modules, 'vmemdbg.map' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, str(real_dump("1000m"))], capture_output=True, text=True, check=True)
    assert res.stdout.splitlines()[-1] == "0 False False"
    assert res.stdout.split()[:2] == ["kernel", "6.1.0-56-cloud-amd64"]


def test_debugger_parser_raises_instead_of_exiting() -> None:
    sections = COMMANDS["sections"]
    p = commands.parser(sections, "vmemdbg sections")
    assert vars(p.parse_args(["--nr", "32-47", "-v"])) == {"json": False, "verbose": True, "nr": "32-47"}
    with pytest.raises(VmemdbgError, match=r"^argument --nr: expected one argument$"):
        p.parse_args(["--nr"])
    with pytest.raises(VmemdbgError, match=r"^the following arguments are required: -o/--output$"):
        commands.parser(COMMANDS["map"], "vmemdbg map").parse_args([])
    text = commands.help_text(sections, "vmemdbg sections")
    assert text.startswith("usage: vmemdbg sections [--json] [-v] [--nr A[-B]]\n\nEvery present mem_section")
    assert "only section numbers A to B (e.g. 32-47)" in text
    with pytest.raises(VmemdbgError, match=r"^unknown view 'extract' \(choose from summary, "):
        commands.debugger_command("extract")


@pytest.mark.parametrize("argv", [["sections", "--nr", "32-47"], ["explain", "pfn:0x1000", "pfn:0x140000", "--json"],
                                  ["memblock", "-v"]], ids=" ".join)
def test_output_is_what_the_cli_prints(argv: list[str]) -> None:
    dump = real_dump("6g-2node-kaslr")
    cli = subprocess.run([sys.executable, "-m", "vmemdbg", argv[0], str(dump), *argv[1:]],
                         capture_output=True, text=True, check=True).stdout
    command = COMMANDS[argv[0]]
    src = open_dump(dump)
    try:
        out = commands.output(Kernel(src), command, commands.parser(command, argv[0]).parse_args(argv[1:]))
    finally:
        src.close()
    assert out + "\n" == cli
    assert cli.count("\n") > 3


def test_nr_range() -> None:
    assert commands.parse_nr_range("0x20-0x2f") == (32, 47)
    assert commands.parse_nr_range("5") == (5, 5)
    with pytest.raises(VmemdbgError, match=r"^--nr '3-1': the range is empty$"):
        commands.parse_nr_range("3-1")
