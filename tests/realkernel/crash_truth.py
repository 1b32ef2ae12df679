#!/usr/bin/env python3
"""Second oracle: crash's own ``kmem -n`` on the full real dump (Debian's crash package).

Writes crash's memory-section table (``NR SECTION CODED_MEM_MAP MEM_MAP STATE PFN``) verbatim to
a text file; tests/test_realkernel_fixtures.py parses it and compares every row with vmemdbg's
``sections`` view of the committed minimal fixture.

    python3 tests/realkernel/crash_truth.py DUMP VMLINUX -o crash-kmem-n.txt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def kmem_n_table(dump: Path, vmlinux: Path) -> str:
    """The section table printed by ``crash -s vmlinux dump`` for ``kmem -n``."""
    with tempfile.NamedTemporaryFile("w", suffix=".crash") as cmd:
        cmd.write("kmem -n\nquit\n")
        cmd.flush()
        out = subprocess.run(["crash", "-s", "-i", cmd.name, str(vmlinux), str(dump)], capture_output=True,
                             text=True, timeout=600).stdout
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NR ") and "CODED_MEM_MAP" in line)
    table = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        table.append(line.rstrip())
    return "\n".join(table) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write crash's kmem -n table for one dump."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("vmlinux", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        table = kmem_n_table(args.dump, args.vmlinux)
    except (OSError, StopIteration, subprocess.SubprocessError) as e:
        print(f"crash_truth: crash did not print a kmem -n table for {args.dump}: {e!r}", file=sys.stderr)
        return 1
    args.output.write_text(table)
    print(f"{args.output}: {len(table.splitlines()) - 1} sections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
