"""Open a dump or live source by sniffing its format."""

from __future__ import annotations

import os

from .drgnsource import DrgnSource
from .elfcore import ElfCoreSource
from .errors import DumpError
from .memory import MemorySource

#: Signatures of makedumpfile's formats: kdump-compressed, diskdump, and the "flattened" stream
#: (``makedumpfile -F``; QEMU's dump-guest-memory kdump-* output uses it). libkdumpfile reads all.
_KDUMP_MAGICS = (b"KDUMP   ", b"DISKDUMP", b"makedump")


def open_dump(path: str | os.PathLike) -> MemorySource:
    """ELF cores through pyelftools; kdump-compressed files and /proc/kcore through drgn."""
    path = os.fspath(path)
    if path == "/proc/kcore":
        return DrgnSource.open_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DumpError(f"{path}: cannot open: {e.strerror}") from None
    if head[:4] == b"\x7fELF":
        return ElfCoreSource(path)
    if head in _KDUMP_MAGICS:
        return DrgnSource.open_path(path)
    if not head:
        raise DumpError(f"{path}: empty file")
    raise DumpError(f"{path}: not a vmcore (neither ELF nor kdump-compressed)")
