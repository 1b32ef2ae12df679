"""Encoder for the in-kernel kallsyms tables, as emitted by scripts/kallsyms.c (Linux 6.1).

Layout of the generated .rodata blob (each label 8-byte aligned, like ``ALGN`` in write_src()):

* ``kallsyms_offsets``: s32 per symbol, KALLSYMS_BASE_RELATIVE with KALLSYMS_ABSOLUTE_PERCPU:
  absolute (per-cpu) symbols store their value (≥ 0); the others store
  ``relative_base - addr - 1`` (< 0), decoded as ``relative_base - 1 - offset``
  (kernel/kallsyms.c:kallsyms_sym_address).
* ``kallsyms_relative_base``: u64, the lowest non-absolute address (relocated at runtime, so the
  image holds link address + KASLR offset).
* ``kallsyms_num_syms``: u32.
* ``kallsyms_names``: per symbol a length byte (two bytes ``(len & 0x7f) | 0x80, len >> 7`` when
  len > 0x7f) followed by ``len`` token indices; the first expanded char is the type letter.
* ``kallsyms_markers``: u32 offset into names every 256 symbols.
* ``kallsyms_seqs_of_names``: 3 big-endian bytes per symbol: symbol index sorted by name (6.1).
* ``kallsyms_token_table``: 256 NUL-terminated tokens; here token i is the single byte i (token 0
  is empty: byte 0 never occurs in names).
* ``kallsyms_token_index``: u16[256], offset of each token in the token table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class KSym:
    """One kallsyms entry; ``addr`` is the link-time address."""

    name: str
    type: str
    addr: int
    absolute: bool = False


@dataclass
class KallsymsBlob:
    """The encoded tables and the offsets of each label inside ``data``."""

    data: bytes
    labels: dict[str, int]
    relative_base: int
    num_syms: int


def _align8(buf: bytearray) -> None:
    buf.extend(b"\0" * (-len(buf) % 8))


def encode(symbols: list[KSym], kaslr_offset: int) -> KallsymsBlob:
    """Encode symbols into the kallsyms tables; addresses in the blob are relocated by kaslr_offset.

    The tables follow one another in the order write_src() (scripts/kallsyms.c) emits them, each
    label 8-byte aligned.
    """
    table = sorted(symbols, key=lambda s: (s.addr, s.name))
    relative_base = next(s.addr for s in table if not s.absolute)
    offsets = _offsets(table, relative_base)
    names, markers = _names(table)
    tokens, token_index = _token_table()
    buf = bytearray()
    labels: dict[str, int] = {}
    for label, data in (
        ("kallsyms_offsets", offsets),
        ("kallsyms_relative_base", struct.pack("<Q", (relative_base + kaslr_offset) & 0xFFFFFFFFFFFFFFFF)),
        ("kallsyms_num_syms", struct.pack("<I", len(table))),
        ("kallsyms_names", names),
        ("kallsyms_markers", b"".join(struct.pack("<I", mk) for mk in markers)),
        ("kallsyms_seqs_of_names", _seqs_of_names(table)),
        ("kallsyms_token_table", tokens),
        ("kallsyms_token_index", b"".join(struct.pack("<H", t) for t in token_index)),
    ):
        labels[label] = len(buf)
        buf += data
        _align8(buf)
    return KallsymsBlob(bytes(buf), labels, relative_base, len(table))


def _offsets(table: list[KSym], relative_base: int) -> bytes:
    """``kallsyms_offsets``: s32 per symbol, as write_src() (scripts/kallsyms.c) emits them with
    KALLSYMS_ABSOLUTE_PERCPU: absolute symbols their value, the others ``relative_base - addr - 1``."""
    out = bytearray()
    for s in table:
        if s.absolute:
            off = s.addr
            if not 0 <= off <= 0x7FFFFFFF:
                raise ValueError(f"kallsyms: absolute symbol {s.name} value {off:#x} out of range")
        else:
            off = relative_base - s.addr - 1
            if not -0x80000000 <= off < 0:
                raise ValueError(f"kallsyms: relative symbol {s.name} at {s.addr:#x} out of range")
        out += struct.pack("<i", off)
    return bytes(out)


def _names(table: list[KSym]) -> tuple[bytes, list[int]]:
    """``kallsyms_names`` and the ``kallsyms_markers`` into it (every 256 symbols), as write_src()
    (scripts/kallsyms.c) emits them: a one- or two-byte length, then the type letter and name."""
    out = bytearray()
    markers = []
    off = 0
    for i, s in enumerate(table):
        if i % 256 == 0:
            markers.append(off)
        enc = (s.type + s.name).encode()
        n = len(enc)
        if n > 0x3FFF:
            raise ValueError(f"kallsyms: symbol name too long: {s.name[:40]}...")
        if n <= 0x7F:
            out.append(n)
            off += n + 1
        else:
            out += bytes(((n & 0x7F) | 0x80, n >> 7))
            off += n + 2
        out += enc
    return bytes(out), markers


def _seqs_of_names(table: list[KSym]) -> bytes:
    """``kallsyms_seqs_of_names``: 3 big-endian bytes per symbol, the symbol indices sorted by name
    (scripts/kallsyms.c sort_symbols_by_name, 6.1)."""
    out = bytearray()
    for seq in sorted(range(len(table)), key=lambda i: (table[i].name, table[i].addr, i)):
        out += bytes(((seq >> 16) & 0xFF, (seq >> 8) & 0xFF, seq & 0xFF))
    return bytes(out)


def _token_table() -> tuple[bytes, list[int]]:
    """``kallsyms_token_table`` and ``kallsyms_token_index``: token i is the single byte i (token 0
    empty), so names need no compression (what scripts/kallsyms.c optimize_token_table would find)."""
    out = bytearray()
    index = []
    toff = 0
    for i in range(256):
        index.append(toff)
        tok = bytes((i,)) if i else b""
        out += tok + b"\0"
        toff += len(tok) + 1
    return bytes(out), index
