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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import drgn
from drgn.commands import CommandError, argument, command

from .errors import VmemdbgError
from .frontend import ARGUMENTS, DESCRIPTION, command_output

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


def summary(prog: drgn.Program) -> dict:
    """The ``summary`` view of ``prog`` (docs/json.md)."""
    from . import views

    return views.summary(kernel_from_prog(prog))


def sections(prog: drgn.Program) -> dict:
    """The ``sections`` view of ``prog``."""
    from . import views

    return views.sections(kernel_from_prog(prog))


def vmemmap(prog: drgn.Program) -> dict:
    """The ``vmemmap`` view of ``prog``."""
    from . import views

    return views.vmemmap(kernel_from_prog(prog))


def memory_blocks(prog: drgn.Program) -> dict:
    """The ``memory-blocks`` view of ``prog`` (what /sys/devices/system/memory shows)."""
    from . import views

    return views.memory_blocks(kernel_from_prog(prog))


def explain(prog: drgn.Program, addr: str) -> dict:
    """The ``explain`` view of one address (``pfn:N``, ``phys:A``, a direct-map or struct page VA)."""
    from . import views

    return views.explain(kernel_from_prog(prog), addr)


def write_map(prog: drgn.Program, output: str, check: str | None = None) -> dict:
    """Draw the map of ``prog`` into ``output`` (``.html`` or ``.svg``, docs/map.md); ``check`` is a
    ``vmemdbg check --json`` file whose differences to highlight. Returns what was written."""
    from .map import write_map as _write

    return _write(kernel_from_prog(prog), output, check=check)


def _is_kernel(prog: drgn.Program) -> bool:
    return bool(prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL)


@command(
    name="vmemdbg",
    description=DESCRIPTION,
    long_description="Prints exactly what the vmemdbg CLI prints for the same view.",
    arguments=tuple(argument(*names, **kwargs) for names, kwargs in ARGUMENTS),
    enabled=_is_kernel,
)
def _cmd_vmemdbg(prog: drgn.Program, name: str, args: argparse.Namespace, **kwargs: Any) -> None:
    """``%vmemdbg VIEW [ADDR...] [-v] [--json]``: errors become one-line drgn command errors."""
    try:
        print(command_output(kernel_from_prog(prog), args))
    except VmemdbgError as e:
        raise CommandError(str(e)) from None


__all__ = ["CACHE_KEY", "DrgnSymbols", "explain", "kernel_from_prog", "memory_blocks", "sections", "summary",
           "vmemmap", "write_map"]
