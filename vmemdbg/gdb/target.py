"""What gdb is attached to, as an engine :class:`~vmemdbg.kernel.Kernel`.

The VMCOREINFO and the symbols come from the best source gdb has:

* a vmcore (``core-file``): its VMCOREINFO note. With a vmlinux loaded, symbol addresses are
  gdb's moved by the note's KERNELOFFSET (:func:`~vmemdbg.gdb.debuginfo.relocation`), so
  ``gdb vmlinux vmcore`` works on a KASLR kernel as it is; without one, the dump's kallsyms.
* a live kernel (``target remote`` to QEMU's gdbstub), even mid-boot: VMCOREINFO composed from the
  vmlinux's symbols and types (:func:`~vmemdbg.gdb.debuginfo.compose_vmcoreinfo`).

Every situation known not to work is refused in one line naming it and what to do: no target, a
live kernel not started yet or without its vmlinux, a vmlinux that is not the core's, a core
without VMCOREINFO. The Kernel is cached until the target stops, continues or exits, its memory is
written, or symbol files change.
"""

from __future__ import annotations

import gdb

from ..elfcore import ElfCoreSource
from ..errors import VmemdbgError
from ..kernel import Kernel
from ..abi import START_KERNEL_MAP
from ..vmcoreinfo import VmcoreInfo
from .debuginfo import GdbDebugFacts, GdbSymbols, compose_vmcoreinfo, has_kernel_debug_info, relocation
from .memory import GdbSource

NO_TARGET = ("no target: open a vmcore (core-file VMCORE) or connect to a kernel's gdbstub "
             "(target remote HOST:PORT)")
NEEDS_VMLINUX = ("a live kernel needs its vmlinux, for symbols and to compose VMCOREINFO: file VMLINUX "
                 "(a KASLR kernel: symbol-file -o KERNELOFFSET VMLINUX, or boot it with nokaslr)")


def core_file() -> str | None:
    """Path of the core file gdb has open, if any (gdb 13 has no Python API for it)."""
    for line in gdb.execute("info target", to_string=True).splitlines():
        if line.strip().startswith("`") and "file type" in line:
            return line.strip()[1:].split("', file type")[0]
    return None


def vmlinux() -> str:
    """The file gdb has the kernel's symbols from (for messages)."""
    prog = gdb.current_progspace()
    return (prog.filename if prog is not None else None) or "the vmlinux gdb loaded"


def _note(core: str) -> tuple[str | None, bool]:
    """The core's VMCOREINFO text, and whether it holds physical addresses only (QEMU, no paging)."""
    elf = ElfCoreSource(core)
    try:
        raw = elf.vmcoreinfo()
        return (raw.decode("ascii", "replace") if raw else None), not elf.kdump_style
    finally:
        elf.close()


def _from_core(core: str) -> Kernel:
    """A Kernel over a vmcore: its VMCOREINFO note; gdb's symbols (relocated) if it has a vmlinux."""
    text, physical = _note(core)
    debug = has_kernel_debug_info()
    if text is None:
        if debug:
            return _composed(f"gdb core {core} (no VMCOREINFO note: composed from debug info)")
        raise VmemdbgError(f"{core}: no VMCOREINFO note, and gdb has no kernel debug info to compose one: "
                           "file VMLINUX")
    info = VmcoreInfo(text)
    kind = "physical addresses (QEMU dump-guest-memory)" if physical else "kdump"
    symbols = facts = None
    if debug:
        slide = relocation(info, vmlinux())
        if slide:
            gdb.write(f"vmemdbg: {vmlinux()} relocated by {slide:#x} (KERNELOFFSET {info.kernel_offset:#x} of the "
                      f"vmcore) for vmemdbg; for gdb's own expressions: symbol-file -o {info.kernel_offset:#x} {vmlinux()}\n",
                      gdb.STDERR)
        symbols, facts = GdbSymbols(slide), GdbDebugFacts()
    where = f"gdb core {core} ({kind}, VMCOREINFO note, {'gdb symbols' if debug else 'kallsyms'})"
    source = GdbSource(info.number("phys_base") or 0, where, identity=physical)
    kernel = Kernel(source, vmcoreinfo=text.encode(), symbols=symbols, symbols_relocated=True, debug=facts)
    if not physical:
        source.direct_map_base = kernel.page_offset_base
    return kernel


def _not_running(e: gdb.error) -> VmemdbgError:
    """Why reading the kernel's variables failed on a live target, in one line."""
    try:
        pc = int(gdb.parse_and_eval("(unsigned long)$pc"))
    except gdb.error:
        pc = None
    if pc is not None and pc < START_KERNEL_MAP:
        return VmemdbgError(f"the kernel is not running yet: the CPU is at {pc:#x}, outside the kernel image, and gdb "
                            f"cannot read the kernel's memory ({e}); continue until the kernel runs on its own page "
                            "tables (e.g. break start_kernel)")
    return VmemdbgError(f"gdb cannot read the kernel's variables ({e}): if the kernel runs with KASLR, load "
                        "the vmlinux with symbol-file -o KERNELOFFSET VMLINUX (or boot with nokaslr)")


def _composed(where: str) -> Kernel:
    """A Kernel over a live target: VMCOREINFO composed from gdb's debug info."""
    symbols = GdbSymbols()
    try:
        text = compose_vmcoreinfo(symbols)
    except gdb.MemoryError as e:
        raise _not_running(e) from None
    except KeyError as e:
        raise VmemdbgError(f"{vmlinux()} lacks the kernel symbol {e.args[0]} needed to compose VMCOREINFO") from None
    except gdb.error as e:
        raise VmemdbgError(f"{vmlinux()}: cannot compose VMCOREINFO from its debug info ({e})") from None
    source = GdbSource(VmcoreInfo(text).number("phys_base") or 0, where)
    kernel = Kernel(source, vmcoreinfo=text.encode(), symbols=symbols, symbols_relocated=True,
                    debug=GdbDebugFacts())
    source.direct_map_base = kernel.page_offset_base
    return kernel


def open_kernel() -> Kernel:
    """A :class:`Kernel` over what gdb is attached to (see the module docstring)."""
    connection = gdb.selected_inferior().connection
    if connection is None:
        raise VmemdbgError(NO_TARGET)
    core = core_file() if connection.type == "core" else None
    if core is not None:
        return _from_core(core)
    if not has_kernel_debug_info():
        raise VmemdbgError(NEEDS_VMLINUX)
    where = " ".join(filter(None, ("gdb", connection.type, "target", connection.details)))
    return _composed(f"{where} (VMCOREINFO composed from debug info)")


_cache: dict[tuple[int, int, str | None], Kernel] = {}


def _invalidate(*_event: object) -> None:
    """Forget the analysed kernel: the target ran, its memory or its symbols changed."""
    _cache.clear()


for _registry in (gdb.events.stop, gdb.events.cont, gdb.events.memory_changed, gdb.events.new_objfile,
                  gdb.events.clear_objfiles, gdb.events.exited):
    _registry.connect(_invalidate)


def current_kernel() -> Kernel:
    """The cached Kernel of the selected inferior and core file (rebuilt after any stop)."""
    inf = gdb.selected_inferior()
    key = (inf.num, inf.pid, core_file())
    if key not in _cache:
        _cache[key] = open_kernel()
    return _cache[key]
