"""ELF vmcores: reading (kdump ``/proc/vmcore`` style and QEMU ``dump-guest-memory``) and writing.

Reading parses the ELF header (with the PN_XNUM extension) and the notes itself, checking every
size and offset against the file before using it (docs/hostile-dumps.md); PT_LOADs whose fields no
x86-64 dump can have are left out. The program-header table itself is decoded in one numpy call
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
from .errors import DumpError, MemoryFault
from .memory import MemorySource, blockwise

PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF
ET_CORE = 4
EM_X86_64 = 62
#: x86-64 physical addresses are below 2^MAX_PHYSMEM_BITS, at most 2^52 (arch/x86/include/asm/sparsemem.h).
PHYS_LIMIT = 1 << 52
#: The VMCOREINFO note is one page (VMCOREINFO_BYTES, include/linux/crash_core.h); any note larger
#: than this is not one the kernel or QEMU writes.
MAX_NOTE_DESC = 1 << 20

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
_GATHER_BLOCK = 1 << 16
_PHDR_BLOCK = 1 << 16
#: gathers of at least this many words release the mapping's pages afterwards.
_GATHER_DROP = 1 << 16
#: read_phys calls at least this large drop the file pages they touched afterwards.
_DROP_READ = 1 << 20
#: Notes looked at per PT_NOTE: kdump writes a few per CPU (NR_CPUS ≤ 8192) plus VMCOREINFO.
MAX_NOTES = 1 << 16


def _parse_header(path: str, header: bytes, f, file_size: int) -> tuple[int, int, int, int, int]:
    """``(e_type, e_machine, e_phoff, program header count, e_phentsize)`` of an ELF64 LE header,
    resolving the PN_XNUM extension (count in section header 0's ``sh_info``); every field that
    locates something is checked against the file size."""
    if len(header) < 64 or header[:4] != b"\x7fELF":
        raise DumpError(f"{path}: not an ELF core file (truncated ELF header)")
    if header[4] != 2 or header[5] != 1:
        raise DumpError(f"{path}: not a 64-bit little-endian ELF (class {header[4]}, data {header[5]})")
    etype, machine = struct.unpack_from("<HH", header, 16)
    phoff, shoff = struct.unpack_from("<QQ", header, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", header, 54)
    if phnum == PN_XNUM:
        if shoff == 0 or shentsize < 64 or shoff + 64 > file_size:
            raise DumpError(f"{path}: bad program headers (PN_XNUM without a readable section header 0)")
        f.seek(shoff + 44)
        phnum = struct.unpack("<I", f.read(4))[0]
    if phoff >= file_size:
        raise DumpError(f"{path}: truncated: program headers start past end of file (e_phoff {phoff:#x})")
    return etype, machine, phoff, phnum, phentsize


def _iter_notes(buf: mmap.mmap, offset: int, filesz: int, file_size: int) -> Iterable[tuple[bytes, bytes]]:
    """``(name, desc)`` of each ELF note in ``buf[offset:offset + filesz]`` (both 4-byte padded).

    Sizes are checked before anything is read: a note whose name or descriptor runs past the
    segment or the file, or whose descriptor is larger than :data:`MAX_NOTE_DESC`, ends the walk,
    and so does the :data:`MAX_NOTES`-th note.
    """
    end = min(offset + filesz, file_size)
    pos = offset
    for _ in range(MAX_NOTES):
        if pos + 12 > end:
            return
        namesz, descsz, _type = struct.unpack_from("<III", buf, pos)
        name_end = pos + 12 + namesz
        desc = name_end + (-namesz % 4)
        desc_end = desc + descsz
        if descsz > MAX_NOTE_DESC or desc_end > end:
            return
        yield bytes(buf[pos + 12 : name_end]).rstrip(b"\0"), bytes(buf[desc:desc_end])
        pos = desc_end + (-descsz % 4)


def _usable_loads(ph: np.ndarray) -> np.ndarray:
    """Mask of PT_LOADs whose fields describe memory an x86-64 kernel can have: file data that does
    not wrap (``p_offset + p_filesz`` below 2^63) and a physical range inside 2^52. Others are left
    out, so their memory reads as not in the dump (whatever read path asks)."""
    off, filesz = ph["p_offset"], ph["p_filesz"]
    paddr, memsz = ph["p_paddr"], ph["p_memsz"]
    top = np.uint64(1 << 63)
    ok = (off < top) & (filesz < top) & (off + filesz < top)
    ok &= (paddr < np.uint64(PHYS_LIMIT)) & (memsz <= np.uint64(PHYS_LIMIT) - np.minimum(paddr, np.uint64(PHYS_LIMIT)))
    ok &= filesz <= memsz
    return ok


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
        self._map = None
        header = self._file.read(64)
        etype, machine, phoff, nseg, phentsize = _parse_header(path, header, self._file, self.file_size)
        if machine != EM_X86_64:
            raise DumpError(f"{path}: not an x86-64 dump (e_machine {machine})")
        if etype != ET_CORE:
            raise DumpError(f"{path}: not a core file (e_type {etype}); pass the vmcore, not vmlinux")
        if phentsize != _PHDR.itemsize or nseg <= 0:
            raise DumpError(f"{path}: bad program headers (count {nseg}, entry size {phentsize})")
        if phoff + nseg * phentsize > self.file_size:
            raise DumpError(f"{path}: truncated: program headers end past end of file")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._words = self._bytes[: self.file_size // 8 * 8].view("<u8")
        self.format = "ELF"
        self._vmcoreinfo = self._read_vmcoreinfo(phoff, nseg)
        loads = self._load_segments(phoff, nseg)
        if len(loads["p_paddr"]) == 0:
            raise DumpError(f"{path}: ELF core has no usable PT_LOAD segments")
        self._set_segments(loads)
        self.description = f"{path} (ELF {'kdump' if self.kdump_style else 'physical'} core)"

    def _read_vmcoreinfo(self, phoff: int, nseg: int) -> bytes | None:
        """Find the ``VMCOREINFO`` note in the PT_NOTE segments (see :func:`_iter_notes`)."""
        notes = np.ndarray((nseg,), dtype=_PHDR, buffer=self._map, offset=phoff)
        for ph in notes[notes["p_type"] == PT_NOTE].tolist():
            offset, filesz = ph[2], ph[5]
            for name, desc in _iter_notes(self._map, offset, filesz, self.file_size):
                if name == b"VMCOREINFO":
                    return desc
        return None

    def _load_segments(self, phoff: int, nseg: int) -> dict[str, np.ndarray]:
        """Columns of the PT_LOAD headers, decoded from the mapping in blocks (a fixture may have a
        million), after which the header pages are dropped from this process's resident set."""
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("p_paddr", "p_memsz", "p_filesz", "p_offset")}
        self.kdump_style = self.truncated = False
        for i in range(0, nseg, _PHDR_BLOCK):
            n = min(_PHDR_BLOCK, nseg - i)
            block = np.frombuffer(self._map, dtype=_PHDR, count=n, offset=phoff + i * _PHDR.itemsize)
            block = block[block["p_type"] == PT_LOAD]
            block = block[_usable_loads(block)]
            for k, parts in cols.items():
                parts.append(block[k].astype(np.uint64))
            self.kdump_style |= bool(np.any(block["p_vaddr"] != block["p_paddr"]))
            self.truncated |= bool(np.any(block["p_offset"] + block["p_filesz"] > self.file_size))
        self._drop(phoff, nseg * _PHDR.itemsize)
        return {k: np.concatenate(v) for k, v in cols.items()}

    def _drop(self, offset: int, length: int) -> None:
        """Forget the mapping's pages in a file range (MADV_DONTNEED): they stay in the page cache,
        so a later access is a cheap minor fault, but they no longer count as this process's memory."""
        start = offset & ~(mmap.PAGESIZE - 1)
        end = min(self.file_size, offset + length)
        if end > start and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def _set_segments(self, loads: dict[str, np.ndarray]) -> None:
        """Index PT_LOADs by physical address, dropping ones contained in an earlier one."""
        starts, memsz, filesz, offsets = (loads[k] for k in ("p_paddr", "p_memsz", "p_filesz", "p_offset"))
        if not np.all(starts[1:] > starts[:-1]):  # writers usually emit sorted segments: skip the sort
            order = np.argsort(starts, kind="stable")
            starts, memsz, filesz, offsets = starts[order], memsz[order], filesz[order], offsets[order]
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
                if n >= _DROP_READ:
                    self._drop(off, n)
                cur += n
            if cur < seg_end:
                out += bytes(seg_end - cur)
                cur = seg_end
        return bytes(out)

    def gather_u64(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised u64 reads: one searchsorted and one fancy-index gather per block of addresses."""
        return blockwise(self._gather_block, np.asarray(addrs, dtype=np.uint64), _GATHER_BLOCK)

    def _gather_block(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
            o = offs[sel]
            if not np.any(o & 7):  # aligned in the file: one u64 gather
                vals[sel] = self._words[o >> 3]
            else:
                vals[sel] = self._bytes[o[:, None] + _GATHER8].view("<u8").reshape(-1)
            if sel.size >= _GATHER_DROP:  # scattered over many pages: release them
                self._drop(0, self.file_size)
        return vals, ok

    def close(self) -> None:
        """Close the mapping and the file."""
        self._bytes = np.zeros(0, np.uint8)
        self._words = np.zeros(0, np.uint64)
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


def _coalesce(chunks: Iterable[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray, list[list[bytes]]]:
    """Sort chunks and group touching ones into runs: (run starts, run lengths, data parts).

    Parts are kept as the caller's bytes objects (no copy); only a run with overlapping chunks is
    flattened into one bytearray so later chunks can overwrite earlier ones.
    """
    items = sorted((c for c in chunks if c[1]), key=lambda c: c[0])
    starts: list[int] = []
    lengths: list[int] = []
    parts: list[list[bytes]] = []
    end = -1
    for addr, data in items:
        if starts and addr <= end:
            if addr < end:  # overlap: later chunk wins
                buf = bytearray(b"".join(parts[-1]))
                off = addr - starts[-1]
                buf[off : off + len(data)] = data
                parts[-1] = [bytes(buf)]
                end = max(end, addr + len(data))
                lengths[-1] = len(buf)
            else:
                parts[-1].append(data)
                end += len(data)
                lengths[-1] += len(data)
        else:
            starts.append(addr)
            lengths.append(len(data))
            parts.append([data])
            end = addr + len(data)
    return np.array(starts, dtype=np.uint64), np.array(lengths, dtype=np.uint64), parts


def _plan_runs(chunks: Iterable[tuple[int, bytes]], records: tuple[np.ndarray, int, Iterable[np.ndarray]] | None
               ) -> tuple[np.ndarray, np.ndarray, list[list[bytes]], np.ndarray | None]:
    """PT_LOAD runs ``(starts, lengths)`` plus the write plan.

    Without records the plan is the chunk parts, run by run. With fixed-size records the plan is
    ``src``: for every entry in address order, the index of its chunk run, or -1 for the next record.
    """
    cs, cl, parts = _coalesce(chunks)
    if records is None:
        return cs, cl, parts, None
    raddr, rsize, _ = records
    raddr = np.asarray(raddr, dtype=np.uint64)
    allst = np.concatenate([cs, raddr])
    alll = np.concatenate([cl, np.full(len(raddr), rsize, dtype=np.uint64)])
    src = np.concatenate([np.arange(len(cs), dtype=np.int64), np.full(len(raddr), -1, dtype=np.int64)])
    order = np.argsort(allst, kind="stable")
    allst, alll, src = allst[order], alll[order], src[order]
    del order
    if np.any(allst[1:] < allst[:-1] + alll[:-1]):
        raise ValueError("write_elf_core: records overlap chunks or each other")
    new = np.ones(len(allst), dtype=bool)
    new[1:] = allst[1:] != allst[:-1] + alll[:-1]
    starts = allst[new]
    lengths = np.add.reduceat(alll, np.flatnonzero(new)) if len(allst) else alll
    return starts, lengths.astype(np.uint64), parts, src


def write_elf_core(
    path: str | os.PathLike,
    chunks: Iterable[tuple[int, bytes]],
    vmcoreinfo: bytes,
    *,
    page_offset: int | None = None,
    kernel_image: tuple[int, int, int] | None = None,
    records: tuple[np.ndarray, int, Iterable[np.ndarray]] | None = None,
) -> None:
    """Write an x86-64 ELF vmcore holding ``chunks`` of physical memory and a VMCOREINFO note.

    ``chunks`` are ``(physical address, bytes)`` in any order; overlapping or adjacent ones are
    merged into one PT_LOAD (later chunks win on overlap). With ``page_offset`` the PT_LOADs get
    kdump-style ``p_vaddr = page_offset + p_paddr``, otherwise ``p_vaddr = p_paddr`` like QEMU.
    ``kernel_image = (phys_start, phys_end, vaddr_start)`` adds, like /proc/vmcore
    (fs/proc/vmcore.c, kexec-tools), PT_LOADs mapping the kernel image at its
    ``__START_KERNEL_map`` addresses, sharing the file data, so that tools reading kernel symbols
    by virtual address (gdb, makedumpfile, crash) work too.

    ``records = (addrs, size, blocks)`` is the bulk path for a million small pieces (the struct
    pages of a simulated 64 TiB machine): ``addrs`` sorted physical addresses of fixed-size
    records, ``blocks`` an iterable of ``(k, size)`` uint8 arrays holding them in address order.
    They must not overlap the chunks. Records are streamed, never held as Python objects.

    More than 65534 segments use the PN_XNUM extension (count in section header 0's sh_info).
    Memory outside every chunk is absent from the dump and reads fault. Program headers are built
    with numpy in blocks.
    """
    starts, lengths, parts, src = _plan_runs(chunks, records)
    note = _note(b"VMCOREINFO", 0, bytes(vmcoreinfo))
    if kernel_image is not None:
        k0, k1, kva = kernel_image
        lo = np.maximum(starts, np.uint64(k0))
        hi = np.minimum(starts + lengths, np.uint64(k1))
        alias_idx = np.nonzero(lo < hi)[0]
        alias_lo, alias_len = lo[alias_idx], hi[alias_idx] - lo[alias_idx]
    else:
        alias_idx = np.zeros(0, np.int64)
    nruns, naliases = len(starts), len(alias_idx)
    nphdr = nruns + naliases + 1
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
    run_off = np.uint64(data_off) + (np.cumsum(lengths, dtype=np.uint64) - lengths)

    def load_rows(paddr: np.ndarray, offset: np.ndarray, length: np.ndarray, vaddr: np.ndarray) -> np.ndarray:
        ph = np.zeros(len(paddr), dtype=_PHDR)
        ph["p_type"] = PT_LOAD
        ph["p_flags"] = 7
        ph["p_offset"] = offset
        ph["p_vaddr"] = vaddr
        ph["p_paddr"] = paddr
        ph["p_filesz"] = length
        ph["p_memsz"] = length
        return ph

    block = 1 << 16
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.array([(PT_NOTE, 0, note_off, 0, 0, len(note), len(note), 4)], dtype=_PHDR).tobytes())
        for i in range(0, nruns, block):
            st = starts[i : i + block]
            va = st + np.uint64(page_offset) if page_offset is not None else st
            load_rows(st, run_off[i : i + block], lengths[i : i + block], va).tofile(f)
        if naliases:
            va = alias_lo - np.uint64(kernel_image[0]) + np.uint64(kernel_image[2])  # type: ignore[index]
            load_rows(alias_lo, run_off[alias_idx] + (alias_lo - starts[alias_idx]), alias_len, va).tofile(f)
        if xnum:
            f.write(struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, nphdr, 0, 0))
        f.write(note)
        f.write(bytes(data_off - f.tell()))
        if src is None:
            for run in parts:
                f.writelines(run)
        else:
            _write_interleaved(f, src, parts, records)  # type: ignore[arg-type]


def _write_interleaved(f, src: np.ndarray, parts: list[list[bytes]],
                       records: tuple[np.ndarray, int, Iterable[np.ndarray]]) -> None:
    """Write chunk runs and streamed records in address order (``src`` from :func:`_plan_runs`)."""
    _, size, blocks = records
    it = iter(blocks)
    cur, off = memoryview(b""), 0

    def take(nrec: int) -> None:
        nonlocal cur, off
        need = nrec * size
        while need:
            if off == len(cur):
                cur, off = memoryview(np.ascontiguousarray(next(it))).cast("B"), 0
            k = min(need, len(cur) - off)
            f.write(cur[off : off + k])
            off += k
            need -= k

    prev = 0
    for pos in np.flatnonzero(src >= 0).tolist():
        take(pos - prev)
        f.writelines(parts[int(src[pos])])
        prev = pos + 1
    take(len(src) - prev)
