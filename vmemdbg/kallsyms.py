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

Names are found without decoding the table (:class:`Kallsyms`): the start of every record comes
from ``kallsyms_markers`` (the offset of every 256th record) with the 256 records of all blocks
parsed side by side, each record's expanded length from one cumulative sum of token lengths, and a
name is compared only against the records whose expansion has its length. The whole table
(:meth:`Kallsyms.table`) expands every token of every name with one numpy gather. Where the markers
cannot be found or do not agree with the stream, one sequential pass finds the records instead.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from .errors import LayoutError, MemoryFault
from .versions import KallsymsAddressRule, kallsyms_address_rules, kallsyms_markers_candidates
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


class Kallsyms:
    """The dump's kallsyms tables, read once: a name's address is found on demand
    (:meth:`address`), the whole table is decoded only if asked (:meth:`table`).

    ``read(va, size)`` reads kernel-image virtual memory; every read happens here, in the
    constructor. Raises :class:`LayoutError` when the VMCOREINFO lacks the kallsyms symbols
    (kernels before 6.0) or the tables are absurd, and :class:`MemoryFault` when they are not in
    the dump.
    """

    def __init__(self, info: VmcoreInfo, read: Read):
        rules = kallsyms_address_rules(info.symbol)  # raises LayoutError before 6.0
        names_va, num_va = info.symbol("kallsyms_names"), info.symbol("kallsyms_num_syms")
        index_va, table_va = info.symbol("kallsyms_token_index"), info.symbol("kallsyms_token_table")
        offsets_va = info.symbol("kallsyms_offsets")
        assert names_va is not None and num_va is not None and index_va is not None  # checked by the rules
        assert table_va is not None and offsets_va is not None
        num = int.from_bytes(read(num_va, 4), "little")
        if not 0 < num <= MAX_SYMS:
            raise LayoutError(f"kallsyms_num_syms={num} is absurd")
        self.num = num
        token_index = np.frombuffer(read(index_va, 512), dtype="<u2")
        table = read(table_va, int(token_index.max()) + 256) + _SEP.encode()
        try:
            tok_len = [table.index(b"\0", o) - o for o in token_index.tolist()]
        except ValueError:
            raise LayoutError("kallsyms_token_table has an unterminated token: tables unreadable") from None
        self._table = np.frombuffer(table, dtype=np.uint8)
        self._tok_start = token_index.astype(np.int64)
        self._tok_len = np.array(tok_len, dtype=np.int64)
        self._tokens = [table[o:o + n].decode("latin-1") for o, n in zip(token_index.tolist(), tok_len)]
        self._data, self._rec_start, self._rec_len, self.records_from = _records(read, names_va, num, table_va)
        if not self._rec_len.all():
            raise LayoutError("kallsyms_names holds an empty name: tables unreadable")
        # expanded length of every record: a cumulative sum of token lengths over the whole stream
        # (length bytes lie outside every record's token bytes, so they never count)
        csum = np.concatenate(([0], np.cumsum(self._tok_len[self._data], dtype=np.int64)))
        self._exp_len = csum[self._rec_start + self._rec_len] - csum[self._rec_start]
        if np.any(self._exp_len < 2):  # a type letter and at least one character of name each
            raise LayoutError("kallsyms_names holds a name that expands to less than a type and a name "
                              "(empty tokens): tables unreadable")
        self._first_code = self._data[self._rec_start]
        self._found: dict[str, int | None] = {}
        offsets = np.frombuffer(read(offsets_va, 4 * num), dtype="<i4").astype(np.int64)
        self.rule, self._addrs = self._addresses(info, rules, offsets, offsets_va, read)

    def index(self, name: str) -> int | None:
        """Index of the first entry (kernel order) named ``name``, or None."""
        if name not in self._found:
            self._found[name] = self._search(name)
        return self._found[name]

    def address(self, name: str) -> int | None:
        """Address of the first entry named ``name`` (what the full table's first definition gives), or None."""
        i = self.index(name)
        return None if i is None else int(self._addrs[i])

    def table(self) -> KallsymsTable:
        """Every entry decoded, in the kernel's order."""
        src = self._sources(np.arange(self.num))
        # a separator after each record's type letter and after its name: one split gives both
        end = np.cumsum(self._exp_len)
        sep_at = np.stack((end - self._exp_len + 1, end), axis=1).ravel()  # already in ascending order
        src = np.insert(src, sep_at, self._table.size - 1)
        parts = self._table[src].tobytes().decode("latin-1").split(_SEP)
        types, names = parts[0:-1:2], parts[1::2]
        if len(names) != self.num or not all(names):  # a token holding the separator
            raise LayoutError("kallsyms_names holds an empty name: tables unreadable")
        return KallsymsTable(names, types, self._addrs.tolist(), self.rule)

    def _sources(self, recs: np.ndarray) -> np.ndarray:
        """Index into the token table of every expanded character of records ``recs``, in order."""
        rs, rl = self._rec_start[recs], self._rec_len[recs]
        first = np.repeat(rs - np.concatenate(([0], np.cumsum(rl)[:-1])), rl)
        codes = self._data[first + np.arange(first.size)]
        clen = self._tok_len[codes]
        cend = np.cumsum(clen)
        return np.repeat(self._tok_start[codes] - (cend - clen), clen) + np.arange(int(cend[-1]))

    def _search(self, name: str) -> int | None:
        """Compare ``name`` with the records whose expansion (type letter + name) has its length."""
        try:
            want = np.frombuffer(name.encode("latin-1"), dtype=np.uint8)
        except UnicodeEncodeError:
            return None
        if not want.size:
            return None
        # the first token holds the type letter and, after it, a prefix of the name
        first_ok = np.array([name.startswith(t[1:]) for t in self._tokens], dtype=bool)
        recs = np.flatnonzero((self._exp_len == want.size + 1) & first_ok[self._first_code])
        if not recs.size:
            return None
        src = self._sources(recs)
        chars = self._table[src].reshape(recs.size, want.size + 1)
        hit = np.flatnonzero((chars[:, 1:] == want).all(axis=1))
        return int(recs[hit[0]]) if hit.size else None

    def _addresses(self, info: VmcoreInfo, rules: tuple[KallsymsAddressRule, ...], offsets: np.ndarray,
                   offsets_va: int, read: Read) -> tuple[KallsymsAddressRule, np.ndarray]:
        """The first rule under which ``_stext`` decodes to SYMBOL(_stext) (the first rule if it cannot be checked)."""
        stext = info.symbol("_stext")
        i = self.index("_stext") if stext is not None else None
        if stext is not None and i is None:
            raise LayoutError("kallsyms has no _stext although VMCOREINFO names it: tables unreadable or unknown format")
        base = None
        if any(r.needs_relative_base for r in rules):
            base_va = info.symbol("kallsyms_relative_base")
            assert base_va is not None
            base = int.from_bytes(read(base_va, 8), "little")
        for rule in rules:
            addrs = rule.apply(offsets, base=base, offsets_va=offsets_va)
            if i is None or int(addrs[i]) == stext:
                return rule, addrs
        tried = ", ".join(r.name for r in rules)
        raise LayoutError(f"kallsyms decoding ({tried}) does not reproduce SYMBOL(_stext): tables unreadable or unknown format")


def read_kallsyms(info: VmcoreInfo, read: Read) -> KallsymsTable:
    """Decode every entry of the kallsyms tables named by ``info`` (see :class:`Kallsyms`)."""
    return Kallsyms(info, read).table()


def decode_kallsyms(info: VmcoreInfo, read: Read) -> dict[str, tuple[int, str]]:
    """``{name: (address, type letter)}`` of :func:`read_kallsyms` in kernel order (first definition wins)."""
    t = read_kallsyms(info, read)
    out: dict[str, tuple[int, str]] = {}
    for name, a, ty in zip(t.names, t.addrs, t.types):
        out.setdefault(name, (a, ty))
    return out


def record_starts(data: np.ndarray, num: int, markers: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Token-byte offset and token count of each of ``num`` records of the names stream ``data``,
    parsing the 256 records of every ``kallsyms_markers`` block side by side; None unless the
    markers agree with the stream.

    Agreement is exact: marker 0 is 0 and each block's 256 records end precisely where the next
    marker says, so by induction every block starts where a sequential pass would reach it; the
    last record ends inside ``data``, less than 8 bytes (the ``.balign 8``) before its end.
    """
    nb = (num + 255) // 256
    lim = data.size
    if markers.size != nb or markers[0] != 0 or np.any(np.diff(markers) <= 0) or markers[-1] >= lim:
        return None
    padded = np.concatenate((data, np.zeros(2, dtype=np.uint8)))
    p = markers.astype(np.int64)
    starts = np.empty((256, nb), dtype=np.int64)
    lens = np.empty((256, nb), dtype=np.int64)
    for j in range(256):
        b0 = padded[p].astype(np.int64)
        two = b0 >= 0x80
        n = np.where(two, (b0 & 0x7F) | (padded[p + 1].astype(np.int64) << 7), b0)
        p = p + 1 + two
        starts[j], lens[j] = p, n
        p = np.minimum(p + n, lim)  # past the stream only the last block's unused slots go
    if np.any(p[:-1] != markers[1:]):
        return None
    st, ln = starts.T.ravel()[:num], lens.T.ravel()[:num]
    ends = st + ln
    if np.any(ends > lim) or lim - int(ends[-1]) >= 8:
        return None
    return st, ln


def _records(read: Read, names_va: int, num: int, table_va: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The names stream and each record's token offset and count, and how they were found."""
    nb = (num + 255) // 256
    for markers_va in kallsyms_markers_candidates(table_va, num):
        size = markers_va - names_va
        if not 0 < size <= MAX_NAMES_BYTES:
            continue
        try:
            raw = read(markers_va, 4 * nb)
            markers = np.frombuffer(raw[:4 * nb], dtype="<u4").astype(np.int64)
            if markers.size != nb or markers[0] != 0 or markers[-1] >= size:
                continue
            data = np.frombuffer(read(names_va, size)[:size], dtype=np.uint8)
        except MemoryFault:
            continue
        found = record_starts(data, num, markers)
        if found is not None:
            return data, found[0], found[1], "kallsyms_markers"
    return (*_sequential_records(read, names_va, num), "a sequential pass over kallsyms_names")


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


def _sequential_records(read: Read, start: int, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The names stream of ``num`` records at ``start`` read in chunks, with one Python pass over
    its length bytes (the stream is length-prefixed, so this is sequential)."""
    buf = bytearray()  # grows in place: appends stay linear however long the stream is
    pos = 0  # stream offset of record i
    i = 0
    starts = array("q", bytes(8 * num))  # stream offset of each record's token bytes
    lens = array("q", bytes(8 * num))
    while True:
        try:  # one tight pass over the length bytes
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
    return (np.frombuffer(bytes(buf), dtype=np.uint8), np.frombuffer(starts, dtype=np.int64),
            np.frombuffer(lens, dtype=np.int64))
