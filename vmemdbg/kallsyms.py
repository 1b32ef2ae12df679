"""Decode the kernel's own kallsyms tables out of a dump (kernel/kallsyms.c, scripts/kallsyms.c).

VMCOREINFO exports ``SYMBOL(kallsyms_names/num_syms/token_table/token_index/offsets)`` since 6.0
(commit 5fd8fea935a1 "vmcoreinfo: include kallsyms symbols"), which is enough to find every
kernel symbol without a vmlinux:

* ``kallsyms_names``: per symbol a length byte (6.1+, commit 73bbb94466fd "kallsyms: support
  "big" kernel symbols": bit 7 set means a 2-byte length ``(b0 & 0x7f) | b1 << 7``), then that
  many indices into the token table. The first expanded character is the nm type letter.
* ``kallsyms_token_table``: 256 NUL-terminated tokens; ``kallsyms_token_index``: u16 offsets.
* ``kallsyms_offsets`` (int32): how an entry becomes an address changed twice; the rules and
  the commits are :data:`vmemdbg.versions.KALLSYMS_ADDRESS_RULES`. Which rule applies is chosen
  by :func:`vmemdbg.versions.kallsyms_address_rules` from the VMCOREINFO keys and confirmed by
  ``_stext`` decoding to ``SYMBOL(_stext)``.

The decoding is vectorised: the names stream is read in a few large reads, one Python pass finds
where each record starts (the stream is length-prefixed, so this step is sequential), and numpy
expands every token of every name at once with one gather from the token table.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from .errors import LayoutError, MemoryFault
from .versions import KallsymsAddressRule, kallsyms_address_rules
from .vmcoreinfo import VmcoreInfo

#: Sanity bounds: a real vmlinux has ~100k–300k symbols and a few MiB of names (7.2: 2.4 MiB).
MAX_SYMS = 4_000_000
MAX_NAMES_BYTES = 64 << 20
_NAMES_CHUNK = 1 << 18
#: Separator put between expanded names (never part of a kernel symbol name).
_SEP = "\n"

Read = Callable[[int, int], bytes]


@dataclass(frozen=True)
class KallsymsTable:
    """Every kallsyms entry, in the kernel's (address) order; names may repeat (static symbols)."""

    names: list[str]
    types: list[str]
    addrs: list[int]
    rule: KallsymsAddressRule

    def first_addresses(self) -> dict[str, int]:
        """``{name: address}`` (in no particular order), the first definition of a repeated name winning."""
        # dict() keeps the last value of a repeated key: feed it reversed so the first one wins
        return dict(zip(reversed(self.names), reversed(self.addrs)))


def read_kallsyms(info: VmcoreInfo, read: Read) -> KallsymsTable:
    """Decode the kallsyms tables named by ``info``.

    ``read(va, size)`` reads kernel-image virtual memory. Raises :class:`LayoutError` when the
    VMCOREINFO lacks the kallsyms symbols (kernels before 6.0) or the tables are absurd.
    """
    rules = kallsyms_address_rules(info.symbol)  # raises LayoutError before 6.0
    names_va, num_va = info.symbol("kallsyms_names"), info.symbol("kallsyms_num_syms")
    index_va, table_va = info.symbol("kallsyms_token_index"), info.symbol("kallsyms_token_table")
    offsets_va = info.symbol("kallsyms_offsets")
    assert names_va is not None and num_va is not None and index_va is not None  # checked by the rules
    assert table_va is not None and offsets_va is not None
    num = int.from_bytes(read(num_va, 4), "little")
    if not 0 < num <= MAX_SYMS:
        raise LayoutError(f"kallsyms_num_syms={num} is absurd")
    token_index = np.frombuffer(read(index_va, 512), dtype="<u2")
    table = read(table_va, int(token_index.max()) + 256) + _SEP.encode()
    try:
        tok_len = np.array([table.index(b"\0", o) - o for o in token_index.tolist()], dtype=np.int64)
    except ValueError:
        raise LayoutError("kallsyms_token_table has an unterminated token: tables unreadable") from None
    names, types = _expand_names(read, names_va, num, np.frombuffer(table, dtype=np.uint8),
                                 token_index.astype(np.int64), tok_len)
    offsets = np.frombuffer(read(offsets_va, 4 * num), dtype="<i4").astype(np.int64)
    rule, addrs = _addresses(info, rules, offsets, offsets_va, read, names)
    return KallsymsTable(names, types, addrs, rule)


def decode_kallsyms(info: VmcoreInfo, read: Read) -> dict[str, tuple[int, str]]:
    """``{name: (address, type letter)}`` of :func:`read_kallsyms` in kernel order (first definition wins)."""
    t = read_kallsyms(info, read)
    out: dict[str, tuple[int, str]] = {}
    for name, a, ty in zip(t.names, t.addrs, t.types):
        out.setdefault(name, (a, ty))
    return out


def _addresses(info: VmcoreInfo, rules: tuple[KallsymsAddressRule, ...], offsets: np.ndarray,
               offsets_va: int, read: Read, names: list[str]) -> tuple[KallsymsAddressRule, list[int]]:
    """The first rule under which ``_stext`` decodes to SYMBOL(_stext) (the first rule if it cannot be checked)."""
    stext = info.symbol("_stext")
    if stext is not None and "_stext" not in names:
        raise LayoutError("kallsyms has no _stext although VMCOREINFO names it: tables unreadable or unknown format")
    i = names.index("_stext") if stext is not None else None
    base = None
    if any(r.needs_relative_base for r in rules):
        base_va = info.symbol("kallsyms_relative_base")
        assert base_va is not None
        base = int.from_bytes(read(base_va, 8), "little")
    for rule in rules:
        addrs = rule.apply(offsets, base=base, offsets_va=offsets_va)
        if i is None or int(addrs[i]) == stext:
            return rule, addrs.tolist()
    tried = ", ".join(r.name for r in rules)
    raise LayoutError(f"kallsyms decoding ({tried}) does not reproduce SYMBOL(_stext): tables unreadable or unknown format")


def _read_some(read: Read, addr: int, want: int, need: int) -> bytes:
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


def _expand_names(read: Read, start: int, num: int, table: np.ndarray, tok_start: np.ndarray,
                  tok_len: np.ndarray) -> tuple[list[str], list[str]]:
    """Expand ``num`` compressed names at ``start``; return names and nm type letters."""
    buf = bytearray()  # grows in place: appends stay linear however long the stream is
    pos = 0  # stream offset of record i
    i = 0
    starts = array("q", bytes(8 * num))  # stream offset of each record's token bytes
    lens = array("q", bytes(8 * num))
    while True:
        try:  # the sequential part: one tight pass over the length bytes
            while i < num:
                n = buf[pos]
                if n & 0x80:
                    n = (n & 0x7F) | (buf[pos + 1] << 7)
                    pos += 2
                else:
                    pos += 1
                starts[i] = pos
                lens[i] = n
                pos += n
                i += 1
            if pos <= len(buf):
                break
        except IndexError:  # raised before pos/i move: resume at record i once more is read
            pass
        if len(buf) >= MAX_NAMES_BYTES:
            raise LayoutError(f"kallsyms_names runs past {MAX_NAMES_BYTES >> 20} MiB with {i} of {num} names: tables unreadable")
        more = _read_some(read, start + len(buf), _NAMES_CHUNK, 1)
        if not more:
            raise LayoutError(f"kallsyms_names ends after {i} of {num} names: tables unreadable")
        buf += more
    data = np.frombuffer(buf, dtype=np.uint8)
    rec_start = np.frombuffer(starts, dtype=np.int64)
    rec_len = np.frombuffer(lens, dtype=np.int64)
    if not rec_len.all():
        raise LayoutError("kallsyms_names holds an empty name: tables unreadable")
    # every token byte of every record, in stream order
    first = np.repeat(rec_start - np.concatenate(([0], np.cumsum(rec_len)[:-1])), rec_len)
    codes = data[first + np.arange(first.size)]
    clen = tok_len[codes]
    out_len = int(clen.sum())
    cend = np.cumsum(clen)
    # gather index into the token table for every expanded character
    src = np.repeat(tok_start[codes] - (cend - clen), clen) + np.arange(out_len)
    # a separator after each record's type letter and after its name: one split gives both
    last = np.cumsum(rec_len) - 1  # index in ``codes`` of each record's last token
    begin = np.concatenate(([0], cend[last][:-1]))
    if np.any(cend[last] - begin < 2):  # a type letter and at least one character of name each
        raise LayoutError("kallsyms_names holds a name that expands to less than a type and a name "
                          "(empty tokens): tables unreadable")
    sep_at = np.stack((begin + 1, cend[last]), axis=1).ravel()  # already in ascending order
    src = np.insert(src, sep_at, table.size - 1)
    parts = table[src].tobytes().decode("latin-1").split(_SEP)
    types, names = parts[0:-1:2], parts[1::2]
    if len(names) != num or not all(names):
        raise LayoutError("kallsyms_names holds an empty name: tables unreadable")
    return names, types
