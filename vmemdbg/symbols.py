"""Symbol tables given by the user: ``System.map`` or a vmlinux ELF's ``.symtab`` (pyelftools).

Both hold link-time addresses; the KASLR slide (VMCOREINFO ``KERNELOFFSET``) is added by
:class:`vmemdbg.kernel.Kernel`. A file that cannot describe a kernel is refused by name: Debian
ships ``/boot/System.map-*`` as a one-line placeholder pointing at the ``-dbg`` package, and a
table without ``_stext``/``_text`` is not a kernel's.
"""

from __future__ import annotations

import os

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .errors import VmemdbgError


#: The only line of Debian's placeholder System.map (linux packaging, debian/rules.real).
DEBIAN_PLACEHOLDER = "The real System.map is in the linux-image-"


class SymbolFile(dict[str, int]):
    """``{name: link-time address}`` read from ``source`` (a path), for error messages."""

    def __init__(self, source: str, symbols: dict[str, int]):
        super().__init__(symbols)
        self.source = source


def _usable(path: str | os.PathLike, syms: dict[str, int], what: str) -> SymbolFile:
    if "_stext" not in syms and "_text" not in syms:
        raise VmemdbgError(f"{path}: unusable {what}: {len(syms)} symbols and no _stext/_text, not a kernel's symbol table")
    return SymbolFile(os.fspath(path), syms)


def load_system_map(path: str | os.PathLike) -> SymbolFile:
    """Parse ``ADDRESS TYPE NAME`` lines; the first definition of a name wins."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="latin-1") as f:
            for line in f:
                parts = line.split()
                if DEBIAN_PLACEHOLDER in line:
                    raise VmemdbgError(f"{path}: Debian's placeholder System.map ({line.strip()[19:]!r}), "
                                       "no symbols: pass the -dbg package's vmlinux (/usr/lib/debug/boot/vmlinux-RELEASE)")
                if len(parts) >= 3:
                    try:
                        out.setdefault(parts[2], int(parts[0], 16))
                    except ValueError:
                        continue
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read System.map: {e.strerror}") from None
    if not out:
        raise VmemdbgError(f"{path}: no symbols found (not a System.map?)")
    return _usable(path, out, "System.map")


def load_vmlinux_symbols(path: str | os.PathLike) -> SymbolFile:
    """Read the ``.symtab`` of a vmlinux (with or without DWARF) through pyelftools."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise VmemdbgError(f"{path}: no .symtab (stripped vmlinux?)")
            out: dict[str, int] = {}
            for sym in symtab.iter_symbols():
                if sym.name and sym["st_shndx"] != "SHN_UNDEF":
                    out.setdefault(sym.name, sym["st_value"])
            return _usable(path, out, "vmlinux")
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read vmlinux: {e.strerror}") from None
    except ELFError as e:
        raise VmemdbgError(f"{path}: not an ELF vmlinux ({e})") from None


def load_symbol_file(path: str | os.PathLike) -> SymbolFile:
    """Load symbols from a vmlinux (ELF) or a System.map (text), whichever ``path`` is."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read symbol file: {e.strerror}") from None
    return load_vmlinux_symbols(path) if magic == b"\x7fELF" else load_system_map(path)
