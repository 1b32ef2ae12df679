"""ELF vmcores: writing (the reader is :mod:`vmemdbg.elfcore`).

Two layouts, both readable by the engine, drgn, crash and gdb:

* :func:`write_elf_core`: one PT_LOAD per run of the memory given (small fixtures, ``extract``'s
  minimal dumps), optionally with the kernel-image PT_LOADs /proc/vmcore has;
* :func:`write_vmcore_layout`: one PT_LOAD per System RAM range, as kexec-tools and kexec_file
  lay out ``/proc/vmcore``, in a sparse file (the simulator's ``--layout vmcore|qemu``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np

from .abi import PAGE_SIZE
from .elfcore import ELF64_PHDR, PN_XNUM, PT_LOAD, PT_NOTE
from .intervals import containing

#: sizeof(Elf64_Ehdr) and sizeof(Elf64_Shdr).
_EHSIZE, _SHENTSIZE = 64, 64
#: PF_R | PF_W | PF_X, what kexec-tools and QEMU put on every PT_LOAD.
_PF_RWX = 7
#: program headers built per numpy block.
_PHDR_BLOCK = 1 << 16
#: ``(addrs, size, blocks)``: fixed-size records streamed in address order (see write_elf_core).
Records = tuple[np.ndarray, int, Iterable[np.ndarray]]


def elf_note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note: header, NUL-terminated name and descriptor, each padded to 4 bytes."""
    name0 = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name0), len(desc), ntype) + pad(name0) + pad(desc)


def _elf_header(phoff: int, nphdr: int, shoff: int = 0) -> bytes:
    """Elf64_Ehdr of an x86-64 ET_CORE; ``nphdr >= PN_XNUM`` puts the count in section 0's
    sh_info (``shoff`` then points at that one section header)."""
    xnum = nphdr >= PN_XNUM
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, ELFDATA2LSB, EV_CURRENT
    return ident + struct.pack(
        "<HHIQQQIHHHHHH",
        4,  # ET_CORE
        62,  # EM_X86_64
        1,  # EV_CURRENT
        0,  # e_entry
        phoff,
        shoff,
        0,  # e_flags
        _EHSIZE,
        ELF64_PHDR.itemsize,
        PN_XNUM if xnum else nphdr,
        _SHENTSIZE if xnum else 0,
        1 if xnum else 0,
        0,  # e_shstrndx
    )


def _note_phdr(note_off: int, note_len: int) -> np.ndarray:
    return np.array([(PT_NOTE, 0, note_off, 0, 0, note_len, note_len, 4)], dtype=ELF64_PHDR)


def _load_phdrs(paddr: np.ndarray, offset: np.ndarray, length: np.ndarray, vaddr: np.ndarray) -> np.ndarray:
    """PT_LOAD program headers, one per row."""
    ph = np.zeros(len(paddr), dtype=ELF64_PHDR)
    ph["p_type"] = PT_LOAD
    ph["p_flags"] = _PF_RWX
    ph["p_offset"] = offset
    ph["p_vaddr"] = vaddr
    ph["p_paddr"] = paddr
    ph["p_filesz"] = length
    ph["p_memsz"] = length
    return ph


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


def _plan_runs(chunks: Iterable[tuple[int, bytes]], records: Records | None
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


def _image_overlap(starts: np.ndarray, lengths: np.ndarray,
                   kernel_image: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parts of the runs inside ``kernel_image = (phys_start, phys_end, vaddr_start)``: run
    index, physical start and length of each."""
    if kernel_image is None:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    lo = np.maximum(starts, np.uint64(kernel_image[0]))
    hi = np.minimum(starts + lengths, np.uint64(kernel_image[1]))
    idx = np.nonzero(lo < hi)[0]
    return idx, lo[idx], hi[idx] - lo[idx]


def write_elf_core(
    path: str | os.PathLike,
    chunks: Iterable[tuple[int, bytes]],
    vmcoreinfo: bytes,
    *,
    page_offset: int | None = None,
    kernel_image: tuple[int, int, int] | None = None,
    records: Records | None = None,
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
    note = elf_note(b"VMCOREINFO", 0, bytes(vmcoreinfo))
    alias_idx, alias_lo, alias_len = _image_overlap(starts, lengths, kernel_image)
    nphdr = len(starts) + len(alias_idx) + 1
    xnum = nphdr >= PN_XNUM
    phoff = _EHSIZE
    shoff = phoff + nphdr * ELF64_PHDR.itemsize if xnum else 0
    note_off = phoff + nphdr * ELF64_PHDR.itemsize + (_SHENTSIZE if xnum else 0)
    data_off = -(-(note_off + len(note)) // PAGE_SIZE) * PAGE_SIZE
    run_off = np.uint64(data_off) + (np.cumsum(lengths, dtype=np.uint64) - lengths)
    with open(path, "wb") as f:
        f.write(_elf_header(phoff, nphdr, shoff))
        f.write(_note_phdr(note_off, len(note)).tobytes())
        for i in range(0, len(starts), _PHDR_BLOCK):
            st = starts[i : i + _PHDR_BLOCK]
            va = st + np.uint64(page_offset) if page_offset is not None else st
            _load_phdrs(st, run_off[i : i + _PHDR_BLOCK], lengths[i : i + _PHDR_BLOCK], va).tofile(f)
        if kernel_image is not None:  # the image at its __START_KERNEL_map addresses, sharing the data
            va = alias_lo - np.uint64(kernel_image[0]) + np.uint64(kernel_image[2])
            _load_phdrs(alias_lo, run_off[alias_idx] + (alias_lo - starts[alias_idx]), alias_len, va).tofile(f)
        if xnum:  # section header 0: sh_info holds the program-header count
            f.write(struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, nphdr, 0, 0))
        f.write(note)
        f.write(bytes(data_off - f.tell()))
        if src is None:
            for run in parts:
                f.writelines(run)
        else:
            assert records is not None
            _write_interleaved(f, src, parts, records)


def _write_interleaved(f: BinaryIO, src: np.ndarray, parts: list[list[bytes]], records: Records) -> None:
    """Write chunk runs and streamed records in address order (``src`` from :func:`_plan_runs`)."""
    _, size, blocks = records
    it = iter(blocks)
    cur, off = memoryview(b""), 0

    def take(nrec: int) -> None:
        nonlocal cur, off
        need = nrec * size
        while need:
            if off == len(cur):
                cur, off = np.ascontiguousarray(next(it)).data.cast("B"), 0
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


def write_vmcore_layout(
    path: str | os.PathLike,
    ram: Iterable[tuple[int, int]],
    chunks: Iterable[tuple[int, bytes]],
    vmcoreinfo: bytes,
    *,
    page_offset: int | None,
    kernel_image: tuple[int, int, int] | None = None,
    records: Records | None = None,
) -> None:
    """Write an ELF vmcore laid out like ``/proc/vmcore``: one PT_LOAD per RAM range.

    ``ram`` are the ``[start, end)`` System RAM ranges (what kexec-tools and kexec_file's
    crash_prepare_elf64_headers turn into PT_LOADs, kernel/crash_core.c); every range gets a
    PT_LOAD with ``p_filesz == p_memsz`` and its bytes at ``p_offset + (paddr - p_paddr)``, as a
    real dump has. With ``page_offset`` the RAM PT_LOADs get ``p_vaddr = page_offset + p_paddr``
    (kdump), without it ``p_vaddr = p_paddr`` (QEMU ``dump-guest-memory``, paging off).
    ``kernel_image = (phys_start, phys_end, vaddr_start)`` adds the kernel-text PT_LOAD
    /proc/vmcore starts with, sharing the file data. Only ``chunks`` and ``records`` (same meaning
    as in :func:`write_elf_core`) are written; the file is sparse and every other byte reads as
    zero, like the unused memory of a freshly booted machine. Chunks outside every RAM range are
    refused (a real dump would not hold them).
    """
    ram = sorted((int(a), int(b)) for a, b in ram if b > a)
    rs, rl = _ram_runs(ram)
    note = elf_note(b"VMCOREINFO", 0, bytes(vmcoreinfo))
    nphdr = 1 + len(ram) + (kernel_image is not None)
    if nphdr >= PN_XNUM:
        raise ValueError("write_vmcore_layout: too many RAM ranges")
    note_off = _EHSIZE + nphdr * ELF64_PHDR.itemsize
    data_off = -(-(note_off + len(note)) // PAGE_SIZE) * PAGE_SIZE
    run_off = np.uint64(data_off) + (np.cumsum(rl, dtype=np.uint64) - rl)
    file_offsets = _ram_file_offsets(rs, rl, run_off)

    phdrs = [_note_phdr(note_off, len(note))]
    if kernel_image is not None:
        phdrs.append(_kernel_image_phdr(kernel_image, rs, rl, file_offsets))
    phdrs.append(_load_phdrs(rs, run_off, rl, rs + np.uint64(page_offset) if page_offset is not None else rs))
    total = int(run_off[-1] + rl[-1]) if len(ram) else data_off
    cs, cl, parts = _coalesce(chunks)
    coff = file_offsets(cs, cl)
    with open(path, "wb") as f:
        fd = f.fileno()
        f.write(_elf_header(_EHSIZE, nphdr) + b"".join(p.tobytes() for p in phdrs) + note)
        f.flush()
        for off, run in zip(coff.tolist(), parts):
            os.pwrite(fd, b"".join(run), off)
        if records is not None:
            _pwrite_records(fd, records, file_offsets)
        os.ftruncate(fd, total)


def _ram_runs(ram: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (uint64) of the sorted ``[start, end)`` RAM ranges; overlapping ones are refused."""
    rs = np.array([a for a, _ in ram], dtype=np.uint64)
    rl = np.array([b - a for a, b in ram], dtype=np.uint64)
    if np.any(rs[1:] < rs[:-1] + rl[:-1]):
        raise ValueError("write_vmcore_layout: RAM ranges overlap")
    return rs, rl


def _ram_file_offsets(rs: np.ndarray, rl: np.ndarray,
                      run_off: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``file_offsets(addrs, sizes)``: where the bytes of each ``[addr, addr + size)`` lie in the file,
    given RAM run ``i`` at ``run_off[i]``; memory outside every RAM range is refused."""
    def file_offsets(addrs: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        ic, inside = containing(rs, rs + rl, addrs, addrs + sizes)
        if not np.all(inside):
            a = int(addrs[np.argmax(~inside)])
            raise ValueError(f"write_vmcore_layout: memory at {a:#x} is outside every RAM range")
        return run_off[ic] + (addrs - rs[ic])
    return file_offsets


def _kernel_image_phdr(kernel_image: tuple[int, int, int], rs: np.ndarray, rl: np.ndarray,
                       file_offsets: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """The kernel-text PT_LOAD ``/proc/vmcore`` starts with (crash_prepare_elf64_headers, in
    kernel/crash_core.c on recent kernels), sharing the file data of the RAM range holding the image."""
    k0, k1, kva = kernel_image
    if not np.all(containing(rs, rs + rl, np.uint64(k0), np.uint64(k1))[1]):
        raise ValueError("write_vmcore_layout: kernel image outside RAM")
    k = np.array([k0], np.uint64)
    return _load_phdrs(k, file_offsets(k, np.array([k1 - k0], np.uint64)), np.array([k1 - k0], np.uint64),
                       np.array([kva], np.uint64))


def _pwrite_records(fd: int, records: Records, file_offsets: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Write each fixed-size record at its file offset (``file_offsets(addrs, sizes)``)."""
    raddr, size, blocks = records
    raddr = np.asarray(raddr, dtype=np.uint64)
    roff = file_offsets(raddr, np.full(len(raddr), size, dtype=np.uint64)).tolist()
    pos = 0
    for block in blocks:
        flat = np.ascontiguousarray(block).data.cast("B")
        for k in range(len(block)):
            os.pwrite(fd, flat[k * size:(k + 1) * size], roff[pos + k])
        pos += len(block)
