"""The kdump-compressed variant of a fixture: an ELF vmcore rewritten in makedumpfile's format.

Users of big machines have kdump-compressed dumps (``makedumpfile -c -d 31``), not ELF ones.
makedumpfile cannot make one from a /proc/vmcore-shaped simulated dump of a big machine: for each
pfn it searches the PT_LOADs linearly (makedumpfile.c: is_in_segs → elf_info.c: paddr_to_offset),
reads the struct page of every pfn in a PT_LOAD (__exclude_unnecessary_pages) and, for ``-d 1``,
every page not excluded (a 16 TiB dump: 256 GiB of memmap and 16 TiB of page reads); it also
refuses the simulated dump outright (docs/scale.md). So this module writes the same format and
the result is checked with the readers: drgn (libkdumpfile) and crash.

Which pages are written: for a simulated dump (``dump_level`` 16), the file's data extents
(``SEEK_DATA``/``SEEK_HOLE``) inside each PT_LOAD. A simulated machine's memory outside its image
was never written: it is what a booted kernel holds free in the buddy allocator, which ``-d 16``
(DL_EXCLUDE_FREE) excludes, and that is the dump level recorded. All-zero pages are kept and share
one zero page, as makedumpfile does when zero pages are not excluded (-d 1 is not applied: crash
reads the whole mem_section roots array, and on a small machine its tail pages are zero, see
docs/scale.md). A real dump (level 0) keeps every RAM page: its file holes, if it is stored
sparse, are zero pages, not free memory.

The layout follows makedumpfile's (diskdump_mod.h; makedumpfile.c: write_kdump_header,
write_kdump_bitmap, write_kdump_pages): block 0 the ``disk_dump_header`` (signature
``KDUMP   ``, header_version 6), block 1 the ``kdump_sub_header`` followed by the VMCOREINFO
text and the ELF notes (the VMCOREINFO note), then the 1st bitmap (pfns present: the PT_LOAD
ranges) and the 2nd bitmap (pfns whose pages follow), each ``ceil(max_mapnr / 8)`` bytes rounded
up to a block, then one ``page_desc`` (offset, size, flags, page_flags) per page of the 2nd bitmap
in pfn order, then the page data, zlib-compressed where that is shorter
(``DUMP_DH_COMPRESSED_ZLIB``), as with ``-c``.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..elfcore import ElfCoreSource
from ..elfwrite import elf_note

PAGE = 4096
BLOCK = PAGE
DUMP_DH_COMPRESSED_ZLIB = 0x1
#: makedumpfile's dump_level bit for free pages (what the holes of a simulated dump are).
DL_EXCLUDE_FREE = 16
HEADER_VERSION = 6
#: bitmap bytes built and written at a time (bounds the writer's memory).
_BITMAP_CHUNK = 1 << 22
#: pages read per pread when scanning data extents.
_SCAN_PAGES = 256


def _data_pages(fd: int, offset: int, length: int) -> list[tuple[int, int]]:
    """Page-aligned ``(relative start, relative end)`` of the data extents of ``[offset, offset + length)``."""
    out: list[tuple[int, int]] = []
    pos, end = offset, offset + length
    while pos < end:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        if d >= end:
            break
        h = min(os.lseek(fd, d, os.SEEK_HOLE), end)
        a = (d - offset) & ~(PAGE - 1)
        b = min((h - offset + PAGE - 1) & ~(PAGE - 1), length & ~(PAGE - 1))
        if b > a:
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(b, out[-1][1]))
            else:
                out.append((a, b))
        pos = h
    return out


def _kept_pages(src: ElfCoreSource, holes_are_free: bool) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The RAM pfn ranges (the PT_LOADs) and the ascending pfns to write: those whose pages hold
    file data if the file's holes are free memory, otherwise every RAM pfn."""
    ram: list[tuple[int, int]] = []
    pfns: list[np.ndarray] = []
    for start, end, fend, off in src.loads():
        first = (start + PAGE - 1) // PAGE
        ram.append((first, end // PAGE))
        if not holes_are_free:
            pfns.append(np.arange(first, end // PAGE, dtype=np.int64))
            continue
        if start % PAGE:
            continue  # a segment not page-aligned holds no whole pages to keep
        for a, b in _data_pages(src.fileno(), off, fend - start):
            pfns.append(np.arange((start + a) // PAGE, (start + b) // PAGE, dtype=np.int64))
    return ram, np.unique(np.concatenate(pfns)) if pfns else np.zeros(0, np.int64)


def _pages(src: ElfCoreSource, pfns: np.ndarray):
    """``(pfns, page contents as (n, 4096) uint8)`` in blocks of up to :data:`_SCAN_PAGES` pages."""
    for lo in range(0, len(pfns), _SCAN_PAGES):
        chunk = pfns[lo:lo + _SCAN_PAGES]
        if int(chunk[-1]) - int(chunk[0]) + 1 == len(chunk):
            raw = src.read_phys(int(chunk[0]) * PAGE, len(chunk) * PAGE)
        else:
            raw = b"".join(src.read_phys(int(p) * PAGE, PAGE) for p in chunk.tolist())
        yield chunk, np.frombuffer(raw, dtype=np.uint8).reshape(len(chunk), PAGE)


def compress(elf: str | os.PathLike[str], out: str | os.PathLike[str], *, dump_level: int = DL_EXCLUDE_FREE) -> dict:
    """Write ``out``, the kdump-compressed form of the ELF vmcore ``elf``; returns counts.

    With ``DL_EXCLUDE_FREE`` in ``dump_level`` (a simulated dump) the file's holes are the free
    memory and are left out; otherwise (a real dump, which may be stored sparse) holes are zero
    pages and every RAM page is written (meant for small machines: one pfn array for all RAM)."""
    src = ElfCoreSource(elf)
    try:
        return _compress(src, Path(out), dump_level)
    finally:
        src.close()


def _uts(s: str) -> bytes:
    return s.encode()[:64].ljust(65, b"\0")


def _compress(src: ElfCoreSource, out: Path, dump_level: int) -> dict:
    info = src.vmcoreinfo() or b""
    fields = dict(line.split("=", 1) for line in info.decode("ascii", "replace").splitlines() if "=" in line)
    phys_base = int(fields.get("NUMBER(phys_base)", "0")) & 0xFFFFFFFFFFFFFFFF
    ram, kept = _kept_pages(src, bool(dump_level & DL_EXCLUDE_FREE))
    max_mapnr = max(e for _, e in ram) if ram else 0
    bitmap_bytes = ((max_mapnr + 7) // 8 + BLOCK - 1) // BLOCK * BLOCK
    # the sub header, the VMCOREINFO text, and the ELF notes (here the VMCOREINFO note), where
    # readers of header_version >= 4 take VMCOREINFO from (libkdumpfile diskdump.c: read_notes)
    sub_len = 104
    note = elf_note(b"VMCOREINFO", 0, info)
    note_off = BLOCK + sub_len + len(info)
    sub_hdr = struct.pack("<QiiQQqQqQqQQQQ", phys_base, dump_level, 0, 0, min(max_mapnr, 0xFFFFFFFF),
                          BLOCK + sub_len, len(info), note_off, len(note), 0, 0, 0, max_mapnr, max_mapnr)
    sub_hdr_size = (sub_len + len(info) + len(note) + BLOCK - 1) // BLOCK
    bitmap1_off = BLOCK * (1 + sub_hdr_size)
    bitmap2_off = bitmap1_off + bitmap_bytes
    desc_off = bitmap2_off + bitmap_bytes
    utsname = (_uts("Linux") + _uts("vmemdbg") + _uts(fields.get("OSRELEASE", "")) + _uts("#1")
               + _uts("x86_64") + _uts("(none)"))
    header = (b"KDUMP   " + struct.pack("<i", HEADER_VERSION) + utsname + bytes(6)  # timeval is 8-aligned
              + struct.pack("<qq", 0, 0)
              + struct.pack("<IiiIIIIIIi", 0, BLOCK, sub_hdr_size, 2 * bitmap_bytes // BLOCK,
                            min(max_mapnr, 0xFFFFFFFF), 0, 0, 0, 0, 1)
              + bytes(8))  # tasks[nr_cpus]
    with open(out, "wb") as f:
        wfd = f.fileno()
        os.pwrite(wfd, header, 0)
        os.pwrite(wfd, sub_hdr + info + note, BLOCK)
        _write_bitmap(wfd, bitmap1_off, bitmap_bytes, ram=ram)
        _write_bitmap(wfd, bitmap2_off, bitmap_bytes, pfns=kept)
        # page descriptors (pfn order), then the data, zlib-compressed where shorter (-c); all-zero
        # pages share one zero page written first, as makedumpfile does below -d 1 (pd_zero)
        pos = desc_off + 24 * len(kept)
        zero = zlib.compress(bytes(PAGE), 1)
        os.pwrite(wfd, zero, pos)
        zero_desc = struct.pack("<qIIQ", pos, len(zero), DUMP_DH_COMPRESSED_ZLIB, 0)
        pos += len(zero)
        descs = bytearray()
        zeros = 0
        for _, pages in _pages(src, kept):
            nonzero = pages.any(axis=1).tolist()
            for page, nz in zip(pages, nonzero):
                if not nz:
                    descs += zero_desc
                    zeros += 1
                    continue
                raw = page.tobytes()
                z = zlib.compress(raw, 1)
                data, flags = (z, DUMP_DH_COMPRESSED_ZLIB) if len(z) < PAGE else (raw, 0)
                os.pwrite(wfd, data, pos)
                descs += struct.pack("<qIIQ", pos, len(data), flags, 0)
                pos += len(data)
            os.pwrite(wfd, bytes(descs), desc_off)
            desc_off += len(descs)
            descs.clear()
        os.ftruncate(wfd, pos)
    return {"max_mapnr": max_mapnr, "ram_pages": sum(e - s for s, e in ram), "dumped_pages": len(kept),
            "zero_pages": zeros, "bytes": pos}


def _write_bitmap(fd: int, offset: int, nbytes: int, *, ram: list[tuple[int, int]] | None = None,
                  pfns: np.ndarray | None = None) -> None:
    """Write a pfn bitmap (bit ``pfn % 8`` of byte ``pfn // 8``, as makedumpfile's set_bitmap) of
    the pfn ranges ``ram`` or of the sorted ``pfns``, chunk by chunk; all-zero chunks stay holes."""
    for c0 in range(0, nbytes, _BITMAP_CHUNK):
        n = min(_BITMAP_CHUNK, nbytes - c0)
        lo, hi = c0 * 8, (c0 + n) * 8
        bits = np.zeros(n * 8, dtype=bool)
        for s, e in ram or ():
            a, b = max(s, lo), min(e, hi)
            if a < b:
                bits[a - lo:b - lo] = True
        if pfns is not None:
            i0, i1 = np.searchsorted(pfns, [lo, hi])
            bits[pfns[i0:i1] - lo] = True
        if bits.any():
            os.pwrite(fd, np.packbits(bits, bitorder="little").tobytes(), offset + c0)
