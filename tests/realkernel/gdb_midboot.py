#!/usr/bin/env python3
"""vmemdbg's gdb front end on a real kernel stopped in the middle of sparse_init.

Boots Debian's 6.1.0-56-cloud-amd64 under QEMU TCG (the 6g-2node machine of boot.py, with
``nokaslr`` so the -dbg vmlinux's addresses are the runtime ones, and ``-S`` + a gdbstub), attaches
gdb with the vmlinux, loads the package (the line ``python -m vmemdbg.gdb`` prints), then runs the
vmemdbg commands:

1. at the first ``vmemmap_populate`` (node 0, section 0, nothing populated yet: VMCOREINFO does
   not exist at this point of boot, the gdb adapter composes it from debug info);
2. after that call returns (``finish``): exactly one 2 MiB PMD leaf, at the start of node 0's
   sparse buffer;
3. at node 1's first ``vmemmap_populate``: all of node 0's memmap mapped, node 1's sections
   present but not yet valid.

gdb then detaches, the kernel goes on printing its (memblock=debug) log, and the numbers are
checked against it: the sparse buffer and usage-array addresses that memblock reserved, and the
vmemmap page-table pages it handed out. Prints the gdb transcript and the checks; exits 1 on any
failed check.

    python3 tests/realkernel/gdb_midboot.py [-o tests/realkernel/gdb_midboot.transcript.txt]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boot

from vmemdbg.jsonout import decode

ROOT = Path(__file__).resolve().parents[2]
VMLINUX = Path(f"/usr/lib/debug/boot/vmlinux-{boot.RELEASE}")
KERNEL = Path(f"/boot/vmlinuz-{boot.RELEASE}")
CASE = boot.CASES["6g-2node-kaslr"]
STRUCT_PAGE = 64
SECTION_MEMMAP = (1 << 27) // 4096 * STRUCT_PAGE  # one section's memmap: 2 MiB
#: SECTION_NID_SHIFT of 6.1 with CONFIG_ZONE_DEVICE (include/linux/mmzone.h): where memory_present()
#: stores the early nid in section_mem_map until sparse_init_one_section() replaces it.
NID_SHIFT = 5

#: The gdb session. ``@@`` lines delimit JSON documents for the checks.
GDB_SCRIPT = """\
set pagination off
set confirm off
target remote 127.0.0.1:{port}
{load}
hbreak vmemmap_populate
continue
echo \\n### stop 1: first vmemmap_populate (node 0, section 0), nothing populated yet\\n
bt 5
printf "vmemmap_populate(start=%#lx, end=%#lx, node=%d)\\n", $rdi, $rsi, $edx
vmemdbg summary -v
vmemdbg vmemmap
echo @@stop1-args\\n
printf "[%lu, %lu, %d]\\n", $rdi, $rsi, $edx
echo @@stop1-sections\\n
vmemdbg sections --json
echo @@stop1-vmemmap\\n
vmemdbg vmemmap --json
echo @@end\\n
finish
echo \\n### stop 2: the first vmemmap_populate returned (section 0's memmap mapped)\\n
vmemdbg vmemmap
vmemdbg explain pfn:0x1000
echo @@stop2-summary\\n
vmemdbg summary --json
echo @@stop2-vmemmap\\n
vmemdbg vmemmap --json
echo @@end\\n
delete
hbreak vmemmap_populate if $edx == 1
continue
echo \\n### stop 3: node 1's first vmemmap_populate\\n
bt 5
printf "vmemmap_populate(start=%#lx, end=%#lx, node=%d)\\n", $rdi, $rsi, $edx
vmemdbg summary
vmemdbg sections
vmemdbg vmemmap
echo @@stop3-args\\n
printf "[%lu, %lu, %d]\\n", $rdi, $rsi, $edx
echo @@stop3-summary\\n
vmemdbg summary --json
echo @@stop3-sections\\n
vmemdbg sections --json
echo @@stop3-vmemmap\\n
vmemdbg vmemmap --json
echo @@end\\n
delete
detach
"""


def free_port() -> int:
    """A TCP port nobody listens on (for QEMU's gdbstub)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_argv(port: int, serial: Path) -> list[str]:
    """The 6g two-node machine, nokaslr, halted at reset with a gdbstub on ``port``."""
    cmdline = f"{boot.COMMON_CMDLINE} nokaslr"
    return ["qemu-system-x86_64", "-accel", "tcg", *CASE.qemu_args, "-kernel", str(KERNEL), "-append", cmdline,
            "-display", "none", "-nic", "none", "-serial", f"file:{serial}", "-monitor", "none",
            "-gdb", f"tcp:127.0.0.1:{port}", "-S", "-no-reboot"]


def json_blocks(out: str) -> dict[str, object]:
    """The ``@@name`` ... JSON documents of the gdb output."""
    blocks: dict[str, object] = {}
    for m in re.finditer(r"^@@([\w-]+)\n(.*?)(?=^@@)", out, re.S | re.M):
        if m.group(1) != "end":
            blocks[m.group(1)] = decode(json.loads(m.group(2)))  # addresses as integers
    return blocks


def transcript_text(out: str) -> str:
    """The gdb output without the JSON documents (kept only for the checks)."""
    return re.sub(r"^@@(?!end)[\w-]+\n.*?^@@end\n", "", out, flags=re.S | re.M)


def memblock_allocs(serial: str, caller: str) -> list[tuple[int, int, int]]:
    """``(nid, size, reserved base)`` of every memblock allocation by ``caller`` (memblock=debug).

    Each ``memblock_alloc*: SIZE bytes ... nid=N ... caller+off`` line is followed by the
    ``memblock_reserve: [BASE-END]`` of the range it got.
    """
    lines = serial.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.search(r"memblock_alloc\w*: (\d+) bytes align=\w+ nid=(-?\d+) .* " + re.escape(caller) + r"\+", line)
        if m:
            r = re.search(r"memblock_reserve: \[0x([0-9a-f]+)-", lines[i + 1])
            if r is None:
                raise SystemExit(f"no memblock_reserve line after {line!r}")
            out.append((int(m.group(2)), int(m.group(1)), int(r.group(1), 16)))
    return out


def run(timeout: float) -> tuple[str, dict[str, object], str]:
    """Boot, run the gdb session, let the kernel log its memblock calls; returns (gdb output, JSON, serial)."""
    with tempfile.TemporaryDirectory(prefix="vmemdbg-midboot-") as tmp:
        serial = Path(tmp) / "serial.log"
        port = free_port()
        script = Path(tmp) / "session.gdb"
        load = subprocess.run([sys.executable, "-m", "vmemdbg.gdb"], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout
        script.write_text(GDB_SCRIPT.format(port=port, load=load.strip()))
        qemu = subprocess.Popen(qemu_argv(port, serial), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            res = subprocess.run(["gdb", "-batch", "-nx", "-x", str(script), str(VMLINUX)],
                                 capture_output=True, text=True, timeout=timeout)
            out = res.stdout
            if res.returncode != 0 or "@@stop3-vmemmap" not in out:
                raise SystemExit(f"gdb session failed (exit {res.returncode}):\n{out}\n{res.stderr}")
            deadline = time.monotonic() + timeout
            while "sparse_init_nid" not in (text := serial.read_text(errors="replace")) or \
                    "Memory:" not in text:  # the log is flushed once the console registers
                if time.monotonic() > deadline or qemu.poll() is not None:
                    raise SystemExit("the kernel did not print its sparse_init memblock log")
                time.sleep(0.5)
        finally:
            qemu.kill()
            qemu.wait()
    return out, json_blocks(out), text


def check(blocks: dict, serial: str) -> list[tuple[bool, str]]:
    """First-principles and serial-log checks of what the gdb commands printed mid-boot."""
    buffers = {nid: base for nid, size, base in memblock_allocs(serial, "sparse_init_nid") if size > 1 << 20}
    usages = {nid: base for nid, size, base in memblock_allocs(serial, "sparse_init_nid") if size <= 1 << 20}
    tables = [base for nid, _, base in memblock_allocs(serial, "vmemmap_alloc_block_zero.constprop.0")]
    s1, v1 = blocks["stop1-sections"], blocks["stop1-vmemmap"]
    sum2, v2 = blocks["stop2-summary"], blocks["stop2-vmemmap"]
    sum3, s3, v3 = blocks["stop3-summary"], blocks["stop3-sections"], blocks["stop3-vmemmap"]
    base = v1["vmemmap_base"]
    page_offset = sum3["kernel"]["page_offset_base"]
    node0 = [s for s in s3["sections"] if s["start_pfn"] < 0x140000]
    node1 = [s for s in s3["sections"] if s["start_pfn"] >= 0x140000]
    pmds3 = [r for r in v3["runs"] if r["level"] == "pmd"]
    out = [
        (blocks["stop1-args"] == [base, base + SECTION_MEMMAP, 0],
         f"stop 1: vmemmap_populate(vmemmap_base, +2 MiB, node 0) = {blocks['stop1-args']}"),
        (len(s1["sections"]) == 48 and not any("HAS_MEM_MAP" in s["flags"] for s in s1["sections"]),
         f"stop 1: {len(s1['sections'])} sections present (48 x 128 MiB = 6 GiB), none valid yet"),
        (v1["runs"] == [], f"stop 1: no vmemmap leaf yet ({len(v1['runs'])} runs)"),
        ([(r["start"], r["end"], r["level"], r["phys"]) for r in v2["runs"]]
         == [(base, base + SECTION_MEMMAP, "pmd", buffers[0])],
         f"stop 2: exactly one PMD leaf {base:#x}+2MiB -> node 0 sparse buffer {buffers[0]:#x} (serial log)"),
        (sum2["memmap"]["pagetable_bytes"] == 4096 * len(tables),
         f"stop 2: vmemmap page tables {sum2['memmap']['pagetable_bytes']} B = {len(tables)} vmemmap_alloc_block_zero "
         f"pages in the serial log"),
        (blocks["stop3-args"] == [base + 40 * SECTION_MEMMAP, base + 41 * SECTION_MEMMAP, 1],
         f"stop 3: vmemmap_populate(section 40's memmap, node 1) = {blocks['stop3-args']}"),
        (all("HAS_MEM_MAP" in s["flags"] and "IS_EARLY" in s["flags"] for s in node0) and len(node0) == 24,
         f"stop 3: node 0's {len(node0)} sections valid and early"),
        (len(node1) == 24 and all(s["flags"] == ["MARKED_PRESENT", "IS_ONLINE"] and s["usage"] == 0
                                  and s["coded_mem_map"] >> NID_SHIFT == 1 for s in node1),
         f"stop 3: node 1's {len(node1)} sections present+online, no memmap, no usage, word = "
         f"sparse_encode_early_nid(1) | flags = {node1[0]['coded_mem_map']:#x}"),
        ([s["usage"] - page_offset for s in node0] == [usages[0] + 56 * i for i in range(24)],
         f"stop 3: node 0 usage pointers = usage array {usages[0]:#x} (serial log) + 56 * i"),
        (sum(r["end"] - r["start"] for r in pmds3) == 24 * SECTION_MEMMAP
         and pmds3[0]["phys"] == buffers[0] and all(r["nid"] == 0 for r in pmds3),
         f"stop 3: node 0's 24 memmaps = {sum(r['leaves'] for r in pmds3)} PMD leaves from {buffers[0]:#x}, on node 0"),
        (1 not in {r["nid"] for r in v3["runs"]} and 1 in buffers,
         f"stop 3: nothing mapped from node 1's buffer {buffers.get(1, 0):#x} yet"),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the session, print (and optionally save) the transcript and the checks."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, help="also write the transcript here")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for gdb and for the kernel log")
    args = ap.parse_args(argv)
    for need in (VMLINUX, KERNEL):
        if not need.exists():
            print(f"gdb_midboot: error: {need} is missing (sh tests/realkernel/setup.sh)", file=sys.stderr)
            return 2
    out, blocks, serial = run(args.timeout)
    results = check(blocks, serial)
    lines = [f"$ {' '.join(qemu_argv(1234, Path('serial.log')))}   # port picked at run time",
             f"$ gdb -batch -nx -x session.gdb {VMLINUX}   # session.gdb: GDB_SCRIPT in gdb_midboot.py",
             transcript_text(out).rstrip(), "", "### checks against first principles and the serial log (memblock=debug)"]
    lines += [f"{'ok  ' if ok else 'FAIL'} {what}" for ok, what in results]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.output:
        args.output.write_text(text)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
