#!/usr/bin/env python3
"""Compare two drgn_truth.py outputs (e.g. from the ELF and the kdump dump of one boot).

Prints EQUAL/DIFF per top-level key (``source`` and ``timing`` are ignored) and,
for a differing key, the first differing path.  Exit status 1 if anything differs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

IGNORED = {"source", "timing"}


def first_diff(a: Any, b: Any, path: str = "") -> str | None:
    """JSON path of the first difference between ``a`` and ``b`` (None if equal)."""
    if type(a) is not type(b):
        return f"{path}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: missing on one side"
            d = first_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    try:
        a, b = (json.loads(p.read_text()) for p in (args.a, args.b))
    except (OSError, ValueError) as e:
        print(f"compare_truth.py: error: {e}", file=sys.stderr)
        return 1
    bad = False
    for key in sorted((set(a) | set(b)) - IGNORED):
        d = first_diff(a.get(key), b.get(key), key)
        print(f"{key}: {'EQUAL' if d is None else 'DIFF ' + d}")
        bad |= d is not None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
