"""Shared fixtures: the committed real-kernel dumps and helpers to make damaged copies of them.

The suite runs in this process wherever the process is not the subject: :func:`run_cli` runs the
``vmemdbg`` command through ``vmemdbg.cli.main``, :func:`shared_kernel` analyses each committed
fixture once per session, and each distinct kallsyms table is decoded once (:func:`kallsyms_decoded_once`).
Real processes remain only where the process is what is tested:

* the front ends, each as it is started for real: ``python -m vmemdbg`` (test_bad_input.py
  test_cli_as_a_process), the ``drgn`` CLI loading the plugin (test_drgn_plugin.py), and gdb, whose
  commands only exist inside a gdb process (test_gdb.py, test_map.py's gdb map);
* what only a process shows: peak RSS from ``wait4`` (test_hostile.py cli_process), the fuzz
  runner's time and address-space limits, signals and hangs (test_fuzz.py), the modules a fresh
  interpreter imports with the drgn plugin (test_scale.py), the browser rendering the map page;
* other programs reading our files: crash and makedumpfile (test_scale.py), QEMU's gdbstub.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import lzma
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vmemdbg.kernel import Kernel

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "fixtures" / "real"
REAL_CASES = ("1g-nokaslr", "6g-2node-kaslr", "1000m")
sys.path[:0] = [str(ROOT / "tests" / "realkernel"), str(ROOT / "tests" / "fuzz")]


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


@pytest.fixture(scope="session", autouse=True)
def kallsyms_decoded_once() -> Iterator[None]:
    """Each distinct kallsyms table is decoded once per session: a dump edited elsewhere (a planted
    fault, a filtered copy) gets the recorded table only if every read of the decode returns the
    same bytes, so damaged tables are still decoded for real (tests/fuzz/runner.py memo_kallsyms)."""
    from runner import memo_kallsyms

    restore = memo_kallsyms()
    yield
    restore()


@functools.cache
def shared_kernel(case: str) -> "Kernel":
    """One :class:`~vmemdbg.kernel.Kernel` per committed fixture for the whole session (its kallsyms
    decoded once). Only for tests that read: a test that edits a kernel or its dump makes its own."""
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel

    return Kernel(open_dump(real_dump(case)))


def run_cli(*argv: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``vmemdbg ARGV...`` run in this process (``vmemdbg.cli.main``): the exit status, stdout and
    stderr as a subprocess would give them; ``check`` raises on a non-zero status, as
    ``subprocess.run(check=True)`` does. Argument errors (argparse's ``SystemExit``) count as exits."""
    from vmemdbg.cli import main

    args = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    res = subprocess.CompletedProcess(["vmemdbg", *args], rc, out.getvalue(), err.getvalue())
    if check:
        res.check_returncode()
    return res


def cli_json(*argv: str | Path) -> dict:
    """The JSON document ``vmemdbg ARGV... --json`` prints (in this process); it must exit 0."""
    return json.loads(run_cli(*argv, "--json", check=True).stdout)


def hexed(value: int | None) -> str | None:
    """An address or word as vmemdbg/2 JSON writes it ("0x…", lowercase), None as null."""
    return None if value is None else f"{value:#x}"


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
