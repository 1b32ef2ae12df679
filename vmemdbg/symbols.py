"""Symbol tables given by the user: ``System.map`` or a vmlinux ELF's ``.symtab`` (pyelftools).

Both hold link-time addresses; the KASLR slide (VMCOREINFO ``KERNELOFFSET``) is added by
:class:`vmemdbg.kernel.Kernel`.
"""

from __future__ import annotations

import os

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .errors import VmemdbgError


def load_system_map(path: str | os.PathLike) -> dict[str, int]:
    """Parse ``ADDRESS TYPE NAME`` lines; the first definition of a name wins."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="latin-1") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    try:
                        out.setdefault(parts[2], int(parts[0], 16))
                    except ValueError:
                        continue
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read System.map: {e.strerror}") from None
    if not out:
        raise VmemdbgError(f"{path}: no symbols found (not a System.map?)")
    return out


def load_vmlinux_symbols(path: str | os.PathLike) -> dict[str, int]:
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
            return out
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read vmlinux: {e.strerror}") from None
    except ELFError as e:
        raise VmemdbgError(f"{path}: not an ELF vmlinux ({e})") from None


def load_symbol_file(path: str | os.PathLike) -> dict[str, int]:
    """Load symbols from a vmlinux (ELF) or a System.map (text), whichever ``path`` is."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return load_vmlinux_symbols(path) if magic == b"\x7fELF" else load_system_map(path)
