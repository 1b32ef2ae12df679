"""The ``vmemdbg`` prefix command: one gdb subcommand per debugger command of vmemdbg.commands.

``vmemdbg VIEW [ARGS]`` prints what ``vmemdbg VIEW DUMP [ARGS]`` prints. Each subcommand is
generated from its :class:`~vmemdbg.commands.Command` declaration: its gdb help is the declared
one-line help (listed by ``help vmemdbg``) followed by the argument parser's usage, description
and arguments (``help vmemdbg VIEW``); completion offers the command's options, the address forms
for address arguments and file names after options that take a file.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TypeVar

import gdb

from .. import commands
from ..addresses import PREFIXES
from ..errors import VmemdbgError
from .memory import PROGRESS
from .target import current_kernel

#: the engine's advice for a missing symbol, which in gdb means loading the vmlinux.
_CLI_SYMBOLS_HINT = "pass --symbols VMLINUX|System.map"
_GDB_SYMBOLS_HINT = "load the kernel's vmlinux in gdb (file VMLINUX)"


T = TypeVar("T")


def one_line(action: Callable[[], T]) -> T:
    """Run ``action``; any error becomes one ``gdb.GdbError`` line ``vmemdbg: ...`` (gdb prints no traceback)."""
    try:
        return action()
    except VmemdbgError as e:
        raise gdb.GdbError(f"vmemdbg: {str(e).replace(_CLI_SYMBOLS_HINT, _GDB_SYMBOLS_HINT)}") from None
    except gdb.MemoryError as e:  # a read outside the engine's sources, e.g. by gdb's own evaluation
        raise gdb.GdbError(f"vmemdbg: the target refused a read: {e}") from None
    except (gdb.GdbError, KeyboardInterrupt):
        raise
    except Exception as e:  # never a traceback, unless asked for
        if os.environ.get("VMEMDBG_DEBUG"):
            raise
        raise gdb.GdbError(f"vmemdbg: internal error: {type(e).__name__}: {e} "
                           "(set VMEMDBG_DEBUG=1 for a traceback)") from None


class VmemdbgPrefix(gdb.Command):
    """Explain the x86-64 sparse memory model (mem_section, vmemmap page tables) of the debugged kernel.

Each subcommand prints what the vmemdbg CLI command of that name prints for a vmcore, here for
the kernel gdb debugs: a vmcore (core-file, with or without its vmlinux) or a live kernel
(target remote, with its vmlinux), even mid-boot. Results are recomputed after the target runs.
Convenience functions: $vmemdbg_pfn_to_page, $vmemdbg_page_to_pfn, $vmemdbg_virt_to_page,
$vmemdbg_pfn_to_section, $vmemdbg_readable (help function vmemdbg_pfn_to_page)."""

    def __init__(self) -> None:
        super().__init__("vmemdbg", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        """``vmemdbg`` alone lists the views; gdb passes here only words that are no subcommand."""
        words = gdb.string_to_argv(argument)
        if not words:
            gdb.execute("help vmemdbg")
            return
        one_line(lambda: commands.debugger_command(words[0]))  # refuses, naming the views


#: argparse actions whose option is followed by a value (completion completes that value).
_TAKES_VALUE = ("store", "append")


class ViewCommand(gdb.Command):
    """One debugger command of vmemdbg.commands as ``vmemdbg NAME`` (its help is set per instance)."""

    def __init__(self, command: commands.Command):
        self.command = command
        self.parser = commands.parser(command, f"vmemdbg {command.name}")
        self.__doc__ = f"{command.help}\n\n{commands.help_text(command, f'vmemdbg {command.name}')}"
        super().__init__(f"vmemdbg {command.name}", gdb.COMMAND_DATA)
        #: option string -> its Argument declaration (for completion).
        self.options = {flag: a for a in command.arguments for flag in a.flags if flag.startswith("-")}
        self.takes_value = {flag for flag, a in self.options.items() if a.kwargs.get("action", "store") in _TAKES_VALUE}
        self.positional = next((a for a in command.arguments if not a.flags[0].startswith("-")), None)

    def invoke(self, argument: str, from_tty: bool) -> None:
        """Parse, analyse, print; every error is one line."""
        args = one_line(lambda: self.parser.parse_args(gdb.string_to_argv(argument)))
        PROGRESS.start()
        try:
            text = one_line(lambda: commands.output(current_kernel(), self.command, args))
        finally:
            PROGRESS.stop()
        gdb.write(text + "\n")

    def complete(self, text: str, word: str | None) -> list[str]:
        """Options, address forms for address arguments, file names after options that take a file."""
        if word is None:  # gdb's first pass, asking for word-break characters: keep its defaults
            return []
        try:
            words = shlex.split(text)
        except ValueError:  # an open quote
            return []
        current = "" if not words or text[-1:].isspace() else words.pop()
        previous = words[-1] if words else ""
        if previous in self.takes_value:
            candidates = _files(current) if self.options[previous].complete == "file" else []
        elif current.startswith("-") or self.positional is None:
            candidates = [f for f in self.options if f.startswith(current)]
        elif self.positional.complete == "address":
            candidates = [f for f in PREFIXES if f.startswith(current)]
        else:
            candidates = []
        # gdb replaces only ``word``, the part after its last word-break character ("-", ":", "/"...)
        cut = max(0, len(current) - len(word))
        return sorted(c[cut:] for c in candidates)


def _files(prefix: str) -> list[str]:
    """File names starting with ``prefix``, directories with a trailing ``/`` (gdb 13's own file
    completer, returned as gdb.COMPLETE_FILENAME, completes the whole argument string instead)."""
    head, tail = os.path.split(prefix)
    try:
        names = os.listdir(os.path.expanduser(head) or ".")
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(tail) and (tail.startswith(".") or not name.startswith(".")):
            path = os.path.join(head, name)
            out.append(path + "/" if os.path.isdir(os.path.expanduser(path)) else path)
    return out


def register() -> None:
    """Define (or redefine) ``vmemdbg`` and one subcommand per debugger command."""
    VmemdbgPrefix()
    for command in commands.DEBUGGER_COMMANDS.values():
        ViewCommand(command)
