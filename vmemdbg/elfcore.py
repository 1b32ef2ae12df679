"""ELF vmcores: reading (kdump ``/proc/vmcore`` style and QEMU ``dump-guest-memory``) and writing.

Reading goes through pyelftools for the ELF header, the program-header count (including the
PN_XNUM extension) and the notes. The program-header table itself is decoded in one numpy call
because fixture dumps can hold a million PT_LOADs; physical reads are served from an ``mmap``
of the file, and :meth:`ElfCoreSource.gather_u64` reads thousands of scattered words in one
vectorised step.

Two ELF flavours exist for x86-64 kernels:

* kdump (kexec-tools / makedumpfile ``-E``): PT_LOADs with ``p_vaddr = page_offset_base + p_paddr``
  for RAM, plus one for the kernel text; VMCOREINFO in a PT_NOTE.
* QEMU ``dump-guest-memory`` with ``paging=false``: ``p_vaddr == p_paddr`` (useless for layout);
  VMCOREINFO note only when the guest ran with ``-device vmcoreinfo`` and its ``qemu_fw_cfg``
  driver published the note (qemu dump/dump.c, ``vmcoreinfo_get``).

:func:`write_elf_core` writes the same format (used by ``extract`` and the simulator).
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Iterable

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import DumpError, MemoryFault
from .memory import MemorySource

PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF

_PHDR = np.dtype(
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


class ElfCoreSource(MemorySource):
    """Physical memory of an x86-64 ELF core file."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb")
        except OSError as e:
            raise DumpError(f"{self.path}: cannot open: {e.strerror}") from None
        try:
            self._init()
        except BaseException:
            self._file.close()
            raise

    def _init(self) -> None:
        path = self.path
        self.file_size = os.fstat(self._file.fileno()).st_size
        try:
            elf = ELFFile(self._file)
            machine = elf["e_machine"]
            etype = elf["e_type"]
            nseg = elf.num_segments()
            phoff = elf["e_phoff"]
            phentsize = elf["e_phentsize"]
        except (ELFError, struct.error, ValueError) as e:
            raise DumpError(f"{path}: not an ELF core file ({e})") from None
        if elf.elfclass != 64 or not elf.little_endian:
            raise DumpError(f"{path}: not a 64-bit little-endian ELF (class {elf.elfclass})")
        if machine != "EM_X86_64":
            raise DumpError(f"{path}: not an x86-64 dump (e_machine {machine})")
        if etype != "ET_CORE":
            raise DumpError(f"{path}: not a core file (e_type {etype}); pass the vmcore, not vmlinux")
        if phentsize != _PHDR.itemsize or nseg <= 0:
            raise DumpError(f"{path}: bad program headers (count {nseg}, entry size {phentsize})")
        if phoff + nseg * phentsize > self.file_size:
            raise DumpError(f"{path}: truncated: program headers end past end of file")
        self._file.seek(phoff)
        phdrs = np.frombuffer(self._file.read(nseg * phentsize), dtype=_PHDR)
        self.format = "ELF"
        self._vmcoreinfo = self._read_vmcoreinfo(elf, phdrs)
        loads = phdrs[phdrs["p_type"] == PT_LOAD]
        if len(loads) == 0:
            raise DumpError(f"{path}: ELF core has no PT_LOAD segments")
        self.kdump_style = bool(np.any(loads["p_vaddr"] != loads["p_paddr"]))
        self.truncated = bool(np.any(loads["p_offset"] + loads["p_filesz"] > self.file_size))
        self._set_segments(loads)
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.file_size else None
        self._bytes = np.frombuffer(self._map, dtype=np.uint8) if self._map is not None else np.zeros(0, np.uint8)
        self.description = f"{path} (ELF {'kdump' if self.kdump_style else 'physical'} core)"

    def _read_vmcoreinfo(self, elf: ELFFile, phdrs: np.ndarray) -> bytes | None:
        """Find the ``VMCOREINFO`` note (pyelftools parses the note segment)."""
        for i in np.nonzero(phdrs["p_type"] == PT_NOTE)[0].tolist():
            seg = elf.get_segment(i)
            try:
                for note in seg.iter_notes():
                    if note["n_name"] == "VMCOREINFO":
                        desc = note["n_desc"]
                        return desc.encode("latin-1") if isinstance(desc, str) else bytes(desc)
            except (ELFError, struct.error, UnicodeDecodeError):
                continue
        return None

    def _set_segments(self, loads: np.ndarray) -> None:
        """Index PT_LOADs by physical address, dropping ones contained in another."""
        order = np.lexsort((-loads["p_memsz"].astype(np.int64), loads["p_paddr"]))
        loads = loads[order]
        starts = loads["p_paddr"].astype(np.uint64)
        ends = starts + loads["p_memsz"].astype(np.uint64)
        # A segment nested inside an earlier one (e.g. the kernel-text PT_LOAD of /proc/vmcore)
        # describes the same memory: drop it so that lookups find the enclosing RAM segment.
        prev_max_end = np.maximum.accumulate(ends)
        keep = np.ones(len(loads), dtype=bool)
        keep[1:] = ends[1:] > prev_max_end[:-1]
        loads = loads[keep]
        self._starts = loads["p_paddr"].astype(np.uint64)
        self._ends = self._starts + loads["p_memsz"].astype(np.uint64)
        self._fileends = self._starts + loads["p_filesz"].astype(np.uint64)
        self._offsets = loads["p_offset"].astype(np.uint64)

    def vmcoreinfo(self) -> bytes | None:
        """The VMCOREINFO note text, if the dump has one."""
        return self._vmcoreinfo

    def find_vmcoreinfo(self) -> bytes | None:
        """Scan the dump for a VMCOREINFO text page (the kernel's ``vmcoreinfo_data``).

        Fallback for dumps without the note (QEMU without ``-device vmcoreinfo``): the kernel keeps
        the text in a zeroed page (kernel/crash_core.c, crash_save_vmcoreinfo_init), so a page that
        starts with ``OSRELEASE=`` and names ``SYMBOL(mem_section)`` is it.
        """
        if self._map is None:
            return None
        pos = self._map.find(b"OSRELEASE=")
        while pos >= 0:
            if pos % 4096 == 0:
                text = self._map[pos : pos + 4096].split(b"\0", 1)[0]
                if b"SYMBOL(mem_section)=" in text and b"PAGESIZE=" in text:
                    return bytes(text)
            pos = self._map.find(b"OSRELEASE=", pos + 1)
        return None

    def ranges(self) -> list[tuple[int, int]]:
        """Physical ranges described by PT_LOADs (merged)."""
        out: list[tuple[int, int]] = []
        for s, e in zip(self._starts.tolist(), self._ends.tolist()):
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(e, out[-1][1]))
            else:
                out.append((s, e))
        return out

    def read_phys(self, addr: int, size: int) -> bytes:
        """Read physical memory; zero-fill past ``p_filesz``; fault on holes and truncation."""
        out = bytearray()
        cur, end = addr, addr + size
        while cur < end:
            i = int(np.searchsorted(self._starts, np.uint64(cur), side="right")) - 1
            if i < 0 or cur >= int(self._ends[i]):
                raise MemoryFault(addr, size)
            seg_end = min(end, int(self._ends[i]))
            file_end = int(self._fileends[i])
            if cur < file_end:
                n = min(seg_end, file_end) - cur
                off = int(self._offsets[i]) + cur - int(self._starts[i])
                if off + n > self.file_size:
                    raise MemoryFault(addr, size, why="dump file is truncated")
                out += self._map[off : off + n]
                cur += n
            if cur < seg_end:
                out += bytes(seg_end - cur)
                cur = seg_end
        return bytes(out)

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised u64 reads: one searchsorted and one fancy-index gather for all addresses."""
        addrs = np.asarray(addrs, dtype=np.uint64)
        vals = np.zeros(addrs.shape, dtype=np.uint64)
        if addrs.size == 0:
            return vals, np.zeros(0, dtype=bool)
        idx = np.searchsorted(self._starts, addrs, side="right").astype(np.int64) - 1
        valid = idx >= 0
        idx_c = np.where(valid, idx, 0)
        ok = valid & (addrs + np.uint64(8) <= self._ends[idx_c]) & (addrs >= self._starts[idx_c])
        infile = ok & (addrs + np.uint64(8) <= self._fileends[idx_c])
        offs = (self._offsets[idx_c] + (addrs - self._starts[idx_c])).astype(np.int64)
        infile &= offs + 8 <= self.file_size
        # Words in the zero-filled tail (p_memsz > p_filesz) read as 0; words cut by truncation fault.
        truncated = ok & (addrs + np.uint64(8) <= self._fileends[idx_c]) & ~infile
        ok &= ~truncated
        sel = np.nonzero(infile)[0]
        if sel.size:
            raw = self._bytes[offs[sel, None] + _GATHER8]
            vals[sel] = raw.view("<u8").reshape(-1)
        return vals, ok

    def close(self) -> None:
        """Close the mapping and the file."""
        self._bytes = np.zeros(0, np.uint8)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass
        self._file.close()


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note: header, NUL-terminated name and descriptor, each padded to 4 bytes."""
    name0 = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name0), len(desc), ntype) + pad(name0) + pad(desc)


def write_elf_core(
    path: str | os.PathLike,
    chunks: Iterable[tuple[int, bytes]],
    vmcoreinfo: bytes,
    *,
    page_offset: int | None = None,
    kernel_image: tuple[int, int, int] | None = None,
) -> None:
    """Write an x86-64 ELF vmcore holding ``chunks`` of physical memory and a VMCOREINFO note.

    ``chunks`` are ``(physical address, bytes)`` in any order; overlapping or adjacent ones are
    merged into one PT_LOAD (later chunks win on overlap). With ``page_offset`` the PT_LOADs get
    kdump-style ``p_vaddr = page_offset + p_paddr``, otherwise ``p_vaddr = p_paddr`` like QEMU.
    ``kernel_image = (phys_start, phys_end, vaddr_start)`` adds, like /proc/vmcore
    (fs/proc/vmcore.c, kexec-tools), PT_LOADs mapping the kernel image at its
    ``__START_KERNEL_map`` addresses, sharing the file data, so that tools reading kernel symbols
    by virtual address (gdb, makedumpfile, crash) work too.
    More than 65534 segments use the PN_XNUM extension (count in section header 0's sh_info).
    Memory outside every chunk is absent from the dump and reads fault.
    """
    runs: list[tuple[int, bytearray]] = []
    for addr, data in sorted(chunks, key=lambda c: c[0]):
        if not data:
            continue
        if runs and addr <= runs[-1][0] + len(runs[-1][1]):
            start, buf = runs[-1]
            off = addr - start
            buf[off : off + len(data)] = data
        else:
            runs.append((addr, bytearray(data)))
    note = _note(b"VMCOREINFO", 0, bytes(vmcoreinfo))
    aliases: list[tuple[int, int, int]] = []  # (index of run, offset in run, length)
    if kernel_image is not None:
        k0, k1, _ = kernel_image
        for i, (addr, buf) in enumerate(runs):
            lo, hi = max(addr, k0), min(addr + len(buf), k1)
            if lo < hi:
                aliases.append((i, lo - addr, hi - lo))
    nphdr = len(runs) + len(aliases) + 1
    xnum = nphdr >= PN_XNUM
    ehsize, phentsize, shentsize = 64, 56, 64
    phoff = ehsize
    shoff = phoff + nphdr * phentsize if xnum else 0
    note_off = phoff + nphdr * phentsize + (shentsize if xnum else 0)
    data_off = (note_off + len(note) + 4095) & ~4095
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        4,  # ET_CORE
        62,  # EM_X86_64
        1,
        0,
        phoff,
        shoff,
        0,
        ehsize,
        phentsize,
        PN_XNUM if xnum else nphdr,
        shentsize if xnum else 0,
        1 if xnum else 0,
        0,
    )
    phdrs = [struct.pack("<IIQQQQQQ", PT_NOTE, 0, note_off, 0, 0, len(note), len(note), 4)]
    off = data_off
    run_off = []
    for addr, buf in runs:
        vaddr = page_offset + addr if page_offset is not None else addr
        phdrs.append(struct.pack("<IIQQQQQQ", PT_LOAD, 7, off, vaddr & (2**64 - 1), addr, len(buf), len(buf), 0))
        run_off.append(off)
        off += len(buf)
    for i, delta, length in aliases:
        paddr = runs[i][0] + delta
        vaddr = kernel_image[2] + paddr - kernel_image[0]  # type: ignore[index]
        phdrs.append(struct.pack("<IIQQQQQQ", PT_LOAD, 7, run_off[i] + delta, vaddr, paddr, length, length, 0))
    with open(path, "wb") as f:
        f.write(header)
        f.write(b"".join(phdrs))
        if xnum:
            f.write(struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, nphdr, 0, 0))
        f.write(note)
        f.write(bytes(data_off - f.tell()))
        for _, buf in runs:
            f.write(buf)
