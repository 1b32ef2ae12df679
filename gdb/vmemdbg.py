"""gdb front end of vmemdbg: ``source gdb/vmemdbg.py``, then ``vmemdbg VIEW [ADDR...] [-v] [--json]``.

Works wherever gdb can read the kernel's memory:

* a vmcore with its vmlinux (``gdb vmlinux vmcore``; with KASLR ``symbol-file -o KERNELOFFSET``),
* a live QEMU gdbstub (``target remote :1234``) with the vmlinux, even mid-boot (a breakpoint in
  vmemmap_populate, long before VMCOREINFO exists),
* a vmcore without any vmlinux (``gdb -ex 'core-file vmcore'``).

gdb serves every byte: physical address ``p`` is read at its direct-map alias
``page_offset_base + p`` (or, before ``page_offset_base`` is known, at its kernel-image alias).
With kernel debug info the VMCOREINFO is *composed from gdb's symbols and types* (what
crash_save_vmcoreinfo_init would write) and symbols are gdb's (already relocated); without it the
VMCOREINFO note is read from gdb's core file and symbols come from the dump's kallsyms. The
analysis is the engine's (vmemdbg.views), the text the CLI's (vmemdbg.render).

numpy and pyelftools must be importable from gdb's own Python, which is usually the system one,
not the interpreter vmemdbg was pip-installed into. The script adds, in order: the directories in
``$VMEMDBG_SITE`` (``os.pathsep``-separated), then, if numpy or elftools is still missing, the
site-packages of the repository's ``.venv`` and of ``$VMEMDBG_PYTHON`` (default ``python3``), each
only if its Python minor version equals gdb's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _importable() -> bool:
    try:
        import elftools  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _interpreter_sites(python: str) -> list[str]:
    """site-packages of ``python`` if it runs, has the same minor version as gdb's Python, and has numpy."""
    code = ("import sys, sysconfig, numpy, elftools; p = sysconfig.get_paths(); "
            "print('%d.%d' % sys.version_info[:2]); print(p['purelib']); print(p['platlib'])")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return []
    if len(out) < 3 or out[0] != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return []
    return out[1:3]


def _setup_path() -> None:
    """Make ``vmemdbg``, numpy and elftools importable (see the module docstring)."""
    sites = [d for d in os.environ.get("VMEMDBG_SITE", "").split(os.pathsep) if d]
    sys.path[:0] = [ROOT] + [d for d in sites if d not in sys.path]
    if _importable():
        return
    venv = os.path.join(ROOT, ".venv", "bin", "python3")
    for python in (venv, os.environ.get("VMEMDBG_PYTHON", "python3")):
        sys.path += [d for d in _interpreter_sites(python) if d not in sys.path]
        if _importable():
            return
    raise gdb.GdbError("vmemdbg: numpy and pyelftools are not importable from gdb's Python "
                       f"{sys.version.split()[0]}: set VMEMDBG_SITE to a site-packages directory that has them")


_setup_path()

from vmemdbg.elfcore import ElfCoreSource  # noqa: E402
from vmemdbg.errors import MemoryFault, VmemdbgError  # noqa: E402
from vmemdbg.commands import DEBUGGER_COMMANDS, debugger_command, output, parser  # noqa: E402
from vmemdbg.kernel import Kernel  # noqa: E402
from vmemdbg.memory import MemorySource  # noqa: E402
from vmemdbg.abi import (KERNEL_IMAGE_SIZE, MAX_PHYSMEM_BITS, PAGE_SIZE, SECTION_SIZE_BITS,  # noqa: E402
                         START_KERNEL, START_KERNEL_MAP)
from vmemdbg.vmcoreinfo import VmcoreInfo  # noqa: E402
from vmemdbg.vmcoreinfo import compose_vmcoreinfo as vmcoreinfo_text  # noqa: E402


#: progress lines on stderr start after this many seconds of one command, then repeat as often.
_PROGRESS_AFTER = 2.0
#: start of the running command and time of the next progress line (set by VmemdbgCommand.invoke).
_clock = {"t0": 0.0, "next": 0.0}


class GdbSource(MemorySource):
    """Physical memory read through gdb at a virtual alias of each physical address.

    gdb serves memory one ``read_memory`` call at a time, each costing a round trip through gdb
    (and over a remote stub, a packet exchange), so vectorised gathers read whole pages, and
    runs of adjacent pages up to 64 KiB, once each instead of one call per word (the inherited
    :meth:`MemorySource.gather_u64`). A command that runs longer than :data:`_PROGRESS_AFTER`
    seconds reports progress on stderr.
    """

    def __init__(self, phys_base: int, description: str):
        self.phys_base = phys_base
        self.description = description
        #: page_offset_base once known; until then only the kernel image is readable.
        self.direct_map_base: int | None = None
        self.reads = self.bytes_read = 0

    def _progress(self) -> None:
        now = time.monotonic()
        if _clock["t0"] and now >= _clock["next"]:
            _clock["next"] = now + _PROGRESS_AFTER
            gdb.write(f"vmemdbg: {now - _clock['t0']:.0f} s, {self.reads} reads, "
                      f"{self.bytes_read / 2**20:.1f} MiB read so far\n", gdb.STDERR)
            gdb.flush(gdb.STDERR)

    def _alias(self, addr: int, size: int) -> int:
        if self.direct_map_base is not None:
            return self.direct_map_base + addr
        if self.phys_base <= addr and addr + size <= self.phys_base + KERNEL_IMAGE_SIZE:
            return addr - self.phys_base + START_KERNEL_MAP
        raise MemoryFault(addr, size, why="outside the kernel image and page_offset_base is not known yet")

    def read_phys(self, addr: int, size: int) -> bytes:
        """``inferior.read_memory`` at the alias; gdb.MemoryError becomes MemoryFault."""
        va = self._alias(addr, size)
        self.reads += 1
        self._progress()
        try:
            data = gdb.selected_inferior().read_memory(va, size).tobytes()
        except gdb.MemoryError:
            raise MemoryFault(addr, size, why=f"gdb cannot read its alias {va:#x}") from None
        self.bytes_read += len(data)
        return data

    def ranges(self) -> list[tuple[int, int]]:
        """gdb does not list what it can read: unknown."""
        return []


class GdbSymbols:
    """Lazy runtime addresses of kernel symbols from gdb (``&'name'``); only ``get`` is needed."""

    def get(self, name: str, default: int | None = None) -> int | None:
        """Address of ``name``, or ``default`` if gdb does not know it."""
        try:
            return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'"))
        except gdb.error:
            return default


def _value(expr: str) -> int:
    """An integer C expression evaluated by gdb."""
    return int(gdb.parse_and_eval(f"(unsigned long)({expr})"))


def _optional(expr: str, default: int = 0) -> int:
    """Like :func:`_value` for variables that only some configs have."""
    try:
        return _value(expr)
    except gdb.error:
        return default


class GdbDebugFacts:
    """Type facts from gdb's DWARF (:class:`vmemdbg.kernel.DebugFacts`)."""

    def sizeof(self, type_name: str) -> int | None:
        """``sizeof(type_name)`` or None."""
        try:
            return _value(f"sizeof({type_name})")
        except gdb.error:
            return None

    def enumerator(self, name: str) -> int | None:
        """The value of enum constant ``name`` or None."""
        try:
            return _value(name)
        except gdb.error:
            return None


def compose_vmcoreinfo() -> str:
    """The VMCOREINFO lines the engine needs, from gdb's symbols and types.

    Mirrors kernel/crash_core.c and arch/x86/kernel/crash_core_64.c (6.1); valid at any point of
    boot after the kernel runs on its own page tables. ``mem_section`` is the pointer *value*
    (NULL before sparse_init's memblocks_present).
    """
    l5 = _optional("__pgtable_l5_enabled")
    maxbits = MAX_PHYSMEM_BITS[5 if l5 else 4]
    sec_size = _value("sizeof(struct mem_section)")
    roots = (1 << (maxbits - SECTION_SIZE_BITS)) // (PAGE_SIZE // sec_size)
    top = _value("&init_top_pgt")
    entries: list[tuple[str, int | str | None]] = [
        ("OSRELEASE", gdb.parse_and_eval("init_uts_ns.name.release").string()),
        ("PAGESIZE", PAGE_SIZE),
        ("SYMBOL(init_uts_ns)", _value("&init_uts_ns")),
        ("SYMBOL(node_online_map)", _value("&node_states[N_ONLINE]")),
        ("SYMBOL(swapper_pg_dir)", top),
        ("SYMBOL(mem_section)", _value("mem_section")),
        ("LENGTH(mem_section)", roots),
        ("SIZE(mem_section)", sec_size),
        ("NUMBER(SECTION_SIZE_BITS)", SECTION_SIZE_BITS),
        ("NUMBER(MAX_PHYSMEM_BITS)", maxbits),
        ("SIZE(page)", _value("sizeof(struct page)")),
        ("SIZE(pglist_data)", _value("sizeof(struct pglist_data)")),
    ]
    for member in ("node_start_pfn", "node_spanned_pages", "node_id"):
        entries.append((f"OFFSET(pglist_data.{member})", _value(f"&((struct pglist_data *)0)->{member}")))
    entries += [
        ("NUMBER(phys_base)", _value("phys_base")),
        ("SYMBOL(init_top_pgt)", top),
        ("NUMBER(pgtable_l5_enabled)", 1 if l5 else 0),
        ("SYMBOL(node_data)", _value("&node_data")),
        ("LENGTH(node_data)", _value("sizeof(node_data) / sizeof(node_data[0])")),
        ("KERNELOFFSET", _value("&_text") - START_KERNEL),
        ("NUMBER(sme_mask)", _optional("sme_me_mask")),
    ]
    return vmcoreinfo_text(entries)


def core_file() -> str | None:
    """Path of the core file gdb has open, if any (gdb 13 has no Python API for it)."""
    for line in gdb.execute("info target", to_string=True).splitlines():
        if line.strip().startswith("`") and "file type" in line:
            return line.strip()[1:].split("', file type")[0]
    return None


def _physical_core(path: str) -> bool:
    """True if the core file maps physical addresses only (QEMU dump-guest-memory without paging)."""
    try:
        elf = ElfCoreSource(path)
    except VmemdbgError:
        return False
    try:
        return not elf.kdump_style
    finally:
        elf.close()


def open_kernel() -> Kernel:
    """A :class:`Kernel` over gdb's memory, with gdb's symbols when it has kernel debug info."""
    if gdb.lookup_global_symbol("init_uts_ns") is not None:
        path = core_file()
        if path is not None and _physical_core(path):
            raise VmemdbgError(f"{path} is a QEMU dump-guest-memory core holding physical addresses only: gdb cannot "
                               "read kernel virtual memory from it (it would read the vmlinux file's initial values); "
                               "open it without the vmlinux (core-file only) or run the vmemdbg CLI on it")
        try:
            text = compose_vmcoreinfo()
        except gdb.MemoryError as e:
            raise VmemdbgError(f"the kernel is not running yet: gdb cannot read its memory ({e}); continue until the "
                               "kernel runs on its own page tables (e.g. break start_kernel)") from None
        symbols: GdbSymbols | None = GdbSymbols()
        debug: GdbDebugFacts | None = GdbDebugFacts()
        where = "gdb (VMCOREINFO composed from debug info)"
    else:
        path = core_file()
        if path is None:
            raise VmemdbgError("gdb has no kernel debug info and no core file: load the vmlinux "
                               "(with KASLR: symbol-file -o KERNELOFFSET vmlinux) or open a vmcore")
        elf = ElfCoreSource(path)
        try:
            text = (elf.vmcoreinfo() or b"").decode("ascii", "replace")
        finally:
            elf.close()
        if not text:
            raise VmemdbgError(f"{path}: no VMCOREINFO note, and gdb has no kernel debug info to compose one")
        symbols = None
        debug = None
        where = f"gdb core {path} (VMCOREINFO note, kallsyms)"
    source = GdbSource(VmcoreInfo(text).number("phys_base") or 0, where)
    kernel = Kernel(source, vmcoreinfo=text.encode(), symbols=symbols, symbols_relocated=True, debug=debug)
    source.direct_map_base = kernel.page_offset_base
    return kernel


_cache: dict[tuple, Kernel] = {}


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


class VmemdbgCommand(gdb.Command):
    """vmemdbg VIEW [ADDR...] [-v] [--json]: what the vmemdbg CLI prints, for the debugged kernel.

VIEW is summary, sections, vmemmap, memblock, e820, memory-blocks, audit, describe, check, explain
or map (explain takes ADDRs: pfn:N, phys:A, direct:VA, page:VA or a bare address; map takes
-o FILE [--check FILE]). -v adds detail, --json prints JSON (schema vmemdbg/1). Results are
recomputed after the target runs."""

    def __init__(self) -> None:
        super().__init__("vmemdbg", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        """Parse, analyse, print; every error is one line."""
        try:
            view, *words = gdb.string_to_argv(argument) or [""]
            command = debugger_command(view)
            args = parser(command, f"vmemdbg {view}").parse_args(words)
            _clock["t0"] = time.monotonic()
            _clock["next"] = _clock["t0"] + _PROGRESS_AFTER
            gdb.write(output(current_kernel(), command, args) + "\n")
        except VmemdbgError as e:
            raise gdb.GdbError(f"vmemdbg: {e}") from None
        except (gdb.GdbError, KeyboardInterrupt):
            raise
        except Exception as e:  # one line, never a traceback, unless asked for
            if os.environ.get("VMEMDBG_DEBUG"):
                raise
            raise gdb.GdbError(f"vmemdbg: internal error: {type(e).__name__}: {e} "
                               "(set VMEMDBG_DEBUG=1 for a traceback)") from None
        finally:
            _clock["t0"] = 0.0

    def complete(self, text: str, word: str) -> list[str]:
        """Complete the view name (the first word)."""
        if " " in text.lstrip():
            return []
        return [v for v in DEBUGGER_COMMANDS if v.startswith(word or "")]


VmemdbgCommand()
