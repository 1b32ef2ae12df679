#!/usr/bin/env python3
"""Check vmemdbg against drgn on the full real-kernel dumps, then extract the committed fixtures.

For each case directory made by boot.py + drgn_truth.py (``DUMPS/<case>/vmcore.elf`` and
``truth.json``):

1. run every vmemdbg view on the full ELF dump and compare it field by field with drgn's truth;
2. ``vmemdbg extract`` a minimal dump (keeping what ``explain`` needs for the truth's addresses);
3. run the views on the minimal dump and compare again;
4. copy the minimal dump, truth.json and the boot's serial log to ``fixtures/real/<case>/``;
5. run crash's ``kmem -n`` on the full dump (second oracle, crash_truth.py) into the same place.

If a case also has ``vmcore.kdump`` (QEMU kdump-zlib, read through drgn's libkdumpfile) it is
compared with ``truth-kdump.json`` too. Exit status 1 on any difference.

Kernels of other suites (setup.sh's PRIVATE_KERNELS) go to their own fixture directory, e.g.
``--fixtures fixtures/real/sid-7.2 --vmlinux KROOT/RELEASE/usr/lib/debug/boot/vmlinux-RELEASE``.
``--symbols FILE`` is what vmemdbg is given (before 6.0 the dump has no kallsyms for it: pass the
committed System.map subset); ``--no-crash`` skips crash, which cannot read 7.x kernels.
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from crash_truth import kmem_n_table
from truthcmp import compare, engine_views

from vmemdbg.dump import open_dump
from vmemdbg.extract import extract
from vmemdbg.kernel import Kernel
from vmemdbg.symbols import SymbolFile, load_symbol_file

CASES = ("1g-nokaslr", "6g-2node-kaslr", "1000m")
MAX_FIXTURE = 5 << 20


def check(dump: Path, truth: dict, symbols: SymbolFile | None = None) -> list[str]:
    """Differences between vmemdbg on ``dump`` and ``truth``."""
    src = open_dump(dump)
    try:
        return compare(engine_views(Kernel(src, symbols=symbols), truth), truth)
    finally:
        src.close()


def main(argv: list[str] | None = None) -> int:
    """Run the checks and write fixtures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dumps", default="/work/dumps", type=Path, help="directory with one subdirectory per case")
    ap.add_argument("--fixtures", default=Path(__file__).resolve().parents[2] / "fixtures" / "real", type=Path)
    ap.add_argument("--case", action="append", help=f"only these cases (default: {', '.join(CASES)})")
    ap.add_argument("--prefix", default="", help="fixture directory name prefix (e.g. 6.12- for fixtures/real/6.12-hvo)")
    ap.add_argument("--vmlinux", type=Path, default=Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64"),
                    help="the -dbg vmlinux, for crash")
    ap.add_argument("--symbols", type=Path, help="symbol file vmemdbg is given (vmlinux or System.map)")
    ap.add_argument("--no-crash", action="store_true", help="skip crash's kmem -n (crash 8.0 cannot read 7.x)")
    ap.add_argument("--xz", action="store_true",
                    help="commit the fixture as vmcore.elf.xz (6.12, 7.x: over 3 MiB, mostly kallsyms)")
    args = ap.parse_args(argv)
    symbols = load_symbol_file(args.symbols) if args.symbols else None
    failed = False
    for case in args.case or CASES:
        d = args.dumps / case
        truth = json.loads((d / "truth.json").read_text())
        diffs = check(d / "vmcore.elf", truth, symbols)
        print(f"{case}: full ELF dump vs drgn: {len(diffs)} differences")
        if (d / "vmcore.kdump").exists() and (d / "truth-kdump.json").exists():
            kd = check(d / "vmcore.kdump", json.loads((d / "truth-kdump.json").read_text()), symbols)
            print(f"{case}: full kdump-compressed dump vs drgn: {len(kd)} differences")
            diffs += kd
        out = args.fixtures / f"{args.prefix}{case}"
        out.mkdir(parents=True, exist_ok=True)
        small = out / "vmcore.elf"
        st = extract(d / "vmcore.elf", small, symbols=symbols,
                     explain_addrs=[e["input"] for e in truth.get("explain", [])])
        sd = check(small, truth, symbols)
        print(f"{case}: extracted {st['pages']} pages ({st['bytes']} bytes); fixture vs drgn: {len(sd)} differences")
        diffs += sd
        if st["bytes"] > MAX_FIXTURE:
            diffs.append(f"fixture is {st['bytes']} bytes, over the {MAX_FIXTURE} limit")
        if args.xz:
            (out / "vmcore.elf.xz").write_bytes(lzma.compress(small.read_bytes(), preset=9))
            small.unlink()
        shutil.copy(d / "truth.json", out / "truth.json")
        shutil.copy(d / "serial.log", out / "serial.log")
        if not args.no_crash:
            try:
                (out / "crash-kmem-n.txt").write_text(kmem_n_table(d / "vmcore.elf", args.vmlinux))
            except StopIteration:  # crash 8.0.2 (bookworm) prints no kmem -n table for 6.12 dumps
                print(f"{case}: crash printed no kmem -n table for this kernel; crash-kmem-n.txt not written")
        for line in diffs[:40]:
            print("   ", line)
        failed |= bool(diffs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
