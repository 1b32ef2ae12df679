"""The debugger command shared by the drgn plugin and the gdb script.

The CLI and both debugger front ends offer the same views, ``VIEW [ADDR...] [-v] [--json] [--nr A-B]``, and
print them through :func:`command_output`, so their output is byte-for-byte identical. This module
holds the view table, the argument spec and the dispatch; the front ends only adapt their source
(a dump file, a drgn Program, a gdb inferior) to a :class:`~vmemdbg.kernel.Kernel` and print.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import VmemdbgError

if TYPE_CHECKING:
    from .kernel import Kernel

#: view name -> (engine view in vmemdbg.views, text renderer in vmemdbg.render, one-line help).
#: Names, not functions: the engine (numpy) is imported only when a view runs, so that the drgn
#: plugin, which drgn imports at every start, costs nothing until it is used.
VIEWS: dict[str, tuple[str, str, str]] = {
    "summary": ("summary", "render_summary", "kernel, bases, section constants and counts"),
    "sections": ("sections", "render_sections", "every present mem_section, decoded (like crash kmem -n)"),
    "vmemmap": ("vmemmap", "render_vmemmap", "vmemmap page-table census, audit and overhead per node"),
    "memblock": ("memblock", "render_memblock", "memblock memory/reserved regions and whether they can be trusted"),
    "e820": ("e820", "render_e820", "the kernel's e820 tables (modified, firmware, kexec)"),
    "memory-blocks": ("memory_blocks", "render_memory_blocks",
                      "memory blocks as /sys/devices/system/memory shows them (state, zone, nid, phys_index)"),
    "audit": ("audit", "render_audit", "everything at once: summary, sections, vmemmap census, memblock, e820"),
    "describe": ("describe", "render_describe", "the machine description (simulate's TOML) the dump implies"),
    "check": ("check", "render_check",
              "the dump against the simulator's replay of its boot: every difference explained or flagged"),
}

#: The command's first argument: every view, explain, and map (writes a file, docs/map.md).
VIEW_NAMES: tuple[str, ...] = (*VIEWS, "explain", "map")

#: ``add_argument`` calls of the command, as (positional names, keyword arguments).
ARGUMENTS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("view",), {"choices": VIEW_NAMES, "help": "what to print (as the vmemdbg CLI command of that name)"}),
    (("addrs",), {"nargs": "*", "metavar": "ADDR",
                  "help": "for explain: pfn:N, phys:A, direct:VA, page:VA or a bare address"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "more detail (layout reasons, migratetypes, notes)"}),
    (("--json",), {"action": "store_true", "help": "print JSON (schema vmemdbg/1, docs/json.md)"}),
    (("--nr",), {"metavar": "A[-B]", "default": None, "help": "sections: only section numbers A to B"}),
    (("-o", "--output"), {"metavar": "FILE", "default": None, "help": "map: write the map to FILE (.html or .svg)"}),
    (("--check",), {"metavar": "FILE", "default": None,
                    "help": "map: highlight the differences of `vmemdbg check --json` FILE"}),
)


def parse_nr_range(text: str) -> tuple[int, int]:
    """``"A"`` or ``"A-B"`` (decimal or 0x hex) as an inclusive section-number range."""
    first, _, last = text.partition("-")
    try:
        a = int(first, 0)
        b = int(last, 0) if last else a
    except ValueError:
        raise VmemdbgError(f"--nr {text!r}: expected A or A-B (section numbers)") from None
    if b < a:
        raise VmemdbgError(f"--nr {text!r}: the range is empty")
    return a, b

DESCRIPTION = "explain the sparse memory model (mem_section, vmemmap page tables) of the debugged kernel"


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`VmemdbgError` instead of exiting the debugger."""

    def error(self, message: str) -> NoReturn:
        raise VmemdbgError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise VmemdbgError(message.strip() if message else f"{self.prog}: exit {status}")


def build_parser(prog: str = "vmemdbg") -> argparse.ArgumentParser:
    """The command's parser (``-h`` is left out: the debuggers have their own help)."""
    p = _Parser(prog=prog, description=DESCRIPTION, add_help=False)
    for names, kwargs in ARGUMENTS:
        p.add_argument(*names, **kwargs)
    return p


def command_doc(kernel: "Kernel", args: argparse.Namespace) -> tuple[Any, Callable[[Any, bool], str]]:
    """The view document for ``args`` on ``kernel`` and the function rendering it as text."""
    from . import render, views

    if args.view == "explain":
        if not args.addrs:
            raise VmemdbgError("explain needs at least one ADDR")
        docs = [views.explain(kernel, a) for a in args.addrs]
        if len(docs) == 1:
            return docs[0], render.render_explain
        return (views._doc("explain", results=docs),
                lambda d, verbose: "\n\n".join(render.render_explain(x, verbose) for x in d["results"]))
    if args.view == "map":
        return map_doc(kernel, args)
    if getattr(args, "output", None) or getattr(args, "check", None):
        raise VmemdbgError(f"-o/--check apply to map, not {args.view}")
    if args.addrs:
        raise VmemdbgError(f"{args.view} takes no ADDR (got {' '.join(args.addrs)})")
    view_name, text_name, _ = VIEWS[args.view]
    view, text = getattr(views, view_name), getattr(render, text_name)
    params = inspect.signature(view).parameters
    kwargs: dict[str, Any] = {}
    if args.verbose and "with_migratetypes" in params:
        kwargs["with_migratetypes"] = True
    if "with_sections" in params:  # the text renderer of audit does not print the per-section list
        kwargs["with_sections"] = args.json
    if getattr(args, "nr", None) is not None:
        if "nr_range" not in params:
            raise VmemdbgError(f"--nr applies to sections, not {args.view}")
        kwargs["nr_range"] = parse_nr_range(args.nr)
    return view(kernel, **kwargs), text


def command_output(kernel: "Kernel", args: argparse.Namespace) -> str:
    """The text the CLI prints for ``args`` on ``kernel`` (without the final newline)."""
    doc, text = command_doc(kernel, args)
    return json.dumps(doc, indent=1) if args.json else text(doc, args.verbose)


def map_doc(kernel: "Kernel", args: argparse.Namespace) -> tuple[dict, Callable[[dict, bool], str]]:
    """``map -o FILE [--check FILE]``: write the map; the document says what was written."""
    from . import render, views

    try:
        from .map import write_map  # drawsvg is imported only when a map is drawn
    except ImportError as e:
        raise VmemdbgError(f"map needs the drawsvg package ({e}): pip install drawsvg "
                           "(in gdb: VMEMDBG_SITE=<its site-packages>)") from None
    if not getattr(args, "output", None):
        raise VmemdbgError("map needs -o FILE (.html or .svg)")
    if args.addrs:
        raise VmemdbgError(f"map takes no ADDR (got {' '.join(args.addrs)})")
    st = write_map(kernel, args.output, check=getattr(args, "check", None))
    return views._doc("map", **st), lambda d, verbose: (
        f"wrote {d['output']}: {render.human(d['bytes'])}, {d['section_runs']} present-section runs, "
        f"{d['nodes']} nodes, {d['reserved']} reserved regions, {d['memmap_groups']} memmap groups, "
        f"{d['findings']} findings")
