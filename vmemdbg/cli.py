"""The ``vmemdbg`` command line, generated from vmemdbg/commands.py: open a source, run, print.

Errors are one line on stderr and exit status 2 (set VMEMDBG_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

# numpy's OpenBLAS starts a thread per core at import; the engine does no linear algebra, so those
# threads only cost start-up time and memory (set before numpy is first imported)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import __version__
from .commands import COMMANDS, Command, add_arguments, source_options
from .errors import VmemdbgError


def _add_source_args(p: argparse.ArgumentParser) -> None:
    """The CLI's source: the dump and what overrides its VMCOREINFO and symbols."""
    p.add_argument("dump", metavar="DUMP", help="ELF vmcore, kdump-compressed vmcore, or /proc/kcore")
    p.add_argument("--vmcoreinfo", metavar="FILE", help="VMCOREINFO text to use instead of the dump's")
    p.add_argument("--symbols", metavar="FILE", help="vmlinux or System.map overriding the dump's kallsyms")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per entry of :data:`vmemdbg.commands.COMMANDS`."""
    p = argparse.ArgumentParser(prog="vmemdbg", description="Explain the x86-64 Linux sparse memory model of a vmcore.")
    p.add_argument("--version", action="version", version=f"vmemdbg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        sp = sub.add_parser(command.name, help=command.help, description=command.description)
        if command.reads != "nothing":
            _add_source_args(sp)
        add_arguments(sp, command)
    return p


def _print(command: Command, doc: object, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        from .jsonout import stream

        stream(doc, sys.stdout)
    else:
        print(command.render(doc, args))


def run(args: argparse.Namespace) -> int:
    """Execute parsed arguments; returns the exit status."""
    command = COMMANDS[args.command]
    if command.reads != "kernel":
        doc = command.run(None, args)  # type: ignore[arg-type]  # it opens what args name
    else:
        from .dump import open_dump
        from .kernel import Kernel

        kw = source_options(args)
        src = open_dump(args.dump)
        try:
            doc = command.run(Kernel(src, **kw), args)
        finally:
            src.close()
    _print(command, doc, args)
    return command.status(doc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vmemdbg`` command."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
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
