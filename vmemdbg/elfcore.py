"""ELF vmcores: reading (kdump ``/proc/vmcore`` style and QEMU ``dump-guest-memory``).

Reading goes through pyelftools for the ELF header, the program-header count (including the
PN_XNUM extension) and the notes; what a hostile header could make it allocate or loop over is
checked against the file first (note sizes and counts with pyelftools' own ``Elf_Nhdr``,
docs/hostile-dumps.md). The program-header table is decoded with numpy in blocks; PT_LOADs whose
fields no x86-64 dump can have are left out.
Physical reads are explicit ``pread`` calls of the file pages needed (never a mapping of the
whole file, which would fault readahead windows around each scattered read), and
:meth:`ElfCoreSource.gather_u64` reads thousands of scattered words with one pread per run of
adjacent file pages. Both read paths agree on every byte: a word or range is readable exactly
when every byte lies in a PT_LOAD and, below ``p_filesz``, inside the file.

Two ELF flavours exist for x86-64 kernels:

* kdump (kexec-tools / makedumpfile ``-E``): PT_LOADs with ``p_vaddr = page_offset_base + p_paddr``
  for RAM, plus one for the kernel text; VMCOREINFO in a PT_NOTE.
* QEMU ``dump-guest-memory`` with ``paging=false``: ``p_vaddr == p_paddr`` (useless for layout);
  VMCOREINFO note only when the guest ran with ``-device vmcoreinfo`` and its ``qemu_fw_cfg``
  driver published the note (qemu dump/dump.c, ``vmcoreinfo_get``).

:mod:`vmemdbg.elfwrite` writes the same format (used by ``extract`` and the simulator).
"""

from __future__ import annotations

import os
import struct

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import NoteSegment

from .errors import DumpError, MemoryFault
from .intervals import containing, merge_ranges
from .memory import MemorySource, blockwise

PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF

#: Elf64_Phdr (include/uapi/linux/elf.h).
ELF64_PHDR = np.dtype(
    [
        ("p_type", "<u4"),
        ("p_flags", "<u4"),
        ("p_offset", "<u8"),
        ("p_vaddr", "<u8"),
        ("p_paddr", "<u8"),
        ("p_filesz", "<u8"),
        ("p_memsz", "<u8"),
        ("p_align", "<u8"),
    ]
)
_GATHER8 = np.arange(8, dtype=np.int64)
#: words per gather block (bounds the index temporaries).
_GATHER_BLOCK = 1 << 16
_PHDR_BLOCK = 1 << 16
#: largest single pread (bounds the read buffers whatever the dump claims).
_RUN_MAX = 1 << 20
#: most program headers accepted (a real vmcore has a few dozen; their columns cost 32 bytes each).
MAX_PHDRS = 1 << 22
#: x86-64 physical addresses are below 2^MAX_PHYSMEM_BITS, at most 2^52 (arch/x86/include/asm/sparsemem.h).
PHYS_LIMIT = 1 << 52
#: The VMCOREINFO note is one page (VMCOREINFO_BYTES, include/linux/crash_core.h); a note larger
#: than this is not one the kernel or QEMU writes.
MAX_NOTE_DESC = 1 << 20
#: Notes looked at per PT_NOTE: kdump writes a few per CPU (NR_CPUS <= 8192) plus VMCOREINFO.
MAX_NOTES = 1 << 16
#: Exceptions pyelftools raises on malformed input (its own, and its construct library's).
_ELF_ERRORS = (ELFError, ConstructError, struct.error, ValueError, UnicodeDecodeError)


def _usable_loads(ph: np.ndarray) -> np.ndarray:
    """Mask of PT_LOADs whose fields describe memory an x86-64 kernel can have: file data that does
    not wrap (``p_offset + p_filesz`` below 2^63) and a physical range inside 2^52, with
    ``p_filesz <= p_memsz``. Others are left out, so their memory reads as not in the dump."""
    off, filesz = ph["p_offset"], ph["p_filesz"]
    paddr, memsz = ph["p_paddr"], ph["p_memsz"]
    top = np.uint64(1 << 63)
    ok = (off < top) & (filesz < top) & (off + filesz < top)
    ok &= (paddr < np.uint64(PHYS_LIMIT)) & (memsz <= np.uint64(PHYS_LIMIT) - np.minimum(paddr, np.uint64(PHYS_LIMIT)))
    ok &= filesz <= memsz
    return ok


class ElfCoreSource(MemorySource):
    """Physical memory of an x86-64 ELF core file, read with ``pread`` (never mapped).

    A dump is as big as the machine (``/proc/vmcore`` of a 64 TiB machine is a 64 TiB file), and
    the engine reads a few scattered pages of it: page-table pages, usage objects, struct pages.
    A whole-file mapping would fault in a readahead window around each of them and count those
    file pages in the process's resident set, so every read here is an explicit ``pread`` of the
    pages needed, in bounded batches (:data:`_RUN_MAX` bytes per call).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - kept open for the source's lifetime
        except OSError as e:
            raise DumpError(f"{self.path}: cannot open: {e.strerror}") from None
        self._fd = self._file.fileno()
        #: pread calls made and bytes they returned (the benchmark compares them with the floor).
        self.preads = self.bytes_read = 0
        try:
            self._init()
        except BaseException:
            self._file.close()
            raise

    def _init(self) -> None:
        path = self.path
        self.file_size = os.fstat(self._fd).st_size
        try:
            elf = ELFFile(self._file)
            machine = elf["e_machine"]
            etype = elf["e_type"]
            nseg = elf.num_segments()
            phoff = elf["e_phoff"]
            phentsize = elf["e_phentsize"]
        except _ELF_ERRORS as e:
            raise DumpError(f"{path}: not an ELF core file ({e})") from None
        if elf.elfclass != 64 or not elf.little_endian:
            raise DumpError(f"{path}: not a 64-bit little-endian ELF (class {elf.elfclass})")
        if machine != "EM_X86_64":
            raise DumpError(f"{path}: not an x86-64 dump (e_machine {machine})")
        if etype != "ET_CORE":
            raise DumpError(f"{path}: not a core file (e_type {etype}); pass the vmcore, not vmlinux")
        if phentsize != ELF64_PHDR.itemsize or nseg <= 0:
            raise DumpError(f"{path}: bad program headers (count {nseg}, entry size {phentsize})")
        if nseg > MAX_PHDRS:
            raise DumpError(f"{path}: {nseg} program headers; this reader handles at most {MAX_PHDRS}")
        if phoff + nseg * phentsize > self.file_size:
            raise DumpError(f"{path}: truncated: program headers end past end of file")
        self.format = "ELF"
        self._vmcoreinfo = self._read_vmcoreinfo(elf, phoff, nseg)
        loads = self._load_segments(phoff, nseg)
        if len(loads["p_paddr"]) == 0:
            raise DumpError(f"{path}: ELF core has no usable PT_LOAD segments")
        self._set_segments(loads)
        self.description = f"{path} (ELF {'kdump' if self.kdump_style else 'physical'} core)"

    def _phdrs(self, phoff: int, first: int, count: int) -> np.ndarray:
        """``count`` program headers from index ``first``, read with one pread."""
        raw = os.pread(self._fd, count * ELF64_PHDR.itemsize, phoff + first * ELF64_PHDR.itemsize)
        return np.frombuffer(raw, dtype=ELF64_PHDR, count=len(raw) // ELF64_PHDR.itemsize)

    def _read_vmcoreinfo(self, elf: ELFFile, phoff: int, nseg: int) -> bytes | None:
        """Find the ``VMCOREINFO`` note (pyelftools parses the note segment, once
        :meth:`_notes_sane` has checked what it would read)."""
        for first in range(0, nseg, _PHDR_BLOCK):
            block = self._phdrs(phoff, first, min(_PHDR_BLOCK, nseg - first))
            for i in (np.nonzero(block["p_type"] == PT_NOTE)[0]).tolist():
                if not self._notes_sane(elf, int(block["p_offset"][i]), int(block["p_filesz"][i])):
                    continue
                try:
                    segment = elf.get_segment(first + i)
                    if not isinstance(segment, NoteSegment):  # pyelftools parses every PT_NOTE as one
                        continue
                    for note in segment.iter_notes():
                        if note["n_name"] == "VMCOREINFO":
                            # the raw descriptor: pyelftools interprets n_desc by n_type, which a
                            # damaged VMCOREINFO note may carry any value of
                            return bytes(note["n_descdata"])
                except _ELF_ERRORS:
                    continue
        return None

    def _notes_sane(self, elf: ELFFile, offset: int, filesz: int) -> bool:
        """Whether pyelftools can walk the notes of a PT_NOTE at ``offset``: the segment lies in the
        file, each header (pyelftools' ``Elf_Nhdr``) names a descriptor of at most
        :data:`MAX_NOTE_DESC` bytes that ends inside the segment, and there are at most
        :data:`MAX_NOTES` of them. pyelftools itself allocates whatever ``n_descsz`` says."""
        if offset >= self.file_size or filesz > self.file_size - offset or filesz > MAX_NOTES * (MAX_NOTE_DESC + 64):
            return False
        nhdr = elf.structs.Elf_Nhdr
        pos, end = offset, offset + filesz
        for _ in range(MAX_NOTES):
            if pos + 12 > end:
                return True
            try:
                h = nhdr.parse(os.pread(self._fd, 12, pos))
            except _ELF_ERRORS:
                return False
            desc = pos + 12 + ((h["n_namesz"] + 3) & ~3)
            if h["n_descsz"] > MAX_NOTE_DESC or desc + h["n_descsz"] > end:
                return False
            pos = desc + ((h["n_descsz"] + 3) & ~3)
        return False

    def _load_segments(self, phoff: int, nseg: int) -> dict[str, np.ndarray]:
        """Columns of the PT_LOAD headers, read and decoded in blocks (a fixture may have many)."""
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("p_paddr", "p_memsz", "p_filesz", "p_offset")}
        self.kdump_style = self.truncated = False
        for i in range(0, nseg, _PHDR_BLOCK):
            block = self._phdrs(phoff, i, min(_PHDR_BLOCK, nseg - i))
            block = block[block["p_type"] == PT_LOAD]
            block = block[_usable_loads(block)]
            for k, parts in cols.items():
                parts.append(block[k].astype(np.uint64))
            self.kdump_style |= bool(np.any(block["p_vaddr"] != block["p_paddr"]))
            data_end = block["p_offset"] + block["p_filesz"]  # wraps for hostile headers: see _set_segments
            self.truncated |= bool(np.any((data_end > self.file_size) | (data_end < block["p_offset"])))
        return {k: np.concatenate(v) for k, v in cols.items()}

    def _set_segments(self, loads: dict[str, np.ndarray]) -> None:
        """Index PT_LOADs by physical address, dropping ones contained in an earlier one.

        A segment whose memory range wraps past 2^64 is cut at 2^64. ``_fileends`` (the end of the
        file-backed part, physical) keeps ``p_filesz`` as the header says (capped at ``p_memsz``);
        whether those bytes exist in the file is decided per read against the file size, so a read
        past EOF or at ``p_offset >= 2^63`` faults as "truncated" in both read paths.
        """
        starts, memsz, filesz, offsets = (loads[k] for k in ("p_paddr", "p_memsz", "p_filesz", "p_offset"))
        if not np.all(starts[1:] > starts[:-1]):  # writers usually emit sorted segments: skip the sort
            order = np.argsort(starts, kind="stable")
            starts, memsz, filesz, offsets = starts[order], memsz[order], filesz[order], offsets[order]
        memsz = np.minimum(memsz, ~starts)  # ends stay <= 2^64 - 1
        filesz = np.minimum(filesz, memsz)
        ends = starts + memsz
        # A segment nested inside an earlier one (the kernel-image PT_LOADs of /proc/vmcore or of
        # extract's output) describes the same memory: drop it so lookups find the RAM segment.
        keep = np.ones(len(starts), dtype=bool)
        keep[1:] = ends[1:] > np.maximum.accumulate(ends)[:-1]
        self._starts, self._ends = starts[keep], ends[keep]
        self._fileends = starts[keep] + filesz[keep]
        self._offsets = offsets[keep]

    def vmcoreinfo(self) -> bytes | None:
        """The VMCOREINFO note text, if the dump has one."""
        return self._vmcoreinfo

    def find_vmcoreinfo(self) -> bytes | None:
        """Scan the dump for a VMCOREINFO text page (the kernel's ``vmcoreinfo_data``).

        Fallback for dumps without the note (QEMU without ``-device vmcoreinfo``): the kernel keeps
        the text in a zeroed page (kernel/crash_core.c, crash_save_vmcoreinfo_init), so a page that
        starts with ``OSRELEASE=`` and names ``SYMBOL(mem_section)`` is it. The file is scanned in
        windows of :data:`_RUN_MAX` bytes (page-aligned, so the page start is in the window).
        """
        for off in range(0, self.file_size, _RUN_MAX):
            window = os.pread(self._fd, _RUN_MAX, off)
            pos = window.find(b"OSRELEASE=")
            while pos >= 0:
                if pos % 4096 == 0:
                    text = window[pos : pos + 4096].split(b"\0", 1)[0]
                    if b"SYMBOL(mem_section)=" in text and b"PAGESIZE=" in text:
                        return bytes(text)
                pos = window.find(b"OSRELEASE=", pos + 1)
        return None

    def loads(self) -> list[tuple[int, int, int, int]]:
        """The PT_LOADs as indexed: ``(p_paddr, end, end of the file-backed part, p_offset)``."""
        return list(zip(self._starts.tolist(), self._ends.tolist(), self._fileends.tolist(), self._offsets.tolist()))

    def fileno(self) -> int:
        """The dump file's descriptor (for SEEK_DATA/SEEK_HOLE scans)."""
        return self._fd

    def ranges(self) -> list[tuple[int, int]]:
        """Physical ranges described by PT_LOADs (merged)."""
        return merge_ranges(zip(self._starts.tolist(), self._ends.tolist()))

    def _pread(self, off: int, n: int) -> bytes | None:
        """``n`` bytes at file offset ``off``, or None if any of them is past the end of the file."""
        if off + n > self.file_size:
            return None
        out = os.pread(self._fd, n, off)
        self.preads += 1
        self.bytes_read += len(out)
        return out if len(out) == n else None

    def read_phys(self, addr: int, size: int) -> bytes:
        """Read physical memory; zero-fill past ``p_filesz``; fault on holes and truncation."""
        out = bytearray()
        cur, end = addr, addr + size
        while cur < end:
            at, inside = containing(self._starts, self._ends, np.uint64(cur))
            if not inside:
                raise MemoryFault(addr, size)
            i = int(at)
            seg_end = min(end, int(self._ends[i]))
            file_end = int(self._fileends[i])
            if cur < file_end:
                n = min(seg_end, file_end) - cur
                off = int(self._offsets[i]) + cur - int(self._starts[i])
                for p in range(0, n, _RUN_MAX):
                    data = self._pread(off + p, min(_RUN_MAX, n - p))
                    if data is None:
                        raise MemoryFault(addr, size, why="dump file is truncated")
                    out += data
                cur += n
            if cur < seg_end:
                out += bytes(seg_end - cur)
                cur = seg_end
        return bytes(out)

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised u64 reads: the file pages holding the words are read in sorted runs of
        adjacent pages (one pread per run, at most :data:`_RUN_MAX` bytes), then each word is taken
        from its run. Words that are not wholly inside one segment's file data or wholly inside its
        zero tail (rare: they straddle a segment boundary) go through :meth:`read_phys`, so both
        paths agree on every byte."""
        return blockwise(self._gather_block, np.asarray(addrs, dtype=np.uint64), _GATHER_BLOCK)

    def _gather_block(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals = np.zeros(addrs.shape, dtype=np.uint64)
        ok = np.zeros(addrs.shape, dtype=bool)
        if addrs.size == 0 or len(self._starts) == 0:
            return vals, ok
        eight = np.uint64(8)
        ic, inseg = containing(self._starts, self._ends, addrs)
        last = addrs + np.uint64(7)
        whole = inseg & (last >= addrs) & (last < self._ends[ic])  # all 8 bytes in this segment
        infile = whole & (last < self._fileends[ic])
        intail = whole & (addrs >= self._fileends[ic])
        ok[intail] = True  # zero tail (p_memsz > p_filesz): reads as 0
        rel = addrs - self._starts[ic]
        offs = self._offsets[ic] + rel  # uint64: wraps for hostile headers, caught below
        fine = infile & (offs >= self._offsets[ic]) & (offs < np.uint64(self.file_size)) \
            & (offs + eight <= np.uint64(self.file_size))
        # Words straddling segments or file data and zero tail: read them like read_phys would.
        slow = inseg & ~whole | whole & ~infile & ~intail
        for i in np.flatnonzero(slow).tolist():
            try:
                vals[i] = int.from_bytes(self.read_phys(int(addrs[i]), 8), "little")
                ok[i] = True
            except MemoryFault:
                pass
        sel = np.flatnonzero(fine)
        if sel.size:
            vals[sel], ok[sel] = self._read_words(offs[sel].astype(np.int64))
        return vals, ok

    def _read_words(self, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Little-endian u64 at each file offset: sorted, grouped into runs of adjacent file pages,
        each run read with pread in windows of at most :data:`_RUN_MAX` bytes. ``ok`` is False
        where the file ended early (it shrank under us)."""
        order = np.argsort(offs, kind="stable")
        so = offs[order]
        first, lastp = so >> 12, (so + 7) >> 12
        new = np.ones(len(so), dtype=bool)
        new[1:] = first[1:] > lastp[:-1] + 1  # a gap of at least one unread page starts a new run
        starts = np.flatnonzero(new).tolist() + [len(so)]
        out = np.zeros(len(so), dtype=np.uint64)
        good = np.zeros(len(so), dtype=bool)
        for a, b in zip(starts[:-1], starts[1:]):
            while a < b:
                lo = int(first[a]) << 12
                j = max(a + 1, a + int(np.searchsorted(so[a:b], lo + _RUN_MAX - 8, side="right")))
                hi = min((int(lastp[j - 1]) + 1) << 12, self.file_size)
                buf = np.frombuffer(os.pread(self._fd, hi - lo, lo), dtype=np.uint8)
                self.preads += 1
                self.bytes_read += len(buf)
                rel = so[a:j] - lo
                inbuf = rel + 8 <= len(buf)
                w = np.flatnonzero(inbuf)
                out[a + w] = buf[rel[w, None] + _GATHER8].view("<u8").reshape(-1)
                good[a + w] = True
                a = j
        vals, ok = np.empty_like(out), np.empty_like(good)
        vals[order], ok[order] = out, good
        return vals, ok

    def close(self) -> None:
        """Close the file."""
        self._file.close()
