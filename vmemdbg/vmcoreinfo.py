"""VMCOREINFO parsing (kernel/crash_core.c ≤6.8, kernel/vmcore_info.c 6.9+).

Line formats (include/linux/crash_core.h): ``SYMBOL(x)=%lx`` and ``KERNELOFFSET=%lx`` are hex
without ``0x``; ``SIZE/OFFSET/LENGTH`` are unsigned decimal (``%lu``); ``NUMBER(x)=%ld`` is *signed*
decimal (``phys_base`` can be negative), except ``NUMBER(VMALLOC_START)=0x%lx`` (6.9+).

Validated at the door: a value is only a number if it is exactly what those formats print for a
64-bit ``long`` (no sign on hex, no ``_``, no spaces, at most 16 hex digits, within 64 bits), and a
key given twice with different values is an error naming the key (the kernel writes each key once;
two values mean a damaged or forged note). Ranges that depend on the kernel (what x86-64 allows)
are checked by :class:`vmemdbg.kernel.Kernel`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import LayoutError

_HEX = re.compile(r"[0-9a-fA-F]{1,16}")
_UDEC = re.compile(r"[0-9]{1,20}")
_SDEC = re.compile(r"-?[0-9]{1,19}")
_HEX0X = re.compile(r"0x[0-9a-fA-F]{1,16}")


class VmcoreInfo:
    """Parsed VMCOREINFO: a ``KEY -> text`` mapping with typed, range-checked accessors.

    ``text`` keeps the note as it was (bytes decoded as latin-1, so every byte survives a round
    trip: ``extract`` writes it back unchanged).
    """

    def __init__(self, text: bytes | str):
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("latin-1")
        self.text = text
        self.entries: dict[str, str] = {}
        for n, line in enumerate(text.splitlines(), 1):
            key, sep, value = line.partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            old = self.entries.setdefault(key, value)
            if old != value:
                raise LayoutError(f"VMCOREINFO gives {_show(key)} twice with different values "
                                  f"({_show(old)!r}, then {_show(value)!r} on line {n})")
        if "OSRELEASE" not in self.entries:
            raise LayoutError("VMCOREINFO has no OSRELEASE line: not a Linux VMCOREINFO note")

    def raw(self, key: str) -> str | None:
        """The text value of ``key`` or None."""
        return self.entries.get(key)

    def _int(self, key: str, kind: str) -> int | None:
        v = self.entries.get(key)
        if v is None:
            return None
        if kind == "hex" and _HEX.fullmatch(v):
            return int(v, 16)
        if kind == "udec" and _UDEC.fullmatch(v) and int(v) < 1 << 64:
            return int(v)
        if kind == "number":
            if _HEX0X.fullmatch(v):
                return int(v, 16)
            if _SDEC.fullmatch(v) and -(1 << 63) <= int(v) < 1 << 63:
                return int(v)
        what = {"hex": "a hex number of at most 16 digits", "udec": "an unsigned 64-bit decimal number",
                "number": "a signed 64-bit number"}[kind]
        raise LayoutError(f"VMCOREINFO {_show(key)}={_show(v)!r} is not {what}")

    def symbol(self, name: str) -> int | None:
        """``SYMBOL(name)`` (hex, no 0x)."""
        return self._int(f"SYMBOL({name})", "hex")

    def number(self, name: str) -> int | None:
        """``NUMBER(name)``: signed decimal, or hex with a 0x prefix (VMALLOC_START)."""
        return self._int(f"NUMBER({name})", "number")

    def size(self, name: str) -> int | None:
        """``SIZE(name)``."""
        return self._int(f"SIZE({name})", "udec")

    def offset(self, name: str) -> int | None:
        """``OFFSET(struct.member)``."""
        return self._int(f"OFFSET({name})", "udec")

    def length(self, name: str) -> int | None:
        """``LENGTH(name)``."""
        return self._int(f"LENGTH({name})", "udec")

    @property
    def release(self) -> str:
        """``OSRELEASE``."""
        return self.entries["OSRELEASE"]

    @property
    def kernel_offset(self) -> int:
        """``KERNELOFFSET`` (virtual KASLR slide), 0 if absent."""
        return self._int("KERNELOFFSET", "hex") or 0

    @property
    def page_size(self) -> int:
        """``PAGESIZE``."""
        return self._int("PAGESIZE", "udec") or 4096


def _show(text: str) -> str:
    """``text`` safe for a one-line message (non-printable characters escaped, long values cut)."""
    s = text.encode("unicode_escape").decode("ascii")
    return s if len(s) <= 40 else s[:37] + "..."


def compose_vmcoreinfo(entries: Iterable[tuple[str, int | str | None]]) -> str:
    """VMCOREINFO text for ``(key, value)`` pairs, each value printed in its key's format, as the
    kernel's macros print them (include/linux/crash_core.h, vmcore_info.h since 6.9):

    * ``SYMBOL(x)`` and ``KERNELOFFSET``: hex without 0x (``%lx``);
    * ``SIZE(x)``, ``OFFSET(x.y)``, ``LENGTH(x)``, ``PAGESIZE``: unsigned decimal (``%lu``);
    * ``NUMBER(x)``: signed decimal (``%ld``: a 64-bit value with bit 63 set prints negative),
      except ``NUMBER(VMALLOC_START)``, printed ``0x%lx``;
    * strings (``OSRELEASE``, ``BUILD-ID``) as they are.

    A pair whose value is None is left out (the kernel has no such line). Used by the simulator's
    dump writer and by the gdb front end, which composes the note from debug info.
    """
    lines = []
    for key, value in entries:
        if value is None:
            continue
        if isinstance(value, str):
            text = value
        elif key == "NUMBER(VMALLOC_START)":
            text = f"{value & (1 << 64) - 1:#x}"
        elif key.startswith("NUMBER("):
            text = str(value - (1 << 64) if value >= 1 << 63 else value)
        elif key.startswith("SYMBOL(") or key == "KERNELOFFSET":
            text = f"{value & (1 << 64) - 1:x}"
        else:
            text = str(value)
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"
