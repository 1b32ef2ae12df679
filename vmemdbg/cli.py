"""The ``vmemdbg`` command line. Thin: open a source, call an engine view, print it.

Errors are one line on stderr and exit status 2 (set VMEMDBG_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from . import __version__, render, views
from .dump import open_dump
from .errors import VmemdbgError
from .frontend import VIEWS, command_doc
from .kernel import Kernel
from .symbols import load_symbol_file

def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dump", metavar="DUMP", help="ELF vmcore, kdump-compressed vmcore, or /proc/kcore")
    p.add_argument("--vmcoreinfo", metavar="FILE", help="VMCOREINFO text to use instead of the dump's")
    p.add_argument("--symbols", metavar="FILE", help="vmlinux or System.map overriding the dump's kallsyms")
    p.add_argument("--json", action="store_true", help="print JSON (schema vmemdbg/1, docs/json.md)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="more detail (layout reasons; sections: per-pageblock migratetypes)")


def build_parser(with_simulator: bool = True) -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands). The simulator (a sizeable import)
    is registered only when ``with_simulator``: for help and for ``simulate`` itself."""
    p = argparse.ArgumentParser(prog="vmemdbg", description="Explain the x86-64 Linux sparse memory model of a vmcore.")
    p.add_argument("--version", action="version", version=f"vmemdbg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, help_) in VIEWS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        _add_source_args(sp)
        if name == "sections":
            sp.add_argument("--nr", metavar="A[-B]", help="only section numbers A to B (e.g. 32-47)")
        if name == "describe":
            sp.add_argument("-o", "--output", metavar="MACHINE.toml", help="write the machine file here")
    e = sub.add_parser("explain", help="section, pageblock, struct page and page-table path of addresses",
                       description="ADDR is pfn:N, a physical address, a direct-map address or a struct page address")
    _add_source_args(e)
    e.add_argument("addrs", nargs="+", metavar="ADDR")
    m = sub.add_parser("map", help="draw physical memory and the vmemmap into an HTML or SVG file",
                       description="write an interactive .html (self-contained) or a static .svg map (docs/map.md)")
    _add_source_args(m)
    m.add_argument("-o", "--output", required=True, metavar="FILE", help="map.html or map.svg")
    m.add_argument("--check", metavar="FILE", help="JSON of `vmemdbg check --json` whose differences to highlight")
    x = sub.add_parser("extract", help="write a minimal vmcore holding only what the views read")
    _add_source_args(x)
    x.add_argument("-o", "--output", required=True, metavar="SMALL", help="output ELF vmcore")
    x.add_argument("--keep", action="append", default=[], metavar="ADDR", help="also keep what `explain ADDR` reads")
    if not with_simulator:
        return p
    try:
        from .sim import add_simulate_parser
    except ImportError:
        pass
    else:
        add_simulate_parser(sub)
    return p


def _kernel_args(args: argparse.Namespace) -> dict:
    kw: dict = {}
    if getattr(args, "vmcoreinfo", None):
        try:
            with open(args.vmcoreinfo, "rb") as f:
                kw["vmcoreinfo"] = f.read()
        except OSError as e:
            raise VmemdbgError(f"{args.vmcoreinfo}: cannot read: {e.strerror}") from None
    if getattr(args, "symbols", None):
        kw["symbols"] = load_symbol_file(args.symbols)
    return kw


def _emit(doc: dict, args: argparse.Namespace, text: Callable[[dict, bool], str]) -> None:
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(text(doc, args.verbose))


def run(args: argparse.Namespace) -> int:
    """Execute parsed arguments; returns the exit status."""
    if args.command == "simulate":
        return args.func(args)
    kw = _kernel_args(args)
    if args.command == "extract":
        from .extract import extract

        st = extract(args.dump, args.output, explain_addrs=args.keep, **kw)
        doc = views._doc("extract", output=args.output, **st)
        _emit(doc, args, lambda d, v: f"wrote {d['output']}: {d['pages']} pages, {render.human(d['bytes'])}")
        return 0
    src = open_dump(args.dump)
    try:
        kernel = Kernel(src, **kw)
        if args.command == "check":  # exit status 1 when unexplained differences exist
            doc = views.check(kernel)
            _emit(doc, args, render.render_check)
            return 0 if doc["consistent"] else 1
        if args.command == "describe" and args.output:
            doc = views.describe(kernel)
            try:
                with open(args.output, "w") as f:
                    f.write(doc["toml"])
            except OSError as e:
                raise VmemdbgError(f"{args.output}: cannot write: {e.strerror}") from None
            _emit(doc, args, lambda d, v: f"wrote {args.output}: {len(d['derived'])} fields derived, "
                  f"{len(d['assumed'])} assumed:\n" + "\n".join(f"  {a['field']}: {a['assumption']}" for a in d["assumed"]))
            return 0
        ns = argparse.Namespace(view=args.command, addrs=getattr(args, "addrs", []), verbose=args.verbose,
                                json=args.json, nr=getattr(args, "nr", None),
                                output=getattr(args, "output", None), check=getattr(args, "check", None))
        doc, text = command_doc(kernel, ns)
        if ns.json:  # streamed in batches: the audit of 500k sections never exists as one string
            batch: list[str] = []
            for chunk in json.JSONEncoder(indent=1).iterencode(doc):  # = json.dumps(doc, indent=1)
                batch.append(chunk)
                if len(batch) >= 1 << 16:
                    sys.stdout.write("".join(batch))
                    batch.clear()
            sys.stdout.write("".join(batch) + "\n")
        else:
            print(text(doc, ns.verbose))
    finally:
        src.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vmemdbg`` command."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(with_simulator=command in (None, "simulate")).parse_args(argv)
    try:
        return run(args)
    except VmemdbgError as e:
        print(f"vmemdbg: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line, never a traceback, unless asked for
        if os.environ.get("VMEMDBG_DEBUG"):
            raise
        print(f"vmemdbg: internal error: {type(e).__name__}: {e} (set VMEMDBG_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
