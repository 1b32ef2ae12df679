"""Mutations of a clean dump (:class:`anatomy.Anatomy`): each returns the damaged file's bytes and a
label saying what was done. Deterministic for a given ``random.Random``.

Families (the issue's list): truncation at structure boundaries; ELF header, program header and
note edits; VMCOREINFO keys deleted, duplicated (same or different value), inconsistent, absurd or
non-numeric; kernel data the views read (section roots and entries, usage pointers and objects,
page-table entries with cycles, parent references, fan-out, PSE at odd levels, frames past the end
of memory; kallsyms tables; node data; memblock counts; e820 counts; layout variables); random bit
flips; non-ELF inputs.
"""

from __future__ import annotations

import dataclasses
import os
import random
import struct
import tempfile
from collections.abc import Callable

from anatomy import Anatomy

from vmemdbg.elfwrite import write_elf_core

#: Interesting 64-bit values: boundaries of the x86-64 address spaces and of the integer types.
U64 = [0, 1, 7, 0xFFF, 0x1000, 1 << 20, 1 << 31, 1 << 32, (1 << 32) - 1, 1 << 40, (1 << 40) - 1,
       1 << 46, 1 << 52, (1 << 52) - 4096, 1 << 56, 1 << 63, (1 << 63) - 1, (1 << 64) - 1, (1 << 64) - 4096,
       0xFFFF800000000000, 0xFFFF888000000000, 0xFF11000000000000, 0xFFFFEA0000000000,
       0xFFFFFFFF80000000, 0xFFFFFFFFFF600000, 0x00007FFFFFFFF000, 0xDEADBEEFDEADBEEF]
#: Absurd or malformed VMCOREINFO value texts.
BAD_VALUES = ["", "-1", "1_0", "0x10", "zz", " 12", "ffffffffffffffffff", "1" * 23, str(1 << 64), str(1 << 65),
              str(1 << 63), "-" + str(1 << 63), "18446744073709551615", "0", "4294967296", "9" * 40,
              "12\xe9", "\xff\xfe", "1e3", "+5", "0b101", "nan", "ffffffff80000000", "fffffffffffff000"]
#: VMCOREINFO keys the engine reads, and extra inconsistent values worth trying for each.
KEYS = {
    "OSRELEASE": ["", "garbage", "2.6.32", "99.99.99", "6.1.0\xff"],
    "PAGESIZE": ["65536", "4095", "0", "8192"],
    "KERNELOFFSET": ["-1", "ffffffffc0000000", "40000000", "3fe00000", "1"],
    "SYMBOL(init_top_pgt)": ["ffffffff80000000", "ffffffffffffffff", "10000000000000000", "ffff888000000000", "1"],
    "SYMBOL(swapper_pg_dir)": ["ffffffffffffffff"],
    "NUMBER(phys_base)": ["-1", "-4503599627370496", "4503599627370496", str(1 << 62), "1", "-16777216"],
    "NUMBER(pgtable_l5_enabled)": ["1", "0", "2", "-1"],
    "NUMBER(MAX_PHYSMEM_BITS)": ["52", "46", "64", "63", "40", "0", "12"],
    "NUMBER(SECTION_SIZE_BITS)": ["26", "30", "0", "64", "52", "12"],
    "SIZE(page)": ["0", "8", "56", "4096", str(1 << 40)],
    "SIZE(mem_section)": ["0", "32", "8", "4096"],
    "LENGTH(mem_section)": ["0", "1", "2048", "8192", "262144", str(1 << 40)],
    "SYMBOL(mem_section)": ["0", "ffffffffffffffff", "1000", "ffff888000000000", "ffffffff81000000"],
    "NUMBER(sme_mask)": ["1" * 23, "-1", str(1 << 47), str(1 << 52), "3", str(1 << 63)],
    "LENGTH(node_data)": ["0", "1", "3", "1024", "2048", str(1 << 32), str(1 << 64), str(1 << 65), "-1"],
    "SYMBOL(node_data)": ["0", "ffffffffffffffff", "ffff888000000000"],
    "SYMBOL(node_online_map)": ["0", "ffffffffffffffff"],
    "OFFSET(pglist_data.node_start_pfn)": ["0", str(1 << 40), "-8", "18446744073709551615"],
    "OFFSET(pglist_data.node_spanned_pages)": [str(1 << 40), "4095"],
    "SYMBOL(kallsyms_num_syms)": ["", "0", "ffffffffffffffff"],
    "SYMBOL(kallsyms_names)": ["0", "ffffffffffffffff", "ffffffff80000000"],
    "SYMBOL(kallsyms_offsets)": ["0", "ffffffffffffffff"],
    "SYMBOL(kallsyms_token_table)": ["0"],
    "SYMBOL(kallsyms_token_index)": ["0", "ffffffffffffffff"],
    "SYMBOL(kallsyms_relative_base)": ["0", "ffffffffffffffff"],
    "SYMBOL(_stext)": ["0", "ffffffff81000000", "ffffffffffffffff"],
    "SYMBOL(vmemmap)": ["ffffea0000000000", "0", "ffffffffffffffff", "1"],
    "NUMBER(VMALLOC_START)": ["0xffffc90000000000", "0", "-1", "0xffffffffffffffff"],
}


def _u64(rng: random.Random) -> int:
    v = rng.choice(U64)
    return (v + rng.choice([0, 0, 0, 1, -1, 0x63, 0x67, 0xE3, 4096])) & ((1 << 64) - 1)


def _put(buf: bytearray, off: int, value: int, size: int = 8) -> None:
    if off >= 0 and off + size <= len(buf):
        buf[off : off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _rebuild(a: Anatomy, text: str | bytes) -> bytes:
    """The dump's memory with another VMCOREINFO text."""
    raw = text if isinstance(text, bytes) else text.encode("latin-1")
    fd, path = tempfile.mkstemp(prefix="fuzz-rebuild-")
    os.close(fd)
    try:
        write_elf_core(path, a.chunks, raw, page_offset=a.page_offset_base)
        with open(path, "rb") as g:
            return g.read()
    finally:
        os.unlink(path)


# -- families ---------------------------------------------------------------------------------------
def truncate(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    b = rng.choice(a.boundaries)
    cut = max(0, min(len(a.data), b + rng.choice([0, 0, -1, 1, -8, 8, -4096, 4096, 12, 20])))
    return a.data[:cut], f"truncate at {cut:#x} (boundary {b:#x})"


_EHDR_FIELDS = [("e_type", 16, 2), ("e_machine", 18, 2), ("e_version", 20, 4), ("e_phoff", 32, 8),
                ("e_shoff", 40, 8), ("e_ehsize", 52, 2), ("e_phentsize", 54, 2), ("e_phnum", 56, 2),
                ("e_shentsize", 58, 2), ("e_shnum", 60, 2), ("e_shstrndx", 62, 2)]


def elf_header(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    if rng.random() < 0.2:
        i = rng.choice([4, 5, 6, 7])
        buf[i] = rng.choice([0, 1, 2, 3, 0xFF])
        return bytes(buf), f"e_ident[{i}]={buf[i]}"
    name, off, size = rng.choice(_EHDR_FIELDS)
    v = rng.choice([0, 1, 2, 3, 4, 0xFFFF, 0xFFFE, 56, 55, 57, 64, a.phnum + 1, a.phnum - 1, len(a.data),
                    len(a.data) - 56, _u64(rng)])
    _put(buf, off, v, size)
    return bytes(buf), f"{name}={v & ((1 << (8 * size)) - 1):#x}"


_PHDR_FIELDS = [("p_type", 0, 4), ("p_offset", 8, 8), ("p_vaddr", 16, 8), ("p_paddr", 24, 8),
                ("p_filesz", 32, 8), ("p_memsz", 40, 8)]


def program_header(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    i = rng.randrange(a.phnum)
    name, off, size = rng.choice(_PHDR_FIELDS)
    if name == "p_type":
        v = rng.choice([0, 1, 4, 6, 0x6474E550, 0xFFFFFFFF])
    else:
        v = rng.choice([_u64(rng), len(a.data), len(a.data) + 4096, (1 << 63) + 4096, (1 << 64) - 8,
                        -4096 & ((1 << 64) - 1)])
    _put(buf, a.phoff + 56 * i + off, v, size)
    return bytes(buf), f"phdr[{i}].{name}={v:#x}"


def note(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    which = rng.choice(["namesz", "descsz", "type", "name", "phdr_offset", "phdr_filesz", "terminator"])
    if which in ("namesz", "descsz", "type"):
        off = a.note_off + {"namesz": 0, "descsz": 4, "type": 8}[which]
        v = rng.choice([0, 1, 3, 11, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, a.note_size, a.note_size + 1, 4096])
        _put(buf, off, v, 4)
        return bytes(buf), f"note {which}={v:#x}"
    if which == "name":
        buf[a.note_off + 12 + rng.randrange(11)] = rng.randrange(256)
        return bytes(buf), "note name byte"
    if which == "terminator":  # remove the NUL terminators of name and descriptor text
        for i in range(a.note_off, a.note_off + a.note_size):
            if buf[i] == 0:
                buf[i] = 0x41
        return bytes(buf), "note NULs replaced"
    idx = next(i for i in range(a.phnum) if struct.unpack_from("<I", a.data, a.phoff + 56 * i)[0] == 4)
    off = a.phoff + 56 * idx + (8 if which == "phdr_offset" else 32)
    v = rng.choice([_u64(rng), len(a.data) - 4, a.note_size * 1000, (1 << 63) + 12])
    _put(buf, off, v)
    return bytes(buf), f"note {which}={v:#x}"


def vmcoreinfo(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    lines = a.vmcoreinfo.splitlines()
    keys = [ln.partition("=")[0] for ln in lines]
    action = rng.choice(["delete", "dup_diff", "dup_same", "absurd", "inconsistent", "inconsistent",
                         "nonascii", "garbage_line"])
    if action in ("delete", "dup_diff", "dup_same", "absurd"):
        key = rng.choice([k for k in KEYS if k in keys] if rng.random() < 0.8 else keys)
        i = keys.index(key)
        if action == "delete":
            del lines[i]
        elif action == "dup_same":
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
        else:
            v = rng.choice(BAD_VALUES + KEYS.get(key, []))
            if action == "dup_diff":
                lines.insert(rng.randrange(len(lines) + 1), f"{key}={v}")
            else:
                lines[i] = f"{key}={v}"
        return _rebuild(a, "\n".join(lines) + "\n"), f"vmcoreinfo {action} {key}"
    if action == "inconsistent":
        edits = {}
        for key in rng.sample(sorted(KEYS), rng.choice([1, 2, 3])):
            edits[key] = rng.choice(KEYS[key])
        label = "vmcoreinfo set " + " ".join(f"{k}={v!r}" for k, v in edits.items())
        out = [f"{k}={edits.pop(k)}" if k in edits else ln for k, ln in zip(keys, lines)]
        out += [f"{k}={v}" for k, v in edits.items()]
        return _rebuild(a, "\n".join(out) + "\n"), label
    if action == "nonascii":
        raw = bytearray(("\n".join(lines) + "\n").encode())
        for _ in range(rng.choice([1, 3])):
            raw[rng.randrange(len(raw))] = rng.randrange(128, 256)
        return _rebuild(a, bytes(raw)), "vmcoreinfo non-ASCII bytes"
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(["=", "==", "SYMBOL()=1", "garbage", "\0", "A" * 300]))
    return _rebuild(a, "\n".join(lines) + "\n"), "vmcoreinfo odd line"


def _table_entry(a: Anatomy, rng: random.Random) -> tuple[int, int]:
    """(file offset of a present entry of a page-table page, index of its table)."""
    for _ in range(20):
        t = rng.randrange(len(a.tables))
        ents = struct.unpack_from("<512Q", a.data, a.tables[t])
        present = [i for i, e in enumerate(ents) if e & 1]
        if present:
            return a.tables[t] + 8 * rng.choice(present), t
    return a.tables[0], 0


def page_tables(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    off, t = _table_entry(a, rng)
    old = struct.unpack_from("<Q", buf, off)[0]
    kind = rng.choice(["self", "parent", "fanout", "fanout_all", "pse", "past_end", "clear", "garbage", "nx_ro",
                       "other_table"])
    phys = a.table_phys
    if kind == "self":
        _put(buf, off, phys[t] | 0x63)
    elif kind == "parent":
        _put(buf, off, phys[max(0, t - 1)] | 0x63)
    elif kind == "other_table":
        _put(buf, off, rng.choice(phys) | 0x63)
    elif kind in ("fanout", "fanout_all"):
        # every entry of every table points at one table page (shared tables, up to 512^levels leaves)
        target = rng.choice(phys)
        for toff in (a.tables if kind == "fanout_all" else [a.tables[t]]):
            for i in range(512):
                _put(buf, toff + 8 * i, target | 0x63)
    elif kind == "pse":
        _put(buf, off, old | 0x80)
    elif kind == "past_end":
        _put(buf, off, (old & ~0x000FFFFFFFFFF000 & ((1 << 64) - 1)) | rng.choice([1 << 51, (1 << 52) - 4096, 1 << 46, 1 << 40]))
    elif kind == "clear":
        _put(buf, off, old & ~1)
    elif kind == "nx_ro":
        _put(buf, off, (old | (1 << 63)) & ~2)
    else:
        _put(buf, off, _u64(rng) | 1)
    return bytes(buf), f"page table {kind} at {off:#x}"


def kernel_data(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    label = rng.choice(sorted(a.words))
    off = rng.choice(a.words[label])
    if label in ("kallsyms_num_syms", "e820_nr", "var:system_state"):
        v = rng.choice([0, 1, 0xFFFFFFFF, 3201, 4_000_001, 128, rng.randrange(1 << 32)])
        _put(buf, off, v, 4)
    elif label == "memblock_cnt":
        v = rng.choice([0, 129, 1 << 20, (1 << 20) + 1, 1 << 40, (1 << 64) - 1, rng.randrange(1 << 16)])
        _put(buf, off, v)
    elif label == "section_word":
        old = struct.unpack_from("<Q", buf, off)[0]
        v = rng.choice([old ^ (1 << rng.randrange(64)), old | 0x3F, old & 1, _u64(rng) | 1, (old & 0x3F) | _u64(rng)])
        _put(buf, off, v)
    elif label == "root" and rng.random() < 0.5:
        others = a.words["root"]
        src = rng.choice(others)
        _put(buf, off, struct.unpack_from("<Q", buf, src)[0] + rng.choice([0, 16, 8, 4096]))
        v = None
    else:
        v = _u64(rng)
        _put(buf, off, v)
    return bytes(buf), f"{label} at {off:#x}"


def kernel_area(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    label = rng.choice(sorted(a.areas))
    off, size = rng.choice(a.areas[label])
    how = rng.choice(["zero", "ones", "random", "flip"])
    end = min(len(buf), off + size)
    if how == "zero":
        buf[off:end] = bytes(end - off)
    elif how == "ones":
        buf[off:end] = b"\xff" * (end - off)
    elif how == "random":
        buf[off:end] = rng.randbytes(end - off)
    else:
        for _ in range(4):
            i = rng.randrange(off, end)
            buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf), f"{label} {how} at {off:#x}"


def bit_flips(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    buf = bytearray(a.data)
    n = rng.choice([1, 8, 64, 512])
    for _ in range(n):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf), f"{n} bit flips"


def non_elf(rng: random.Random, a: Anatomy) -> tuple[bytes, str]:
    kind = rng.choice(["empty", "random", "text", "kdump", "diskdump", "elf32", "elf_exec", "elf_only_header",
                       "zeros", "flattened"])
    if kind == "empty":
        return b"", kind
    if kind == "random":
        return rng.randbytes(rng.choice([1, 7, 64, 4096, 100000])), kind
    if kind == "text":
        return b"OSRELEASE=6.1.0\nPAGESIZE=4096\n" * 100, kind
    if kind in ("kdump", "diskdump", "flattened"):
        magic = {"kdump": b"KDUMP   ", "diskdump": b"DISKDUMP", "flattened": b"makedump"}[kind]
        return magic + rng.randbytes(rng.choice([0, 100, 8192])), kind
    if kind == "zeros":
        return bytes(rng.choice([1, 4096, 65536])), kind
    buf = bytearray(a.data[: rng.choice([64, len(a.data)])])
    if kind == "elf32":
        buf[4] = 1
    elif kind == "elf_exec":
        _put(buf, 16, 2, 2)
    return bytes(buf), kind


FAMILIES: dict[str, tuple[float, Callable[[random.Random, Anatomy], tuple[bytes, str]]]] = {
    "truncate": (1.0, truncate),
    "elf_header": (0.6, elf_header),
    "program_header": (1.0, program_header),
    "note": (0.6, note),
    "vmcoreinfo": (2.0, vmcoreinfo),
    "page_tables": (1.5, page_tables),
    "kernel_data": (2.0, kernel_data),
    "kernel_area": (1.0, kernel_area),
    "bit_flips": (0.5, bit_flips),
    "non_elf": (0.3, non_elf),
}


def mutate(rng: random.Random, a: Anatomy) -> tuple[str, bytes, str]:
    """One damaged dump: ``(family, bytes, label)``; sometimes two kernel-data edits at once."""
    names = list(FAMILIES)
    fam = rng.choices(names, weights=[FAMILIES[n][0] for n in names])[0]
    data, label = FAMILIES[fam][1](rng, a)
    if fam in ("kernel_data", "page_tables") and rng.random() < 0.25:
        b = dataclasses.replace(a, data=data)
        data, label2 = FAMILIES[rng.choice(["kernel_data", "page_tables", "kernel_area"])][1](rng, b)
        label += "; " + label2
    return fam, data, label
