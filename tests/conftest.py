"""Shared fixtures: the committed real-kernel dumps and helpers to make damaged copies of them."""

from __future__ import annotations

import json
import lzma
import os
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterable

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "fixtures" / "real"
REAL_CASES = ("1g-nokaslr", "6g-2node-kaslr", "1000m")
sys.path.insert(0, str(ROOT / "tests" / "realkernel"))


#: every committed real-kernel fixture: "<case>" (Debian 6.1.0-56) and "6.12/<case>" (6.12.107)
ALL_REAL_CASES = REAL_CASES + tuple(f"6.12/{c}" for c in REAL_CASES)


def real_dir(case: str) -> Path:
    """Directory of a committed real-kernel fixture: fixtures/real/<case> (``case`` may name a
    kernel's subdirectory: "6.12/1000m", "sid-7.2/1000m")."""
    return REAL / case


def real_dump(case: str) -> Path:
    """Path of the committed minimal dump of a real boot.

    A fixture over the size limit is committed xz-compressed (``vmcore.elf.xz``: 7.x kernels'
    kallsyms alone is 3.3 MiB) and unpacked once into the temporary directory.
    """
    plain = real_dir(case) / "vmcore.elf"
    packed = plain.with_name("vmcore.elf.xz")
    if plain.exists() or not packed.exists():
        return plain
    out = Path(tempfile.gettempdir()) / f"vmemdbg-fixtures-{os.getuid()}" / case / "vmcore.elf"
    if not out.exists() or out.stat().st_mtime < packed.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}")
        tmp.write_bytes(lzma.decompress(packed.read_bytes()))
        tmp.replace(out)
    return out


def real_truth(case: str) -> dict:
    """drgn's truth for that boot (tests/realkernel/drgn_truth.py on the full dump)."""
    return json.loads((real_dir(case) / "truth.json").read_text())


@pytest.fixture(params=REAL_CASES)
def real_case(request: pytest.FixtureRequest) -> str:
    """Each committed real-kernel case."""
    return request.param


@pytest.fixture(params=ALL_REAL_CASES)
def any_real_case(request: pytest.FixtureRequest) -> str:
    """Each committed real-kernel case of both kernels."""
    return request.param


def rewrite_dump(src: Path, dst: Path, *, drop_pages: Iterable[int] = (), patch: dict[int, bytes] | None = None,
                 add: dict[int, bytes] | None = None, vmcoreinfo: bytes | None = None) -> Path:
    """Copy an ELF dump, leaving out whole pages, overwriting bytes and adding new memory
    (a filtered, corrupt or edited dump)."""
    from vmemdbg.elfcore import ElfCoreSource
    from vmemdbg.elfwrite import write_elf_core

    s = ElfCoreSource(src)
    drop = {p & ~0xFFF for p in drop_pages}
    chunks = []
    for start, end in s.ranges():
        for page in range(start, end, 4096):
            if page not in drop:
                chunks.append((page, bytearray(s.read_phys(page, min(4096, end - page)))))
    for addr, data in (patch or {}).items():
        for page, buf in chunks:
            if page <= addr < page + len(buf):
                buf[addr - page : addr - page + len(data)] = data
                break
        else:
            raise AssertionError(f"patch address {addr:#x} not in dump")
    chunks += [(a, bytearray(b)) for a, b in (add or {}).items()]
    info = s.vmcoreinfo() if vmcoreinfo is None else vmcoreinfo
    s.close()
    write_elf_core(dst, [(a, bytes(b)) for a, b in chunks], info)
    return dst
