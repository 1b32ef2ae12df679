"""Memory sources opened by drgn: compressed kdump/diskdump (drgn's bundled libkdumpfile),
``/proc/kcore`` and a live drgn ``Program``. drgn is used only as a physical-memory reader
and for the VMCOREINFO it found; all analysis stays in the engine.
"""

from __future__ import annotations

import os

from .errors import DumpError, MemoryFault
from .memory import MemorySource


def _drgn():
    try:
        import drgn
    except ImportError:
        raise DumpError("this dump format is read through drgn: pip install drgn") from None
    return drgn


class DrgnSource(MemorySource):
    """Physical reads through a drgn ``Program`` (``prog.read(addr, size, physical=True)``)."""

    def __init__(self, prog, description: str):
        self.prog = prog
        self.description = description

    @classmethod
    def open_path(cls, path: str | os.PathLike) -> "DrgnSource":
        """Open a kdump-compressed file (or ``/proc/kcore``) with drgn.

        QEMU's ``dump-guest-memory -f kdump-*`` output carries no architecture attribute, so the
        x86-64 platform is given explicitly.
        """
        drgn = _drgn()
        path = os.fspath(path)
        platform = drgn.Platform(drgn.Architecture.X86_64,
                                 drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)
        prog = drgn.Program(platform)
        try:
            if path == "/proc/kcore":
                prog.set_kernel()
            else:
                prog.set_core_dump(path)
        except (OSError, ValueError, drgn.FaultError, Exception) as e:  # drgn raises several types
            raise DumpError(f"{path}: drgn cannot open it: {e}") from None
        return cls(prog, f"{path} (via drgn)")

    def read_phys(self, addr: int, size: int) -> bytes:
        """Physical read; drgn FaultError becomes MemoryFault."""
        drgn = _drgn()
        try:
            return self.prog.read(addr, size, True)
        except drgn.FaultError:
            raise MemoryFault(addr, size) from None

    def ranges(self) -> list[tuple[int, int]]:
        """drgn does not list its segments: unknown."""
        return []

    def vmcoreinfo(self) -> bytes | None:
        """The VMCOREINFO drgn found (note, kdump header or fw_cfg)."""
        try:
            return self.prog["VMCOREINFO"].string_()
        except (KeyError, LookupError, Exception):
            return None
