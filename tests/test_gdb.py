"""The gdb front end (vmemdbg/gdb/) run inside real ``gdb -batch`` processes.

* no vmlinux: gdb serves the committed real fixtures, VMCOREINFO comes from the core's note and
  symbols from its kallsyms; the views equal drgn's truth and the CLI's text;
* the simulator's DWARF on a simulated KASLR core (``gdb vmlinux vmcore``, no ``symbol-file -o``):
  the relocation is taken from VMCOREINFO; the ``$vmemdbg_*`` functions equal drgn's helpers;
* the real -dbg vmlinux on copies of the real KASLR fixtures, where the vmlinux and the full dumps
  exist (``$VMEMDBG_FULL_DUMPS``, default /work/dumps/base-6.1 or /work/dumps, as the oracle
  script writes them);
* the package installed (not editable) into a fresh venv, loaded by the line ``python -m
  vmemdbg.gdb`` prints; a venv of another Python version refused in one line;
* help, completion, and one line for every known error.
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
from conftest import ROOT, real_dump, real_truth, rewrite_dump, run_cli
from truthcmp import compare

from vmemdbg.addresses import PREFIXES
from vmemdbg.commands import COMMANDS, DEBUGGER_COMMANDS
from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.elfwrite import write_elf_core
from vmemdbg.extract import _kernel_image
from vmemdbg.jsonout import decode
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections

GDB = shutil.which("gdb")
VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
MACHINES = ROOT / "fixtures" / "machines"
#: the views gdb offers that take no argument and print what the CLI prints for a dump
PLAIN_VIEWS = [name for name in DEBUGGER_COMMANDS if name not in ("explain", "map")]

pytestmark = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


def full_dump(case: str) -> Path | None:
    """The full dump of a real boot, if this machine has it (``$VMEMDBG_FULL_DUMPS/<case>/vmcore.elf``)."""
    roots = [os.environ["VMEMDBG_FULL_DUMPS"]] if "VMEMDBG_FULL_DUMPS" in os.environ else \
        ["/work/dumps/base-6.1", "/work/dumps"]
    return next((p for r in roots if (p := Path(r) / case / "vmcore.elf").exists()), None)


def load_line(python: str = sys.executable) -> str:
    """The gdb line loading vmemdbg, as ``python -m vmemdbg.gdb`` prints it for that interpreter."""
    return subprocess.run([python, "-m", "vmemdbg.gdb"], capture_output=True, text=True, check=True,
                          cwd="/").stdout.strip()


LOAD = load_line()


def gdb(*commands: str, pre: tuple[str, ...] = (), files: tuple[str, ...] = (), load: str = LOAD,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``gdb -batch -nx [FILES]`` running ``pre`` commands, the load line, then ``commands``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    argv = [GDB, "-batch", "-nx"]
    for c in (*pre, load, *commands):
        argv += ["-ex", c]
    return subprocess.run([*argv, *files], capture_output=True, text=True, timeout=timeout, env=env, cwd="/")


def marked(commands: dict[str, str]) -> list[str]:
    """gdb commands printing ``@@name`` before each command's output, and ``@@end`` at the end."""
    out = []
    for name, cmd in commands.items():
        out += [f"echo @@{name}\\n", cmd]
    return out + ["echo @@end\\n"]


def outputs(commands: dict[str, str]) -> list[str]:
    """Like :func:`marked`, each output ending with a newline (``output`` prints none)."""
    out = []
    for name, cmd in commands.items():
        out += [f"echo @@{name}\\n", cmd, "echo \\n"]
    return out + ["echo @@end\\n"]


def blocks(stdout: str) -> dict[str, str]:
    """The output of each ``@@name`` block."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^@@([\w-]+)\n(.*?)(?=^@@)", stdout, re.S | re.M)}


def errors(res: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines gdb printed on stderr for vmemdbg (its own warnings about the core left out)."""
    return [ln for ln in res.stderr.splitlines() if ln.startswith("vmemdbg")]


KERNEL = "python from vmemdbg.gdb.target import current_kernel as k; "


def gdb_views(truth: dict, pre: tuple[str, ...] = (), files: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Every view the truth compares, computed by the vmemdbg gdb commands (JSON), and stderr."""
    cmds = {"summary": "vmemdbg summary --json", "sections": "vmemdbg sections -v --json",
            "vmemmap": "vmemdbg vmemmap --json", "memblock": "vmemdbg memblock --json", "e820": "vmemdbg e820 --json",
            "table_pages": KERNEL + "from vmemdbg.vmemmap import vmemmap_mapping as m; "
                                    "print(sorted(m(k()).leaves.tables))"}
    cmds.update({f"explain{i}": f"vmemdbg explain {e['input']} --json" for i, e in enumerate(truth["explain"])})
    res = gdb(*marked(cmds), pre=pre, files=files)
    b = blocks(res.stdout)
    assert set(b) == set(cmds), res.stdout + res.stderr
    mine = {k: decode(json.loads(b[k])) for k in ("summary", "sections", "vmemmap", "memblock", "e820", "table_pages")}
    mine["explain"] = [decode(json.loads(b[f"explain{i}"])) for i in range(len(truth["explain"]))]
    return mine, res.stderr


def cli(*args: str | Path) -> str:
    """What the vmemdbg CLI prints (run in this process)."""
    return run_cli(*args, check=True).stdout


# -- the committed real fixtures, no vmlinux -----------------------------------------------------

def test_core_without_vmlinux_equals_drgn_truth(real_case: str) -> None:
    truth = real_truth(real_case)
    mine, _ = gdb_views(truth, pre=(f"core-file {real_dump(real_case)}",))
    assert compare(mine, truth) == []
    assert mine["vmemmap"]["vmemmap_base"] == truth["summary"]["kernel"]["vmemmap_base"]
    assert [(r["start"], r["phys"]) for r in mine["vmemmap"]["runs"]] == \
        [(r["start"], r["phys"]) for r in truth["vmemmap_pages"]["runs"]]


def test_text_equals_the_cli() -> None:
    """Every view's text, printed by gdb, is byte-for-byte the CLI's."""
    dump = real_dump("6g-2node-kaslr")
    forms = [(v, []) for v in PLAIN_VIEWS] + [("sections", ["-v"]), ("sections", ["--nr", "40-41"]),
                                              ("explain", ["pfn:0x140000", "page:0xfffff1d840000040"])]
    res = gdb(*marked({f"v{i}": " ".join(["vmemdbg", v, *extra]) for i, (v, extra) in enumerate(forms)}),
              pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    for i, (view, extra) in enumerate(forms):
        assert b[f"v{i}"] == cli(view, dump, *extra), view
    vm = [v for v, _ in forms].index("vmemmap")
    assert "0xfffff1d845000000  0xfffff1d848000000  PMD    RW    0x1fce00000  1" in b[f"v{vm}"]
    nr = b[f"v{len(forms) - 2}"].splitlines()
    assert len(nr) == 3 and nr[1].split()[0] == "40" and nr[2].split()[0] == "41"


def facts(doc: object) -> object:
    """A view document without the lines saying where its facts came from (symbols, debug info)."""
    if isinstance(doc, dict):
        return {k: facts(v) for k, v in doc.items() if k not in ("symbols", "flags_reason", "usage_reason", "reason")}
    if isinstance(doc, list):
        return [facts(v) for v in doc]
    return doc


# -- the simulator's DWARF on a simulated KASLR core ----------------------------------------------

@pytest.fixture(scope="module")
def sim_kaslr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real 6g-2node KASLR machine (KERNELOFFSET 0x10c00000) simulated, with its debug ELF."""
    from vmemdbg.sim import simulate

    d = tmp_path_factory.mktemp("sim-kaslr")
    simulate(MACHINES / "real-6g-2node-kaslr.toml", d / "vmcore.elf", debuginfo=d / "vmlinux.debug")
    return d / "vmlinux.debug", d / "vmcore.elf"


def test_kaslr_offset_from_vmcoreinfo(sim_kaslr: tuple[Path, Path]) -> None:
    """``gdb vmlinux vmcore`` of a KASLR kernel: gdb's symbols are 0x10c00000 below the kernel's;
    vmemdbg moves them by VMCOREINFO's KERNELOFFSET, says so once, and prints the CLI's views."""
    debug, core = sim_kaslr
    cmds = {v: f"vmemdbg {v} --json" for v in ("summary", "sections", "vmemmap", "memblock")}
    cmds["symbols"] = KERNEL + "print(k().symbol_source, hex(k().symbol('vmemmap_base')))"
    cmds["gdb"] = "p/x &vmemmap_base"
    res = gdb(*marked(cmds), files=(str(debug), str(core)))
    b = blocks(res.stdout)
    for view in ("summary", "sections", "vmemmap", "memblock"):
        assert facts(json.loads(b[view])) == facts(json.loads(cli(view, core, "--json"))), view
    summary = json.loads(b["summary"])
    assert summary["kernel"]["kaslr_offset"] == "0x10c00000"
    assert summary["symbols"] == "gdb's symbols + KERNELOFFSET relocation 0x10c00000"
    assert summary["sparse"]["flags_reason"].endswith("CONFIG_ZONE_DEVICE=y from debug info")
    link = int(b["gdb"].split("=")[1], 16)
    assert b["symbols"] == f"gdb's symbols + KERNELOFFSET relocation 0x10c00000 {hex(link + 0x10C00000)}\n"
    assert errors(res) == [f"vmemdbg: {debug} relocated by 0x10c00000 (KERNELOFFSET 0x10c00000 of the vmcore) for "
                           f"vmemdbg; for gdb's own expressions: symbol-file -o 0x10c00000 {debug}"]
    # with the symbols already relocated by the user, nothing is moved and nothing is said
    res = gdb("vmemdbg summary --json", pre=(f"symbol-file -o 0x10c00000 {debug}", f"core-file {core}"))
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert facts(summary) == facts(json.loads(cli("summary", core, "--json")))
    assert summary["symbols"] == "gdb's symbols"
    assert errors(res) == []


def test_functions_equal_drgn_helpers(sim_kaslr: tuple[Path, Path]) -> None:
    """$vmemdbg_pfn_to_page, _page_to_pfn, _virt_to_page and _pfn_to_section against drgn's helpers
    on the same core and DWARF, struct page fields read through $vmemdbg_readable against drgn's;
    typed with the kernel's types, plain integers without them."""
    drgn = pytest.importorskip("drgn")
    from drgn.helpers.linux.mm import page_to_pfn, pfn_to_page, virt_to_page
    from drgn.helpers.linux.mmzone import pfn_to_section

    debug, core = sim_kaslr
    prog = drgn.Program()
    prog.set_core_dump(str(core))
    prog.load_debug_info([str(debug)])
    pfns = [0x1000, 0x13FFFF, 0x140000, 0x1FFFFF]
    page_offset = prog["page_offset_base"].value_()
    cmds = {}
    for i, pfn in enumerate(pfns):
        cmds[f"page{i}"] = f"output $vmemdbg_pfn_to_page({pfn:#x})"
        cmds[f"pfn{i}"] = f"output $vmemdbg_page_to_pfn({pfn_to_page(prog, pfn).value_():#x})"
        cmds[f"virt{i}"] = f"output $vmemdbg_virt_to_page({page_offset + (pfn << 12) + 0x123:#x})"
        cmds[f"sec{i}"] = f"output $vmemdbg_pfn_to_section({pfn:#x})"
    cmds["member"] = "output $vmemdbg_pfn_to_section(0x140000)->section_mem_map"
    # the vmemmap is no segment of the core: struct page is read through its direct-map alias (the
    # simulated core holds the struct page of each section's first pfn)
    cmds["unreadable"] = "output $vmemdbg_pfn_to_page(0x140000)->flags"
    firsts = [0x8000, 0x100000, 0x140000, 0x1F8000]
    for i, pfn in enumerate(firsts):
        cmds[f"flags{i}"] = f"output/x $vmemdbg_readable($vmemdbg_pfn_to_page({pfn:#x}))->flags"
        cmds[f"refcount{i}"] = f"output $vmemdbg_readable($vmemdbg_pfn_to_page({pfn:#x}))->_refcount.counter"
    res = gdb(*outputs(cmds), files=(str(debug), str(core)))
    b = {k: v.strip() for k, v in blocks(res.stdout).items()}
    for i, pfn in enumerate(pfns):
        assert b[f"page{i}"] == f"(struct page *) {pfn_to_page(prog, pfn).value_():#x}"
        assert b[f"pfn{i}"] == str(page_to_pfn(pfn_to_page(prog, pfn)).value_()) == str(pfn)
        assert b[f"virt{i}"] == f"(struct page *) {virt_to_page(prog, page_offset + (pfn << 12) + 0x123).value_():#x}"
        assert b[f"sec{i}"] == f"(struct mem_section *) {pfn_to_section(prog, pfn).value_():#x}"
    assert b["member"] == str(pfn_to_section(prog, 0x140000).section_mem_map.value_())
    assert b["unreadable"] == ""
    assert f"Cannot access memory at address {pfn_to_page(prog, 0x140000).value_():#x}" in res.stderr
    for i, pfn in enumerate(firsts):
        assert b[f"flags{i}"] == hex(pfn_to_page(prog, pfn).flags.value_())
        assert b[f"refcount{i}"] == str(pfn_to_page(prog, pfn)._refcount.counter.value_())
    assert len({b[f"flags{i}"] for i in range(len(firsts))}) > 1  # node 0 and node 1 pages differ
    # without a vmlinux: the same addresses as unsigned long
    res = gdb(*outputs({"page": "output/x $vmemdbg_pfn_to_page(0x140000)",
                        "sec": "output/x $vmemdbg_pfn_to_section(0x140000)",
                        "type": "python print(gdb.parse_and_eval('$vmemdbg_pfn_to_page(0x140000)').type)"}), pre=(f"core-file {core}",))
    b = {k: v.strip() for k, v in blocks(res.stdout).items()}
    assert b["page"] == hex(pfn_to_page(prog, 0x140000).value_())
    assert b["sec"] == hex(pfn_to_section(prog, 0x140000).value_())
    assert b["type"] == "unsigned long"
    res = gdb("output $vmemdbg_page_to_pfn(0x1000)", "output $vmemdbg_virt_to_page(0x1000)",
              "output $vmemdbg_pfn_to_page(1, 2)", pre=(f"core-file {core}",))
    assert errors(res)[:2] == [  # the vmemmap spans 2^46 / 4096 x 64 bytes = 1 TiB
        "vmemdbg: 0x1000 is not a struct page address: the vmemmap is 0xfffff1d840000000-0xfffff2d840000000",
        "vmemdbg: 0x1000 is neither a direct-map address (page_offset_base 0xffff8ce100000000) nor a kernel-image "
        "address: virt_to_page does not apply"]
    assert "$vmemdbg_pfn_to_page takes one argument, got 2" in res.stderr


# -- the real -dbg vmlinux ---------------------------------------------------------------------------

def copy_dump(source: Path, dest: Path, *, full: Path | None = None, symbols: tuple[str, ...] = (),
              patch: dict[int, bytes] | None = None, vmcoreinfo: bytes | None = None) -> Path:
    """A kdump-style copy of a small dump (as extract writes it, so gdb reads it by virtual address).

    ``symbols``: also copy the pages of these kernel variables from the ``full`` dump of the same
    boot. ``patch``: overwrite bytes at physical addresses. ``vmcoreinfo``: replace the note.
    """
    small = ElfCoreSource(source)
    kernel = Kernel(small)
    pages = {page: bytearray(small.read_phys(page, 4096)) for start, end in small.ranges()
             for page in range(start, end, 4096)}
    if symbols:
        assert full is not None
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


REAL_VIEWS = ("summary", "sections", "vmemmap", "memblock", "e820")


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux")
@pytest.mark.parametrize("case", ["6g-2node-kaslr", "1000m"])
def test_debug_info_mode(case: str, tmp_path: Path) -> None:
    """``gdb vmlinux vmcore`` with the real vmlinux on a kdump-style copy of a real boot, KASLR
    applied from VMCOREINFO: the views equal the CLI's on the full dump; the VMCOREINFO composed from
    debug info (the live-kernel path, relocated too) equals the kernel's own note."""
    full = full_dump(case)
    if full is None:
        pytest.skip(f"needs the full dump of {case} (set VMEMDBG_FULL_DUMPS)")
    cli("extract", full, "-o", tmp_path / "small.elf")
    # composing VMCOREINFO also reads these variables
    dump = copy_dump(tmp_path / "small.elf", tmp_path / "vmcore.elf", full=full,
                     symbols=("phys_base", "mem_section", "__pgtable_l5_enabled", "sme_me_mask", "init_uts_ns"))
    src = ElfCoreSource(full)
    note = dict(ln.split("=", 1) for ln in (src.vmcoreinfo() or b"").decode().splitlines() if "=" in ln)
    src.close()
    cmds = {v: f"vmemdbg {v} --json" for v in REAL_VIEWS}
    cmds["info"] = ("python from vmemdbg.gdb.debuginfo import compose_vmcoreinfo as c; "
                    "from vmemdbg.gdb.target import current_kernel as k; print(c(k()._user_symbols), end='')")
    res = gdb(*marked(cmds), files=(str(VMLINUX), str(dump)))
    b = blocks(res.stdout)
    for view in REAL_VIEWS:
        assert facts(json.loads(b[view])) == facts(json.loads(cli(view, full, "--json"))), view
    offset = int(note["KERNELOFFSET"], 16)
    assert json.loads(b["summary"])["symbols"] == "gdb's symbols" + (f" + KERNELOFFSET relocation {offset:#x}"
                                                                      if offset else "")
    assert errors(res) == ([f"vmemdbg: {VMLINUX} relocated by {offset:#x} (KERNELOFFSET {offset:#x} of the vmcore) "
                            f"for vmemdbg; for gdb's own expressions: symbol-file -o {offset:#x} {VMLINUX}"]
                           if offset else [])
    composed = dict(line.split("=", 1) for line in b["info"].splitlines())
    assert len(composed) == 22
    assert composed == {k: note[k] for k in composed}


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux")
def test_full_qemu_dump_with_vmlinux() -> None:
    """The oracle's full QEMU dump of the KASLR boot (6 GiB, p_vaddr = p_paddr) with the real
    vmlinux, unrelocated: read by physical address, symbols moved by KERNELOFFSET."""
    full = full_dump("6g-2node-kaslr")
    if full is None:
        pytest.skip("needs the full dump of 6g-2node-kaslr (set VMEMDBG_FULL_DUMPS)")
    res = gdb(*marked({v: f"vmemdbg {v} --json" for v in ("summary", "sections", "vmemmap")}),
              files=(str(VMLINUX), str(full)))
    b = blocks(res.stdout)
    for view in ("summary", "sections", "vmemmap"):
        assert facts(json.loads(b[view])) == facts(json.loads(cli(view, full, "--json"))), view
    summary = decode(json.loads(b["summary"]))
    offset = summary["kernel"]["kaslr_offset"]
    assert offset and summary["symbols"] == f"gdb's symbols + KERNELOFFSET relocation {offset:#x}"
    assert len(errors(res)) == 1


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux")
def test_wrong_vmlinux_is_refused(sim_kaslr: tuple[Path, Path]) -> None:
    """The simulator's debug ELF with a real dump: its init_top_pgt does not land where VMCOREINFO says."""
    debug, _ = sim_kaslr
    dump = real_dump("1000m")
    res = gdb("vmemdbg summary", files=(str(debug), str(dump)))
    [line] = errors(res)
    assert re.fullmatch(rf"vmemdbg: {debug} is not this kernel's: its init_top_pgt 0x[0-9a-f]+ \+ relocation 0x0 "
                        r"\(KERNELOFFSET 0x0\) is not VMCOREINFO's 0x[0-9a-f]+", line), line


@pytest.mark.parametrize("with_vmlinux", [False, True])
def test_physical_core(tmp_path: Path, with_vmlinux: bool) -> None:
    """A QEMU dump-guest-memory ELF (p_vaddr = p_paddr) is read by physical address, with or
    without the vmlinux; the views are the CLI's."""
    if with_vmlinux and not VMLINUX.exists():
        pytest.skip("needs the -dbg vmlinux")
    src = ElfCoreSource(real_dump("1g-nokaslr"))
    dump = tmp_path / "qemu.elf"
    write_elf_core(dump, [(s, src.read_phys(s, e - s)) for s, e in src.ranges()], src.vmcoreinfo())
    res = gdb(*marked({"summary": "vmemdbg summary", "vmemmap": "vmemdbg vmemmap"}),
              files=(str(VMLINUX), str(dump)) if with_vmlinux else (), pre=() if with_vmlinux else (f"core-file {dump}",))
    b = blocks(res.stdout)
    assert b["summary"] == cli("summary", dump), res.stderr
    assert b["vmemmap"] == cli("vmemmap", dump)
    assert errors(res) == []


# -- errors --------------------------------------------------------------------------------------

def test_errors_are_one_line(tmp_path: Path) -> None:
    res = gdb("vmemdbg summary")
    assert errors(res) == ["vmemdbg: no target: open a vmcore (core-file VMCORE) or connect to a kernel's gdbstub "
                           "(target remote HOST:PORT)"]
    res = gdb("vmemdbg explain", "vmemdbg bogus", "vmemdbg summary 0x1000", "vmemdbg sections --nr 5-1",
              "vmemdbg explain pfn:zz", pre=(f"core-file {real_dump('1000m')}",))
    lines = errors(res)
    assert len(lines) == 5, res.stderr
    assert lines[0].startswith("vmemdbg: ") and "ADDR" in lines[0]
    assert lines[1] == ("vmemdbg: unknown view 'bogus' (choose from summary, sections, vmemmap, memblock, e820, "
                        "memory-blocks, audit, describe, check, explain, map)")
    assert lines[2].startswith("vmemdbg: ") and "0x1000" in lines[2]
    assert lines[3] == "vmemdbg: --nr '5-1': the range is empty"
    assert lines[4].startswith("vmemdbg: cannot parse address 'pfn:zz'")
    # a view needing a symbol that neither gdb nor the dump has: 5.10 has no kallsyms in VMCOREINFO
    res = gdb("vmemdbg memblock", pre=(f"core-file {real_dump('bullseye-5.10/1g-nokaslr')}",))
    assert errors(res) == ["vmemdbg: memblock needs the kernel symbol memblock: kernel 5.10.0-32-cloud-amd64 is older "
                           "than 6.0, whose VMCOREINFO exports no kallsyms tables (5fd8fea935a1); load the kernel's "
                           "vmlinux in gdb (file VMLINUX)"]
    # a core without VMCOREINFO and no vmlinux to compose one
    src = ElfCoreSource(real_dump("1000m"))
    k = Kernel(src)
    bare = tmp_path / "bare.elf"
    write_elf_core(bare, [(s, src.read_phys(s, e - s)) for s, e in src.ranges()], b"",
                   page_offset=k.page_offset_base, kernel_image=_kernel_image(k))
    res = gdb("vmemdbg summary", pre=(f"core-file {bare}",))
    assert errors(res) == [f"vmemdbg: {bare}: no VMCOREINFO note, and gdb has no kernel debug info to compose one: "
                           "file VMLINUX"]
    # memory gdb cannot read: the page holding the mem_section roots left out of the core
    roots = k.roots_addr - k.page_offset_base
    holed = rewrite_dump(real_dump("1000m"), tmp_path / "holed.elf", drop_pages=[roots])
    res = gdb("vmemdbg sections", pre=(f"core-file {holed}",))
    assert errors(res) == [f"vmemdbg: mem_section root array at {k.roots_addr:#x} is unreadable (cannot read 8 bytes at "
                           f"physical address {roots:#x}: gdb cannot read its alias {roots:#x} (Cannot access memory "
                           f"at address {roots:#x}))"]


def test_live_target_needs_the_vmlinux() -> None:
    """A gdbstub without a vmlinux: nothing to find VMCOREINFO or symbols with."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("needs qemu")
    with qemu_stub(qemu) as port:
        res = gdb("vmemdbg summary", pre=(f"target remote 127.0.0.1:{port}",), timeout=120)
    assert errors(res) == ["vmemdbg: a live kernel needs its vmlinux, for symbols and to compose VMCOREINFO: file "
                           "VMLINUX (a KASLR kernel: symbol-file -o KERNELOFFSET VMLINUX, or boot it with nokaslr)"]


def test_before_sparse_init(tmp_path: Path) -> None:
    """A kernel stopped before sparse_init: mem_section NULL, nothing mapped in vmemmap; views still print.

    Made from the 1 GiB 4-level fixture by zeroing SYMBOL(mem_section) and the init_top_pgt entry
    covering vmemmap (what memory_present() and vmemmap_populate() fill in).
    """
    src = ElfCoreSource(real_dump("1g-nokaslr"))
    kernel = Kernel(src)
    pgd_entry = kernel.kimg_to_phys(kernel.init_top_pgt) + 8 * (kernel.vmemmap_base >> 39 & 511)
    note = re.sub(rb"SYMBOL\(mem_section\)=[0-9a-f]+", b"SYMBOL(mem_section)=0", src.vmcoreinfo() or b"")
    src.close()
    dump = copy_dump(real_dump("1g-nokaslr"), tmp_path / "early.elf", patch={pgd_entry: bytes(8)}, vmcoreinfo=note)
    res = gdb(*marked({"summary": "vmemdbg summary -v", "sections": "vmemdbg sections --json",
                       "vmemmap": "vmemdbg vmemmap", "section": "output $vmemdbg_pfn_to_section(0)"}),
              pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    assert "sections          present 0  valid 0  online 0  early 0  highest -1" in b["summary"], res.stderr
    assert "memmap            0 B backing (0 PMD + 0 PTE leaves), vmemmap page tables 0 B" in b["summary"]
    assert "note: mem_section not allocated yet" in b["summary"]
    assert json.loads(b["sections"])["sections"] == []
    assert b["vmemmap"].startswith("START  END  LEVEL  PROT  PHYS  NID  PFNS  SIZE  PROVENANCE\n\naudit: 0 anomalies, 0 notes\n")
    assert errors(res) == ["vmemdbg: mem_section is not allocated yet"]


def test_gdb_gathers_pages_and_reports_progress() -> None:
    """The gdb source's page-run gathers return what the ELF reader returns for the same words
    (readable or not), and with the progress delay at zero a command prints progress on stderr."""
    import numpy as np

    dump = real_dump("6g-2node-kaslr")
    src = ElfCoreSource(dump)
    k = Kernel(src)
    usage = [int(u) for u in present_sections(k).usage[:40].tolist() if u]
    addrs = sorted({u - k.page_offset_base + d for u in usage for d in (0, 8, 16, 4092)} | {0x7ff8, 0x3ffff000})
    vals, ok = src.gather_u64(np.array(addrs, dtype="uint64"))
    want = [(int(v) if o else None) for v, o in zip(vals.tolist(), ok.tolist())]
    assert any(w is None for w in want) and any(w for w in want)
    res = gdb(*marked({"g": KERNEL + "import numpy as np; v, o = k().source.gather_u64(np.array("
                            f"{addrs}, dtype=np.uint64)); print([int(a) if b else None for a, b in zip(v, o)])",
                       "p": "python from vmemdbg.gdb.memory import PROGRESS; PROGRESS.after = 0.0",
                       "s": "vmemdbg summary"}),
              pre=(f"core-file {dump}",))
    b = blocks(res.stdout)
    assert b["g"].strip() == str(want)
    assert re.search(r"^vmemdbg: \d+ s, \d+ reads, [\d.]+ MiB read so far$", res.stderr, re.M), res.stderr


# -- help and completion --------------------------------------------------------------------------

def test_help_lists_every_view_with_its_arguments() -> None:
    views = DEBUGGER_COMMANDS.values()
    res = gdb(*marked({"all": "help vmemdbg", "bare": "vmemdbg", "sections": "help vmemdbg sections", "explain": "help vmemdbg explain",
                       "function": "help function vmemdbg_pfn_to_page"}))
    b = blocks(res.stdout)
    listed = re.findall(r"^vmemdbg ([\w-]+) -- (.*)$", b["all"], re.M)
    assert listed == sorted((c.name, c.help) for c in views)
    assert b["bare"] == b["all"]
    sections = b["sections"]
    assert sections.startswith(COMMANDS["sections"].help + "\n\nusage: vmemdbg sections ")
    assert COMMANDS["sections"].description.split()[0] in sections
    for a in COMMANDS["sections"].arguments:
        assert a.flags[-1] in sections and a.help.split()[0] in sections
    assert re.search(r"^\s+--nr A\[-B\]\s+\S", sections, re.M)
    assert "ADDR" in b["explain"]
    assert b["function"].startswith("$vmemdbg_pfn_to_page(PFN): the struct page of PFN")


def test_completion(tmp_path: Path) -> None:
    (tmp_path / "check.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    res = gdb(*marked({"view": "complete vmemdbg mem", "opt": "complete vmemdbg sections --n",
                       "opts": "complete vmemdbg summary ", "addr": "complete vmemdbg explain pfn:0x1 p",
                       "addr2": "complete vmemdbg explain ", "file": f"complete vmemdbg map -o {tmp_path}/",
                       "check": f"complete vmemdbg map -o x.svg --check {tmp_path}/ch"}))
    b = blocks(res.stdout)
    assert b["view"] == "vmemdbg memblock\nvmemdbg memory-blocks\n"
    assert b["opt"] == "vmemdbg sections --nr\n"
    assert b["opts"] == "vmemdbg summary --json\nvmemdbg summary --verbose\nvmemdbg summary -v\n"
    assert b["addr"] == "vmemdbg explain pfn:0x1 page:\nvmemdbg explain pfn:0x1 pfn:\nvmemdbg explain pfn:0x1 phys:\n"
    assert b["addr2"] == "".join(f"vmemdbg explain {f}\n" for f in sorted(PREFIXES))
    assert sorted(PREFIXES) == ["direct:", "page:", "pfn:", "phys:", "virt:"]
    assert b["file"] == f"vmemdbg map -o {tmp_path}/check.json\nvmemdbg map -o {tmp_path}/sub/\n"
    assert b["check"] == f"vmemdbg map -o x.svg --check {tmp_path}/check.json\n"


# -- installation ---------------------------------------------------------------------------------

def test_installed_package_loads_in_stock_gdb(tmp_path: Path) -> None:
    """``pip install .`` (not editable) into a fresh venv; the line ``python -m vmemdbg.gdb`` prints
    loads the commands in gdb, run from elsewhere, and ``vmemdbg summary`` prints the CLI's text."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "vmemdbg", src / "vmemdbg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(src)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    line = load_line(python)
    assert line == f"source {Path(site).resolve()}/vmemdbg/gdb/load.py"
    dump = real_dump("1000m")
    res = gdb("vmemdbg summary", pre=(f"core-file {dump}",), load=line)
    want = subprocess.run([str(venv / "bin" / "vmemdbg"), "summary", str(dump)], capture_output=True, text=True,
                          check=True).stdout
    assert res.stdout.endswith(want), res.stdout + res.stderr
    assert "kernel            6.1.0-56-cloud-amd64" in res.stdout


def _fake_site(tmp_path: Path, version: str | None) -> Path:
    """A site-packages holding only vmemdbg (a link to this tree), for Python ``version`` (None: a plain directory)."""
    site = tmp_path / "lib" / f"python{version}" / "site-packages" if version else tmp_path / "site"
    site.mkdir(parents=True)
    (site / "vmemdbg").symlink_to(ROOT / "vmemdbg")
    return site


def test_venv_of_another_python_is_refused_in_one_line(tmp_path: Path) -> None:
    mine = subprocess.run([GDB, "-batch", "-nx", "-ex", "python import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    site = _fake_site(tmp_path, "3.99")
    res = gdb("vmemdbg summary", load=f"source {site}/vmemdbg/gdb/load.py")
    why = (f"vmemdbg: gdb's Python is {mine} but this venv is 3.99 ({site}): create the venv with python{mine} "
           "(the Python gdb links) and pip install vmemdbg into it")
    assert errors(res) == [why, why]  # when loading, and again instead of running
    assert "Traceback" not in res.stderr


def test_numpy_built_for_another_python_is_refused_in_one_line(tmp_path: Path) -> None:
    """A site-packages whose path names no version, holding a numpy compiled for another CPython."""
    site = _fake_site(tmp_path, None)
    core = site / "numpy" / "_core"
    core.mkdir(parents=True)
    (site / "numpy" / "__init__.py").write_text("raise ImportError('IMPORTANT: PLEASE READ THIS FOR ADVICE')\n")
    (core / "_multiarray_umath.cpython-399-x86_64-linux-gnu.so").write_bytes(b"")
    res = gdb(load=f"source {site}/vmemdbg/gdb/load.py")
    [line] = errors(res)
    assert re.fullmatch(rf"vmemdbg: numpy in {site} is built for cpython-399-x86_64-linux-gnu, gdb's Python is 3\.\d+: create the venv "
                        r"with python3\.\d+ \(the Python gdb links\) and pip install vmemdbg into it", line), line


def test_site_without_numpy_is_refused_in_one_line(tmp_path: Path) -> None:
    res = subprocess.run([GDB, "-batch", "-nx", "-ex", "python import importlib.util as u; "
                          "print([m for m in ('numpy', 'elftools') if u.find_spec(m) is None])"],
                         capture_output=True, text=True, check=True)
    missing = eval(res.stdout)
    if not missing:
        pytest.skip("gdb's own Python has numpy and pyelftools")
    site = _fake_site(tmp_path, None)
    res = gdb(load=f"source {site}/vmemdbg/gdb/load.py")
    [line] = errors(res)
    assert re.fullmatch(rf"vmemdbg: gdb's Python 3\.\d+ cannot import {missing[0]} \(No module named '{missing[0]}'\) "
                        rf"from {site}: pip install vmemdbg into a venv made with python3\.\d+ and source that "
                        "venv's load.py", line), line


# -- live targets ---------------------------------------------------------------------------------

QEMU = shutil.which("qemu-system-x86_64")
VMLINUZ = Path("/boot/vmlinuz-6.1.0-56-cloud-amd64")


class qemu_stub:
    """A QEMU halted at the reset vector (``-S``) with a gdbstub on a free port; no kernel code runs."""

    def __init__(self, qemu: str, kernel: Path | None = None):
        self.argv = [qemu, "-S", "-display", "none", "-m", "256", "-serial", "none", "-monitor", "none"]
        if kernel is not None:
            self.argv += ["-kernel", str(kernel)]

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([*self.argv, "-gdb", f"tcp:127.0.0.1:{port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return port

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.skipif(QEMU is None or not VMLINUX.exists() or not VMLINUZ.exists(), reason="needs qemu and the 6.1 kernel")
def test_live_target_before_the_kernel_runs() -> None:
    """qemu -S: gdb connects while the CPU sits at the reset vector, before any kernel code ran."""
    assert QEMU is not None
    with qemu_stub(QEMU, VMLINUZ) as port:
        res = gdb("vmemdbg summary", "output $vmemdbg_pfn_to_page(1)", files=(str(VMLINUX),),
                  pre=(f"target remote 127.0.0.1:{port}",), timeout=120)
    lines = errors(res)
    assert len(lines) == 2 and lines[0] == lines[1], res.stdout + res.stderr
    assert re.fullmatch(r"vmemdbg: the kernel is not running yet: the CPU is at 0xfff0, outside the kernel image, "
                        r"and gdb cannot read the kernel's memory \(Cannot access memory at address 0xffffffff[0-9a-f]+\); "
                        r"continue until the kernel runs on its own page tables \(e\.g\. break start_kernel\)", lines[0])


def test_load_line_command_refuses_arguments() -> None:
    """``python -m vmemdbg.gdb`` takes no arguments: one line saying so and a non-zero exit."""
    res = subprocess.run([sys.executable, "-m", "vmemdbg.gdb", "--bogus"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "python -m vmemdbg.gdb takes no arguments (got --bogus): it prints the gdb line that loads vmemdbg"]
