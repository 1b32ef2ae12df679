"""Every vmemdbg command, declared once: name, arguments, help, engine function, renderer.

The CLI (vmemdbg/cli.py), the drgn command and API (vmemdbg/drgn_plugin.py) and the gdb commands
are generated from :data:`COMMANDS`, so a command prints the same bytes in every front end
(:func:`output`). A front end only adapts its source (a dump file, a drgn Program, a gdb
inferior) to a :class:`~vmemdbg.kernel.Kernel` and prints.

Importing this module costs nothing: drgn imports the plugin, hence this table, at every start.
The engine (numpy), the renderers and the simulator are imported when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from . import render as text
from .addresses import FORMS
from .errors import VmemdbgError

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(frozen=True)
class Argument:
    """One ``add_argument`` call of a command."""

    flags: tuple[str, ...]
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    complete: str | None = None  # "address" (the explain forms), "file", or None


@dataclass(frozen=True)
class Command:
    """A command: what every front end needs to offer, parse, run and print it."""

    name: str
    help: str
    description: str
    arguments: tuple[Argument, ...]
    run: Callable[["Kernel", argparse.Namespace], Any]
    render: Callable[[Any, argparse.Namespace], str]
    debugger: bool = True  # offered in drgn and gdb (not: extract, simulate)
    #: What ``run`` gets: "kernel", the analysed dump; "dump", None (it opens args.dump itself);
    #: "nothing", None (no dump is involved).
    reads: str = "kernel"
    #: The CLI's exit status for a document (check: 1 when a difference is unexplained).
    status: Callable[[Any], int] = field(default=lambda doc: 0)


JSON = Argument(("--json",), "print JSON (schema vmemdbg/2, docs/json.md)", {"action": "store_true"})


def _verbose(detail: str | None) -> Argument:
    """``-v``: what it adds to this command's text (None: nothing, accepted like everywhere)."""
    return Argument(("-v", "--verbose"), f"more detail ({detail})" if detail else "accepted; prints nothing more here",
                    {"action": "store_true"})


def _output(help: str, metavar: str) -> Argument:
    """``-o FILE``, required: the file a command writes."""
    return Argument(("-o", "--output"), help, {"required": True, "metavar": metavar}, complete="file")


def _text(renderer: Callable[[Any, bool], str]) -> Callable[[Any, argparse.Namespace], str]:
    """A renderer of vmemdbg/render.py, given ``-v``."""
    def render(doc: Any, args: argparse.Namespace) -> str:
        return renderer(doc, args.verbose)
    render.__name__ = render.__qualname__ = renderer.__name__
    return render


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


# --- engine calls: each imports the engine only when it runs -------------------------------------

def _summary(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import summary

    return summary(kernel)


def _sections(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import sections

    nr = None if args.nr is None else parse_nr_range(args.nr)
    return sections(kernel, with_migratetypes=args.verbose, nr_range=nr)


def _vmemmap(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import vmemmap

    return vmemmap(kernel)


def _memblock(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import memblock

    return memblock(kernel)


def _e820(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import e820

    return e820(kernel)


def _memory_blocks(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import memory_blocks

    return memory_blocks(kernel)


def _audit(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import audit

    # the text report does not print the per-section list: it is in the JSON only
    return audit(kernel, with_sections=args.json, with_migratetypes=args.verbose)


def _describe(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import describe

    doc = describe(kernel)
    if args.output:
        try:
            with open(args.output, "w") as f:
                f.write(doc["toml"])
        except OSError as e:
            raise VmemdbgError(f"{args.output}: cannot write: {e.strerror}") from None
    return doc


def _render_describe(doc: dict, args: argparse.Namespace) -> str:
    if not args.output:
        return text.render_describe(doc, args.verbose)
    return (f"wrote {args.output}: {len(doc['derived'])} fields derived, {len(doc['assumed'])} assumed:\n"
            + "\n".join(f"  {a['field']}: {a['assumption']}" for a in doc["assumed"]))


def _check(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import check

    return check(kernel)


def _explain(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import document, explain

    docs = [explain(kernel, a) for a in args.addrs]
    return docs[0] if len(docs) == 1 else document("explain", results=docs)


def _render_explain(doc: dict, args: argparse.Namespace) -> str:
    return "\n\n".join(text.render_explain(d, args.verbose) for d in doc.get("results", [doc]))


def _map(kernel: "Kernel", args: argparse.Namespace) -> dict:
    from .views import document

    try:
        from .map import write_map  # drawsvg is imported only when a map is drawn
    except ImportError as e:
        raise VmemdbgError(f"map needs the drawsvg package ({e}): pip install drawsvg "
                           "(in gdb: into the venv gdb loads vmemdbg from)") from None
    return document("map", **write_map(kernel, args.output, check=args.check))


def _render_map(doc: dict, args: argparse.Namespace) -> str:
    return (f"wrote {doc['output']}: {text.human(doc['bytes'])}, {doc['section_runs']} present-section runs, "
            f"{doc['nodes']} nodes, {doc['reserved']} reserved regions, {doc['memmap_groups']} memmap groups, "
            f"{doc['findings']} findings")


def source_options(args: argparse.Namespace) -> dict:
    """The ``Kernel`` keyword arguments of the CLI's source options ``--vmcoreinfo``/``--symbols``."""
    from .symbols import load_symbol_file

    kw: dict = {}
    if getattr(args, "vmcoreinfo", None):
        try:
            with open(args.vmcoreinfo, "rb") as f:
                kw["vmcoreinfo"] = f.read()
        except OSError as e:
            raise VmemdbgError(f"{args.vmcoreinfo}: cannot read: {e.strerror}") from None
    if getattr(args, "symbols", None):
        kw["symbols"] = load_symbol_file(args.symbols)
    return kw


def _extract(kernel: "Kernel | None", args: argparse.Namespace) -> dict:
    from .extract import extract
    from .views import document

    st = extract(args.dump, args.output, explain_addrs=args.keep, **source_options(args))
    return document("extract", output=args.output, **st)


def _render_extract(doc: dict, args: argparse.Namespace) -> str:
    return f"wrote {doc['output']}: {doc['pages']} pages, {text.human(doc['bytes'])}"


#: The layouts ``simulate --layout`` offers: those of vmemdbg.sim.writer.LAYOUTS (a test checks),
#: spelled out here so that the CLI's parser does not import the simulator.
SIMULATE_LAYOUTS = ("pages", "vmcore", "qemu", "kdump")


def _simulate(kernel: "Kernel | None", args: argparse.Namespace) -> dict:
    try:
        from .sim import simulate
    except ImportError as e:
        raise VmemdbgError(f"simulate needs the simulator's dependencies ({e})") from None
    r = simulate(args.machine, args.output, trace=args.trace, debuginfo=args.debuginfo, layout=args.layout)
    return {"output": args.output, "machine": r.machine.name, "present_sections": len(r.present_sections),
            "pmd_leaves": r.nr_vmemmap_pmd_leaves, "pte_leaves": len(r.vmemmap_pte_leaves),
            "allocations": len(r.allocations), "debuginfo": str(r.debuginfo_path),
            "build_id": r.debuginfo.build_id, "messages": list(r.messages)}


def _render_simulate(doc: dict, args: argparse.Namespace) -> str:
    return "\n".join([f"wrote {doc['output']}: {doc['machine']}, {doc['present_sections']} present sections, "
                      f"{doc['pmd_leaves']} PMD + {doc['pte_leaves']} PTE vmemmap leaves, {doc['allocations']} "
                      f"memblock allocations, debuginfo {doc['debuginfo']} (build-id {doc['build_id'][:12]})"]
                     + [f"  kernel: {m}" for m in doc["messages"]])


def _view(name: str, help: str, description: str, run: Callable[["Kernel", argparse.Namespace], Any],
          render: Callable[[Any, argparse.Namespace], str], verbose: str | None, *extra: Argument,
          **kw: Any) -> Command:
    """A command printing a document, with ``--json``, ``-v`` (adding ``verbose``) and ``extra``."""
    return Command(name, help, description, (JSON, _verbose(verbose), *extra), run, render, **kw)


_ADDRESS_FORMS = ", ".join(f"{form} ({meaning})" for form, meaning in FORMS)

COMMANDS: dict[str, Command] = {c.name: c for c in (
    _view("summary", "kernel, bases, section constants and counts",
          "The kernel's identity and randomized bases, the sparse memory model's constants "
          "(SECTION_SIZE_BITS, MAX_PHYSMEM_BITS, mem_section roots), section counts and the vmemmap's totals.",
          _summary, _text(text.render_summary), "layout reasons, symbol source, notes"),
    _view("sections", "every present mem_section, decoded (like crash kmem -n)",
          "Every present mem_section: its address, coded and decoded mem_map, flags, node, usage "
          "(subsection map, pageblock flags). Compare with crash's kmem -n.",
          _sections, _text(text.render_sections), "per-pageblock migratetypes, layout reasons",
          Argument(("--nr",), "only section numbers A to B (e.g. 32-47)", {"metavar": "A[-B]", "default": None})),
    _view("vmemmap", "vmemmap page-table census, audit and overhead per node",
          "The page tables mapping the vmemmap region: runs of PMD and PTE leaves with their backing "
          "frames and nodes, the audit's findings (holes mapped, off-node memmap, HVO) and the memmap "
          "overhead per node.",
          _vmemmap, _text(text.render_vmemmap), "every HVO folio, where the backing frames' nodes come from"),
    _view("memblock", "memblock memory/reserved regions and whether they can be trusted",
          "memblock.memory and memblock.reserved with flags and nodes, and whether they can still be "
          "trusted (memblock is discarded after boot unless CONFIG_ARCH_KEEP_MEMBLOCK).",
          _memblock, _text(text.render_memblock), None),
    _view("e820", "the kernel's e820 tables (modified, firmware, kexec)",
          "The kernel's e820 tables: e820_table (as modified by the kernel), e820_table_firmware and "
          "e820_table_kexec.",
          _e820, _text(text.render_e820), None),
    _view("memory-blocks", "memory blocks as /sys/devices/system/memory shows them (state, zone, nid, phys_index)",
          "Memory blocks as /sys/devices/system/memory shows them (state, zone, nid, phys_index), and the "
          "ZONE_DEVICE sections that have no memory block.",
          _memory_blocks, _text(text.render_memory_blocks), "how state, zone and nid are derived"),
    _view("audit", "everything at once: summary, sections, vmemmap census, memblock, e820",
          "Everything at once: the summary, the vmemmap census with its findings, memblock's trust and "
          "e820 (--json adds every section).",
          _audit, _text(text.render_audit), "as summary -v and vmemmap -v"),
    _view("describe", "the machine description (simulate's TOML) the dump implies",
          "The machine description (the TOML that simulate reads, docs/machine-format.md) the dump "
          "implies; its leading comments say which fields were derived and which assumed.",
          _describe, _render_describe, None,
          Argument(("-o", "--output"), "write the machine file here", {"metavar": "MACHINE.toml", "default": None},
                   complete="file")),
    _view("check", "the dump against the simulator's replay of its boot: every difference explained or flagged",
          "Replays the boot of the machine the dump implies (describe) and compares: every difference is "
          "explained by a named mechanism or flagged. The CLI exits 1 when a difference is unexplained.",
          _check, _text(text.render_check), "derived fields, notes",
          status=lambda doc: 0 if doc["consistent"] else 1),
    _view("explain", "section, pageblock, struct page and page-table path of addresses",
          "For each ADDR: its section, subsection, pageblock and node, its struct page and the "
          "page-table path that maps the struct page.",
          _explain, _render_explain, None,
          Argument(("addrs",), f"one of: {_ADDRESS_FORMS}", {"nargs": "+", "metavar": "ADDR"}, complete="address")),
    _view("map", "draw physical memory and the vmemmap into an HTML or SVG file",
          "Write an interactive .html (self-contained) or a static .svg map of physical memory and the "
          "vmemmap (docs/map.md).",
          _map, _render_map, None,
          _output("map.html or map.svg", "FILE"),
          Argument(("--check",), "JSON of `vmemdbg check --json` whose differences to highlight",
                   {"metavar": "FILE", "default": None}, complete="file")),
    _view("extract", "write a minimal vmcore holding only what the views read",
          "Write a minimal ELF vmcore holding only the pages the views read; every view on it is checked "
          "to equal the view on DUMP.",
          _extract, _render_extract, None,
          _output("output ELF vmcore", "SMALL"),
          Argument(("--keep",), "also keep what `explain ADDR` reads",
                   {"action": "append", "default": [], "metavar": "ADDR"}, complete="address"),
          debugger=False, reads="dump"),
    Command("simulate", "replay sparse_init for a machine description and write a fixture vmcore",
            "Replay Linux 6.1 or 6.12 x86-64 early boot (memblock, sparse_init, vmemmap) for MACHINE.toml "
            "(docs/machine-format.md) and write an ELF vmcore fixture.",
            (Argument(("machine",), "the machine description", {"metavar": "MACHINE.toml"}, complete="file"),
             _output("the fixture vmcore to write", "FIXTURE.elf"),
             Argument(("--trace",), "write the memblock=debug style allocation log", {"metavar": "TRACE.txt"},
                      complete="file"),
             Argument(("--debuginfo",), "copy the matching debug-info ELF here", {"metavar": "FIXTURE.debug"},
                      complete="file"),
             Argument(("--layout",),
                      "pages: only the bytes the image holds, one PT_LOAD per run (small file, the default); "
                      "vmcore: like /proc/vmcore, one PT_LOAD per System RAM range, sparse file as big as the "
                      "RAM; qemu: the same with p_vaddr = p_paddr like QEMU dump-guest-memory; kdump: the "
                      "vmcore layout rewritten kdump-compressed with free memory excluded (docs/scale.md)",
                      {"choices": SIMULATE_LAYOUTS, "default": "pages"})),
            _simulate, _render_simulate, debugger=False, reads="nothing"),
)}

#: The commands the debuggers (drgn, gdb) offer.
DEBUGGER_COMMANDS: dict[str, Command] = {n: c for n, c in COMMANDS.items() if c.debugger}


def debugger_command(view: str) -> Command:
    """The debugger command named ``view``, or a :class:`VmemdbgError` naming the choices."""
    command = DEBUGGER_COMMANDS.get(view)
    if command is None:
        raise VmemdbgError(f"unknown view {view!r} (choose from {', '.join(DEBUGGER_COMMANDS)})")
    return command


def add_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, command: Command) -> None:
    """Add ``command``'s own arguments to ``p``."""
    for a in command.arguments:
        p.add_argument(*a.flags, help=a.help, **a.kwargs)


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`VmemdbgError` instead of exiting the debugger."""

    def error(self, message: str) -> NoReturn:
        raise VmemdbgError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise VmemdbgError(message.strip() if message else f"{self.prog}: exit {status}")


def parser(command: Command, prog: str) -> argparse.ArgumentParser:
    """The debugger parser of ``command``'s own arguments; it raises :class:`VmemdbgError` instead
    of exiting (``-h`` is left out: each debugger has its own help, :func:`help_text`)."""
    p = _Parser(prog=prog, description=command.description, add_help=False)
    add_arguments(p, command)
    return p


def help_text(command: Command, prog: str) -> str:
    """The help of ``command`` as the debuggers print it: usage, description, arguments."""
    return parser(command, prog).format_help().rstrip("\n")


def output(kernel: "Kernel", command: Command, args: argparse.Namespace) -> str:
    """What the CLI prints for ``command`` and ``args`` on ``kernel`` (text or JSON, without the
    final newline)."""
    doc = command.run(kernel, args)
    if getattr(args, "json", False):
        from .jsonout import dumps

        return dumps(doc)
    return command.render(doc, args)
