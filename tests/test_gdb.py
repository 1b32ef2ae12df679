"""The gdb front end (gdb/vmemdbg.py) run inside real gdb on the committed real-kernel fixtures.

Offline tests use gdb's "no vmlinux" mode: gdb serves the fixture's memory, VMCOREINFO comes from
the core's note and symbols from its kallsyms. The debug-info mode (VMCOREINFO composed from gdb's
symbols and types) needs the -dbg vmlinux and the full dumps, so it runs only where they exist;
tests/realkernel/gdb_midboot.py covers it on a live kernel mid-boot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, real_dump, real_truth
from truthcmp import compare

from vmemdbg.commands import DEBUGGER_COMMANDS
from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.elfwrite import write_elf_core
from vmemdbg.extract import _kernel_image
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections

#: The views that take no ADDR or FILE.
CLI_VIEWS = [n for n in DEBUGGER_COMMANDS if n not in ("explain", "map")]

GDB = shutil.which("gdb")
SCRIPT = ROOT / "gdb" / "vmemdbg.py"
VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
FULL_DUMPS = Path("/work/dumps")

pytestmark = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


def gdb(*commands: str, pre: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``gdb -batch -nx`` running ``pre`` commands, sourcing the script, then ``commands``.

    gdb's Python finds numpy through the interpreter running the tests (VMEMDBG_PYTHON).
    """
    env = {k: v for k, v in os.environ.items() if k != "VMEMDBG_SITE"}
    env["VMEMDBG_PYTHON"] = sys.executable
    argv = [GDB, "-batch", "-nx"]
    for c in (*pre, f"source {SCRIPT}", *commands):
        argv += ["-ex", c]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd="/")


def marked(commands: dict[str, str]) -> list[str]:
    """gdb commands printing ``@@name`` before each command's output, and ``@@end`` at the end."""
    out = []
    for name, cmd in commands.items():
        out += [f"echo @@{name}\\n", cmd]
    return out + ["echo @@end\\n"]


def blocks(stdout: str) -> dict[str, str]:
    """The output of each ``@@name`` block."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^@@([\w-]+)\n(.*?)(?=^@@)", stdout, re.S | re.M)}


def gdb_views(pre: tuple[str, ...], truth: dict) -> tuple[dict, subprocess.CompletedProcess[str]]:
    """Every view the truth compares, computed by the vmemdbg gdb commands (JSON)."""
    cmds = {"summary": "vmemdbg summary --json", "sections": "vmemdbg sections -v --json",
            "vmemmap": "vmemdbg vmemmap --json", "memblock": "vmemdbg memblock --json", "e820": "vmemdbg e820 --json",
            "table_pages": "python from vmemdbg.vmemmap import vmemmap_mapping; print(sorted(vmemmap_mapping(current_kernel()).leaves.tables))"}
    cmds.update({f"explain{i}": f"vmemdbg explain {e['input']} --json" for i, e in enumerate(truth["explain"])})
    res = gdb(*marked(cmds), pre=pre)
    b = blocks(res.stdout)
    assert set(b) == set(cmds), res.stdout + res.stderr
    mine = {k: json.loads(b[k]) for k in ("summary", "sections", "vmemmap", "memblock", "e820", "table_pages")}
    mine["explain"] = [json.loads(b[f"explain{i}"]) for i in range(len(truth["explain"]))]
    return mine, res


def test_core_without_vmlinux_equals_drgn_truth(real_case: str) -> None:
    truth = real_truth(real_case)
    mine, _ = gdb_views((f"core-file {real_dump(real_case)}",), truth)
    assert compare(mine, truth) == []
    assert mine["vmemmap"]["vmemmap_base"] == truth["summary"]["kernel"]["vmemmap_base"]
    assert [(r["start"], r["phys"]) for r in mine["vmemmap"]["runs"]] == \
        [(r["start"], r["phys"]) for r in truth["vmemmap_pages"]["runs"]]


def test_text_equals_the_cli() -> None:
    """Every view's text, printed by gdb, is byte-for-byte the CLI's."""
    dump = real_dump("6g-2node-kaslr")
    forms = [(v, []) for v in CLI_VIEWS] + [("sections", ["-v"]), ("explain", ["pfn:0x140000", "page:0xfffff1d840000040"])]
    res = gdb(*marked({f"v{i}": " ".join(["vmemdbg", v, *extra]) for i, (v, extra) in enumerate(forms)}),
              pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    for i, (view, extra) in enumerate(forms):
        cli = subprocess.run([sys.executable, "-m", "vmemdbg", view, str(dump), *extra],
                             capture_output=True, text=True, check=True).stdout
        assert b[f"v{i}"] == cli, view
    vm = [v for v, _ in forms].index("vmemmap")
    assert "0xfffff1d845000000  0xfffff1d848000000  PMD    RW    0x1fce00000  1" in b[f"v{vm}"]


def test_errors_are_one_line() -> None:
    res = gdb("vmemdbg summary")
    assert res.stderr.strip() == ("vmemdbg: gdb has no kernel debug info and no core file: load the vmlinux "
                                  "(with KASLR: symbol-file -o KERNELOFFSET vmlinux) or open a vmcore")
    res = gdb("vmemdbg explain", "vmemdbg bogus", "vmemdbg summary 0x1000", pre=(f"core-file {real_dump('1000m')}",))
    errors = [line for line in res.stderr.splitlines() if line.startswith("vmemdbg:")]
    assert errors == ["vmemdbg: the following arguments are required: ADDR",
                      "vmemdbg: unknown view 'bogus' (choose from summary, sections, vmemmap, memblock, e820, "
                      "memory-blocks, audit, describe, check, explain, map)",
                      "vmemdbg: unrecognized arguments: 0x1000"]


def copy_dump(case: str, dest: Path, *, full: Path | None = None, symbols: tuple[str, ...] = (),
              patch: dict[int, bytes] | None = None, vmcoreinfo: bytes | None = None) -> Path:
    """A kdump-style copy of a fixture (as extract writes it, so gdb reads it by virtual address).

    ``symbols``: also copy the pages of these kernel variables from the ``full`` dump. ``patch``:
    overwrite bytes at physical addresses. ``vmcoreinfo``: replace the note.
    """
    small = ElfCoreSource(real_dump(case))
    kernel = Kernel(small)
    pages = {page: bytearray(small.read_phys(page, 4096)) for start, end in small.ranges()
             for page in range(start, end, 4096)}
    if symbols:
        big = ElfCoreSource(full)
        for name in symbols:
            page = kernel.kimg_to_phys(kernel.symbols[name]) & ~0xFFF
            pages[page] = bytearray(big.read_phys(page, 4096))
        big.close()
    for addr, data in (patch or {}).items():
        pages[addr & ~0xFFF][addr & 0xFFF : (addr & 0xFFF) + len(data)] = data
    write_elf_core(dest, [(p, bytes(b)) for p, b in pages.items()], vmcoreinfo or small.vmcoreinfo(),
                   page_offset=kernel.page_offset_base, kernel_image=_kernel_image(kernel))
    small.close()
    return dest


def test_before_sparse_init(tmp_path: Path) -> None:
    """A kernel stopped before sparse_init: mem_section NULL, nothing mapped in vmemmap; views still print.

    Made from the 1 GiB 4-level fixture by zeroing SYMBOL(mem_section) and the init_top_pgt entry
    covering vmemmap (what memory_present() and vmemmap_populate() fill in).
    """
    src = ElfCoreSource(real_dump("1g-nokaslr"))
    kernel = Kernel(src)
    pgd_entry = kernel.kimg_to_phys(kernel.init_top_pgt) + 8 * (kernel.vmemmap_base >> 39 & 511)
    note = re.sub(rb"SYMBOL\(mem_section\)=[0-9a-f]+", b"SYMBOL(mem_section)=0", src.vmcoreinfo())
    src.close()
    dump = copy_dump("1g-nokaslr", tmp_path / "early.elf", patch={pgd_entry: bytes(8)}, vmcoreinfo=note)
    res = gdb(*marked({"summary": "vmemdbg summary -v", "sections": "vmemdbg sections --json",
                       "vmemmap": "vmemdbg vmemmap"}), pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    assert "sections          present 0  valid 0  online 0  early 0  highest -1" in b["summary"], res.stderr
    assert "memmap            0 B backing (0 PMD + 0 PTE leaves), vmemmap page tables 0 B" in b["summary"]
    assert "note: mem_section not allocated yet" in b["summary"]
    assert json.loads(b["sections"])["sections"] == []
    assert b["vmemmap"].startswith("START  END  LEVEL  PROT  PHYS  NID  PFNS  SIZE  PROVENANCE\n\naudit: 0 anomalies, 0 notes\n")


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux")
@pytest.mark.parametrize("case", ["6g-2node-kaslr", "1000m"])
def test_debug_info_mode(case: str, tmp_path: Path) -> None:
    """vmlinux loaded (relocated by KERNELOFFSET): composed VMCOREINFO = the kernel's, views = truth."""
    if not (FULL_DUMPS / case / "vmcore.elf").exists():
        pytest.skip(f"needs the full dump {FULL_DUMPS / case / 'vmcore.elf'}")
    truth = real_truth(case)
    note = truth["vmcoreinfo"]
    # the fixtures hold what the engine reads; composing VMCOREINFO also reads these variables
    dump = copy_dump(case, tmp_path / "vmcore.elf", full=FULL_DUMPS / case / "vmcore.elf",
                     symbols=("phys_base", "mem_section", "__pgtable_l5_enabled", "sme_me_mask", "init_uts_ns"))
    pre = (f"symbol-file -o 0x{note['KERNELOFFSET']} {VMLINUX}", f"core-file {dump}")
    mine, res = gdb_views(pre, truth)
    assert compare(mine, truth) == []
    res = gdb(*marked({"info": "python print(compose_vmcoreinfo(), end='')",
                       "symbols": "python print(type(current_kernel()._user_symbols).__name__)"}), pre=pre)
    b = blocks(res.stdout)
    composed = dict(line.split("=", 1) for line in b["info"].splitlines())
    assert len(composed) == 22
    assert composed == {k: note[k] for k in composed}
    assert b["symbols"] == "GdbSymbols\n"


def test_gdb_gathers_pages_and_reports_progress() -> None:
    """The gdb source's page-run gathers return what the ELF reader returns for the same words
    (readable or not), and with the progress delay at zero a command prints progress on stderr."""
    dump = real_dump("6g-2node-kaslr")
    src = ElfCoreSource(dump)
    k = Kernel(src)
    usage = [int(u) for u in present_sections(k).usage[:40].tolist() if u]
    addrs = sorted({u - k.page_offset_base + d for u in usage for d in (0, 8, 16, 4092)} | {0x7ff8, 0x3ffff000})
    vals, ok = src.gather_u64(__import__("numpy").array(addrs, dtype="uint64"))
    want = [(int(v) if o else None) for v, o in zip(vals.tolist(), ok.tolist())]
    assert any(w is None for w in want) and any(w for w in want)
    res = gdb(*marked({"g": "python import numpy as np; v, o = current_kernel().source.gather_u64(np.array("
                            f"{addrs}, dtype=np.uint64)); print([int(a) if b else None for a, b in zip(v, o)])",
                       "p": "python _PROGRESS_AFTER = 0.0", "s": "vmemdbg summary"}),
              pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    assert b["g"].strip() == str(want)
    assert re.search(r"^vmemdbg: \d+ s, \d+ reads, [\d.]+ MiB read so far$", res.stderr, re.M), res.stderr


QEMU = shutil.which("qemu-system-x86_64")
VMLINUZ = Path("/boot/vmlinuz-6.1.0-56-cloud-amd64")


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux")
def test_physical_core_with_vmlinux(tmp_path: Path) -> None:
    """A QEMU dump-guest-memory ELF (p_vaddr = p_paddr) with a vmlinux: gdb would read the vmlinux
    file's initial values at kernel addresses, so the command refuses in one line."""
    src = ElfCoreSource(real_dump("1g-nokaslr"))
    dump = tmp_path / "qemu.elf"
    write_elf_core(dump, [(s, src.read_phys(s, e - s)) for s, e in src.ranges()], src.vmcoreinfo())
    res = gdb("vmemdbg summary", pre=(f"file {VMLINUX}", f"core-file {dump}"))
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("vmemdbg")] == [
        f"vmemdbg: {dump} is a QEMU dump-guest-memory core holding physical addresses only: gdb cannot read kernel "
        "virtual memory from it (it would read the vmlinux file's initial values); open it without the vmlinux "
        "(core-file only) or run the vmemdbg CLI on it"]


@pytest.mark.skipif(QEMU is None or not VMLINUX.exists() or not VMLINUZ.exists(), reason="needs qemu and the 6.1 kernel")
def test_live_target_before_the_kernel_runs(tmp_path: Path) -> None:
    """qemu -S: gdb connects while the CPU sits at the reset vector, before any kernel code ran."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen([QEMU, "-S", "-gdb", f"tcp:127.0.0.1:{port}", "-display", "none", "-m", "256",
                             "-kernel", str(VMLINUZ), "-serial", "none", "-monitor", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = gdb("vmemdbg summary", pre=(f"file {VMLINUX}", f"target remote 127.0.0.1:{port}"), timeout=120)
    finally:
        qemu.kill()
        qemu.wait()
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("vmemdbg")]
    assert len(lines) == 1, res.stdout + res.stderr
    assert lines[0].startswith("vmemdbg: the kernel is not running yet: gdb cannot read its memory (Cannot access memory at address 0xffffffff")
    assert lines[0].endswith("continue until the kernel runs on its own page tables (e.g. break start_kernel)")
