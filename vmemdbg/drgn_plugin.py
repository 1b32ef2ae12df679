"""drgn front end: a Python API for drgn scripts and the ``vmemdbg`` drgn command.

In a drgn script or session::

    from vmemdbg.drgn_plugin import kernel_from_prog, summary, vmemmap, explain
    doc = vmemmap(prog)                     # the view dict (docs/json.md)
    k = kernel_from_prog(prog)              # the engine's Kernel, cached in prog.cache

At the drgn prompt (the plugin is registered through the ``drgn.plugins`` entry point, so drgn
imports this module when it creates a Program)::

    >>> %vmemdbg summary
    >>> %vmemdbg explain pfn:0x1000 -v

and from scripts, ``drgn.commands.run_command(prog, "vmemdbg vmemmap")``.

drgn only serves physical memory (``prog.read(addr, size, True)``) and the VMCOREINFO it found.
Symbols come from drgn when it has debug info for the kernel (already KASLR-relocated); without
debug info the engine decodes the dump's own kallsyms, exactly like the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import drgn
from drgn.commands import CommandError, argument
from drgn.commands.linux import linux_kernel_command

from .commands import DEBUGGER_COMMANDS, debugger_command, help_text, output, parser
from .errors import VmemdbgError

if TYPE_CHECKING:  # the engine (numpy) is imported when a view runs, not when drgn starts
    from .kernel import Kernel

#: Key of the analysed :class:`Kernel` in ``prog.cache``.
CACHE_KEY = "vmemdbg.kernel"


class DrgnSymbols(Mapping[str, int]):
    """Runtime symbol addresses looked up lazily through ``prog.symbol(name)``."""

    def __init__(self, prog: drgn.Program):
        self.prog = prog

    def __getitem__(self, name: str) -> int:
        try:
            return self.prog.symbol(name).address
        except LookupError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return (s.name for s in self.prog.symbols())

    def __len__(self) -> int:
        return len(self.prog.symbols())


class DrgnDebugFacts:
    """Type facts from drgn's debug info (:class:`vmemdbg.kernel.DebugFacts`)."""

    def __init__(self, prog: drgn.Program):
        self.prog = prog

    def sizeof(self, type_name: str) -> int | None:
        """``sizeof(type_name)`` or None."""
        try:
            return drgn.sizeof(self.prog.type(type_name))
        except (LookupError, ValueError):
            return None

    def enumerator(self, name: str) -> int | None:
        """The value of enum constant ``name`` or None."""
        try:
            return self.prog.constant(name).value_()
        except (LookupError, ValueError):
            return None


def _has_kernel_symbols(prog: drgn.Program) -> bool:
    """True if drgn resolves kernel symbols (vmlinux debug info loaded)."""
    try:
        prog.symbol("init_top_pgt")
    except LookupError:
        return False
    return True


def kernel_from_prog(prog: drgn.Program) -> "Kernel":
    """The engine's :class:`Kernel` for ``prog``, built once and cached in ``prog.cache``.

    The cache is never invalidated: on a live kernel (``drgn -k``) drop ``prog.cache[CACHE_KEY]``
    to re-read a changed memory map.
    """
    kernel = prog.cache.get(CACHE_KEY)
    if kernel is None:
        from .drgnsource import DrgnSource
        from .kernel import Kernel

        source = DrgnSource(prog, "drgn program")
        if _has_kernel_symbols(prog):
            kernel = Kernel(source, symbols=DrgnSymbols(prog), symbols_relocated=True, debug=DrgnDebugFacts(prog))
        else:
            kernel = Kernel(source)
        prog.cache[CACHE_KEY] = kernel
    return kernel


# --- the API: one function per debugger command of vmemdbg/commands.py (a test checks) ----------

def summary(prog: drgn.Program) -> dict:
    """The ``summary`` view of ``prog`` (docs/json.md)."""
    from . import views

    return views.summary(kernel_from_prog(prog))


def sections(prog: drgn.Program, nr_range: tuple[int, int] | None = None, with_migratetypes: bool = False) -> dict:
    """The ``sections`` view of ``prog``; ``nr_range`` keeps section numbers ``first..last``."""
    from . import views

    return views.sections(kernel_from_prog(prog), with_migratetypes=with_migratetypes, nr_range=nr_range)


def vmemmap(prog: drgn.Program) -> dict:
    """The ``vmemmap`` view of ``prog``."""
    from . import views

    return views.vmemmap(kernel_from_prog(prog))


def memblock(prog: drgn.Program) -> dict:
    """The ``memblock`` view of ``prog``."""
    from . import views

    return views.memblock(kernel_from_prog(prog))


def e820(prog: drgn.Program) -> dict:
    """The ``e820`` view of ``prog``."""
    from . import views

    return views.e820(kernel_from_prog(prog))


def memory_blocks(prog: drgn.Program) -> dict:
    """The ``memory-blocks`` view of ``prog`` (what /sys/devices/system/memory shows)."""
    from . import views

    return views.memory_blocks(kernel_from_prog(prog))


def audit(prog: drgn.Program, with_sections: bool = True, with_migratetypes: bool = False) -> dict:
    """The ``audit`` view of ``prog`` (summary, sections, vmemmap census, memblock, e820)."""
    from . import views

    return views.audit(kernel_from_prog(prog), with_sections=with_sections, with_migratetypes=with_migratetypes)


def describe(prog: drgn.Program) -> dict:
    """The ``describe`` view of ``prog``: the machine description it implies, with its TOML text."""
    from . import views

    return views.describe(kernel_from_prog(prog))


def check(prog: drgn.Program) -> dict:
    """The ``check`` view of ``prog``: the kernel against the simulator's replay of its boot."""
    from . import views

    return views.check(kernel_from_prog(prog))


def explain(prog: drgn.Program, addr: str) -> dict:
    """The ``explain`` view of one address (``pfn:N``, ``phys:A``, ``direct:VA``, ``page:VA`` or a
    bare address, vmemdbg/addresses.py)."""
    from . import views

    return views.explain(kernel_from_prog(prog), addr)


def write_map(prog: drgn.Program, output: str, check: str | None = None) -> dict:
    """Draw the map of ``prog`` into ``output`` (``.html`` or ``.svg``, docs/map.md); ``check`` is a
    ``vmemdbg check --json`` file whose differences to highlight. Returns what was written."""
    from .map import write_map as _write

    return _write(kernel_from_prog(prog), output, check=check)


#: The API function of each debugger command.
API = {"summary": summary, "sections": sections, "vmemmap": vmemmap, "memblock": memblock, "e820": e820,
       "memory-blocks": memory_blocks, "audit": audit, "describe": describe, "check": check,
       "explain": explain, "map": write_map}


# --- drgn Objects, where the kernel has a type (needs the kernel's debug info) --------------------

def _pointer(prog: drgn.Program, type_name: str, address: int | None) -> drgn.Object | None:
    """``(type_name *)address``, or None for None; refuses without the kernel's debug info."""
    try:
        pointer = prog.pointer_type(prog.type(type_name))
    except LookupError:
        raise VmemdbgError(f"{type_name} objects need the kernel's debug info "
                           "(drgn -s VMLINUX, or prog.load_debug_info)") from None
    return None if address is None else drgn.Object(prog, pointer, address)


def section_objects(prog: drgn.Program, nr_range: tuple[int, int] | None = None) -> Iterator[tuple[int, drgn.Object]]:
    """``(nr, struct mem_section *)`` of every present section (like drgn's
    ``for_each_present_section``), as the ``sections`` view lists them."""
    for row in sections(prog, nr_range)["sections"]:
        yield row["nr"], _pointer(prog, "struct mem_section", row["section"])


def usage_objects(prog: drgn.Program, nr_range: tuple[int, int] | None = None) -> Iterator[tuple[int, drgn.Object]]:
    """``(nr, struct mem_section_usage *)`` of every present section (its ``ms->usage``)."""
    for row in sections(prog, nr_range)["sections"]:
        yield row["nr"], _pointer(prog, "struct mem_section_usage", row["usage"])


def page_object(prog: drgn.Program, addr: str) -> drgn.Object:
    """The ``struct page *`` of an ``explain`` address (like drgn's ``pfn_to_page``)."""
    return _pointer(prog, "struct page", explain(prog, addr)["page"])


def explain_objects(prog: drgn.Program, addr: str) -> dict[str, drgn.Object | None]:
    """The objects behind ``explain(prog, addr)``: ``page`` (its ``struct page *``), ``section``
    (``struct mem_section *``) and ``usage`` (``struct mem_section_usage *``), None when the
    section is not present, and ``memmap_page``: the ``struct page *`` of the frame holding that
    struct page (the vmemmap leaf's backing page), None when the struct page is not mapped."""
    import numpy as np

    from .mmzone import present_sections

    kernel = kernel_from_prog(prog)
    doc = explain(prog, addr)
    secs = present_sections(kernel)
    idx = int(secs.index_of(np.array([doc["section"]["nr"]]))[0])
    present = idx >= 0
    return {"page": _pointer(prog, "struct page", doc["page"]),
            "section": _pointer(prog, "struct mem_section", int(secs.addr[idx]) if present else None),
            "usage": _pointer(prog, "struct mem_section_usage", int(secs.usage[idx]) if present else None),
            "memmap_page": _pointer(prog, "struct page", None if doc["page_phys"] is None
                                    else kernel.pfn_to_page(doc["page_phys"] >> 12))}


# --- the drgn command: %vmemdbg VIEW [ARGS], generated from vmemdbg/commands.py -------------------

DESCRIPTION = "explain the sparse memory model (mem_section, vmemmap page tables) of the debugged kernel"


def overview() -> str:
    """``%vmemdbg -h``: the usage and every view with its one-line help."""
    width = max(map(len, DEBUGGER_COMMANDS))
    return "\n".join([
        "usage: %vmemdbg VIEW [ARGS...]", "", DESCRIPTION + ", as the vmemdbg CLI prints it.", "", "views:",
        *(f"  {name:<{width}}  {c.help}" for name, c in DEBUGGER_COMMANDS.items()),
        "", "%vmemdbg VIEW -h prints the arguments of one view."])


@linux_kernel_command(
    name="vmemdbg",
    description=DESCRIPTION,
    long_description="Prints exactly what the vmemdbg CLI prints for the same view. "
                     "VIEW is one of " + ", ".join(DEBUGGER_COMMANDS) + "; %vmemdbg VIEW -h prints its help.",
    arguments=(
        argument("-h", "--help", action="store_true", help="list the views (VIEW -h: the help of one view)"),
        argument("view", nargs="?", metavar="VIEW", help="the view to print"),
        argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the view's arguments"),
    ),
)
def _cmd_vmemdbg(prog: drgn.Program, name: str, args: argparse.Namespace, **kwargs: Any) -> None:
    """``%vmemdbg VIEW [ARGS...]``: errors become one-line drgn command errors."""
    print(_run(prog, args.view, args.args, args.help))


def _run(prog: drgn.Program, view: str | None, words: Sequence[str], help: bool) -> str:
    if help or view is None:
        return overview()
    try:
        command = debugger_command(view)
        if "-h" in words or "--help" in words:
            return help_text(command, f"%vmemdbg {view}")
        return output(kernel_from_prog(prog), command, parser(command, f"vmemdbg {view}").parse_args(words))
    except VmemdbgError as e:
        raise CommandError(str(e)) from None


__all__ = ["API", "CACHE_KEY", "DrgnSymbols", "audit", "check", "describe", "e820", "explain", "explain_objects",
           "kernel_from_prog", "memblock", "memory_blocks", "page_object", "section_objects", "sections", "summary",
           "usage_objects", "vmemmap", "write_map"]
