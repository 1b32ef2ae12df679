"""Decode the kernel's own kallsyms tables out of a dump (kernel/kallsyms.c, scripts/kallsyms.c).

VMCOREINFO exports ``SYMBOL(kallsyms_names/num_syms/token_table/token_index/offsets/
relative_base)`` since 6.0 (commit 5fd8fea935a1 "vmcoreinfo: include kallsyms symbols"), which is
enough to find every kernel symbol without a vmlinux:

* ``kallsyms_names``: per symbol a length byte (6.1+, commit 73bbb94466fd "kallsyms: support
  "big" kernel symbols": bit 7 set means a 2-byte length ``(b0 & 0x7f) | b1 << 7``), then that
  many indices into the token table. The first expanded character is the nm type letter.
* ``kallsyms_token_table``: 256 NUL-terminated tokens; ``kallsyms_token_index``: u16 offsets.
* ``kallsyms_offsets`` (int32) with KALLSYMS_BASE_RELATIVE: with ABSOLUTE_PERCPU (x86-64 SMP up
  to 6.14) a non-negative offset is an absolute value and a negative one means
  ``relative_base - 1 - offset``; without it the address is ``relative_base + (u32)offset``.
  :func:`decode_kallsyms` picks the rule under which ``_stext`` matches VMCOREINFO.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import LayoutError, MemoryFault
from .vmcoreinfo import VmcoreInfo

#: Sanity bounds: a real vmlinux has ~100k–300k symbols and a few MiB of names.
MAX_SYMS = 4_000_000
_NAMES_CHUNK = 1 << 14


def decode_kallsyms(info: VmcoreInfo, read: Callable[[int, int], bytes]) -> dict[str, tuple[int, str]]:
    """Return ``{name: (address, type letter)}`` decoded from the dump.

    ``read(va, size)`` reads kernel-image virtual memory. Raises :class:`LayoutError` when the
    VMCOREINFO lacks the kallsyms symbols (kernels before 6.0) or the tables are absurd.
    """
    need = ["kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index",
            "kallsyms_offsets", "kallsyms_relative_base"]
    found = {n: info.symbol(n) for n in need}
    missing = [n for n, v in found.items() if v is None]
    if missing:
        raise LayoutError(f"VMCOREINFO lacks SYMBOL({missing[0]}) (kernel before 6.0?): pass --symbols VMLINUX|System.map")
    addr: dict[str, int] = {n: v for n, v in found.items() if v is not None}
    num = int.from_bytes(read(addr["kallsyms_num_syms"], 4), "little")
    if not 0 < num <= MAX_SYMS:
        raise LayoutError(f"kallsyms_num_syms={num} is absurd")
    token_index = np.frombuffer(read(addr["kallsyms_token_index"], 512), dtype="<u2")
    table_len = int(token_index.max()) + 256
    table = read(addr["kallsyms_token_table"], table_len)
    tokens = [table[o : table.index(b"\0", o)] for o in token_index.tolist()]
    names, types = _read_names(read, addr["kallsyms_names"], num, tokens)
    offsets = np.frombuffer(read(addr["kallsyms_offsets"], 4 * num), dtype="<i4").astype(np.int64)
    base = int.from_bytes(read(addr["kallsyms_relative_base"], 8), "little")
    stext = info.symbol("_stext")
    off = offsets.tolist()
    percpu = [o if o >= 0 else base - 1 - o for o in off]
    plain = [base + (o & 0xFFFFFFFF) for o in off]
    addrs = percpu
    if stext is not None and "_stext" in names:
        i = names.index("_stext")
        if percpu[i] != stext:
            if plain[i] != stext:
                raise LayoutError("kallsyms decoding does not reproduce SYMBOL(_stext): tables unreadable or unknown format")
            addrs = plain
    out: dict[str, tuple[int, str]] = {}
    for name, a, t in zip(names, addrs, types):
        out.setdefault(name, (a, t))
    return out


def _read_some(read: Callable[[int, int], bytes], addr: int, want: int, need: int) -> bytes:
    """Read ``want`` bytes at ``addr``, or fewer (down to ``need``) if the tail is not in the dump.

    The names stream has no length field, so reads are chunked; near the end of a filtered or
    minimal dump the last chunk may run past the memory that was kept.
    """
    while True:
        try:
            return read(addr, want)
        except MemoryFault:
            if want <= need:
                raise
            want = max(need, want // 2)


def _read_names(read: Callable[[int, int], bytes], start: int, num: int, tokens: list[bytes]) -> tuple[list[str], list[str]]:
    """Expand ``num`` compressed names at ``start`` (read in 1 MiB chunks); return names and type letters."""
    buf = b""
    base = start
    pos = 0
    names: list[str] = []
    types: list[str] = []
    for _ in range(num):
        if pos + 2 > len(buf):
            buf = buf[pos:] + _read_some(read, base + len(buf), _NAMES_CHUNK, 2 - (len(buf) - pos))
            base += pos
            pos = 0
        n = buf[pos]
        pos += 1
        if n & 0x80:
            n = (n & 0x7F) | (buf[pos] << 7)
            pos += 1
        if pos + n > len(buf):
            buf = buf[pos:] + _read_some(read, base + len(buf), max(_NAMES_CHUNK, n), n - (len(buf) - pos))
            base += pos
            pos = 0
        s = b"".join([tokens[t] for t in buf[pos : pos + n]])
        pos += n
        if not s:
            raise LayoutError("kallsyms_names holds an empty name: tables unreadable")
        types.append(chr(s[0]))
        names.append(s[1:].decode("latin-1"))
    return names, types
