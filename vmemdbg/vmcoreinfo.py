"""VMCOREINFO parsing (kernel/crash_core.c ≤6.8, kernel/vmcore_info.c 6.9+).

Line formats (include/linux/crash_core.h): ``SYMBOL(x)=%lx`` and ``KERNELOFFSET=%lx`` are hex
without ``0x``; ``SIZE/OFFSET/LENGTH`` are unsigned decimal; ``NUMBER(x)=%ld`` is *signed* decimal
(``phys_base`` can be negative), except ``NUMBER(VMALLOC_START)=0x%lx`` (6.9+).
"""

from __future__ import annotations

from .errors import LayoutError


class VmcoreInfo:
    """Parsed VMCOREINFO: a ``KEY -> text`` mapping with typed accessors."""

    def __init__(self, text: bytes | str):
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("ascii", "replace")
        self.text = text
        self.entries: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                self.entries[key.strip()] = value.strip()
        if "OSRELEASE" not in self.entries:
            raise LayoutError("VMCOREINFO has no OSRELEASE line: not a Linux VMCOREINFO note")

    def raw(self, key: str) -> str | None:
        """The text value of ``key`` or None."""
        return self.entries.get(key)

    def _int(self, key: str, base: int) -> int | None:
        v = self.entries.get(key)
        if v is None:
            return None
        try:
            return int(v, base)
        except ValueError:
            raise LayoutError(f"VMCOREINFO {key}={v!r} is not a number") from None

    def symbol(self, name: str) -> int | None:
        """``SYMBOL(name)`` (hex, no 0x)."""
        return self._int(f"SYMBOL({name})", 16)

    def number(self, name: str) -> int | None:
        """``NUMBER(name)``: signed decimal, or hex with a 0x prefix (VMALLOC_START)."""
        return self._int(f"NUMBER({name})", 0)

    def size(self, name: str) -> int | None:
        """``SIZE(name)``."""
        return self._int(f"SIZE({name})", 10)

    def offset(self, name: str) -> int | None:
        """``OFFSET(struct.member)``."""
        return self._int(f"OFFSET({name})", 10)

    def length(self, name: str) -> int | None:
        """``LENGTH(name)``."""
        return self._int(f"LENGTH({name})", 10)

    @property
    def release(self) -> str:
        """``OSRELEASE``."""
        return self.entries["OSRELEASE"]

    @property
    def kernel_offset(self) -> int:
        """``KERNELOFFSET`` (virtual KASLR slide), 0 if absent."""
        return self._int("KERNELOFFSET", 16) or 0

    @property
    def page_size(self) -> int:
        """``PAGESIZE``."""
        return self._int("PAGESIZE", 10) or 4096
