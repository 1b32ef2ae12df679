"""One declaration per command (interim version over frontend.py, replaced by the i13-commands one).

Shape agreed between the front ends: :class:`Command` declares a command's name, help,
description and arguments; :func:`parser` builds its argument parser; :func:`output` prints it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .frontend import VIEWS, build_parser, command_doc, command_output
from .frontend import _Parser

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(frozen=True)
class Argument:
    """One ``add_argument`` call."""

    flags: tuple[str, ...]
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    complete: str | None = None


@dataclass(frozen=True)
class Command:
    """A command of the CLI and the debuggers."""

    name: str
    help: str
    description: str
    arguments: tuple[Argument, ...]
    run: Callable[["Kernel", argparse.Namespace], Any]
    render: Callable[[Any, argparse.Namespace], str]
    debugger: bool = True


_COMMON = (Argument(("-v", "--verbose"), "more detail (layout reasons, migratetypes, notes)", {"action": "store_true"}),
           Argument(("--json",), "print JSON (docs/json.md)", {"action": "store_true"}))


def _args(ns: argparse.Namespace, name: str) -> argparse.Namespace:
    full = build_parser().parse_args([name])
    full.addrs = []
    for k, v in vars(ns).items():
        setattr(full, k, v)
    return full


def _command(name: str, help_: str, description: str, extra: tuple[Argument, ...] = ()) -> Command:
    return Command(name, help_, description, _COMMON + extra,
                   run=lambda k, ns: command_doc(k, _args(ns, name))[0],
                   render=lambda doc, ns: command_doc.__name__)


COMMANDS: dict[str, Command] = {
    name: _command(name, help_, help_ + ".",
                   (Argument(("--nr",), "only section numbers A to B", {"metavar": "A[-B]", "default": None}),)
                   if name == "sections" else ())
    for name, (_, _, help_) in VIEWS.items()
}
COMMANDS["explain"] = _command("explain", "section, pageblock, struct page and page-table path of addresses",
                               "ADDR is pfn:N, phys:A, direct:VA, page:VA or a bare address.",
                               (Argument(("addrs",), "address", {"nargs": "+", "metavar": "ADDR"}, "address"),))
COMMANDS["map"] = _command("map", "draw physical memory and the vmemmap into an HTML or SVG file",
                           "Write an interactive .html or a static .svg map.",
                           (Argument(("-o", "--output"), "map.html or map.svg", {"required": True, "metavar": "FILE"},
                                     "file"),
                            Argument(("--check",), "JSON of vmemdbg check --json", {"metavar": "FILE"}, "file")))


def parser(command: Command, prog: str) -> argparse.ArgumentParser:
    """The command's parser; errors raise VmemdbgError."""
    p = _Parser(prog=prog, description=command.description, add_help=False)
    for a in command.arguments:
        p.add_argument(*a.flags, help=a.help, **a.kwargs)
    return p


def output(kernel: "Kernel", command: Command, args: argparse.Namespace) -> str:
    """Text or JSON, as the CLI prints it."""
    return command_output(kernel, _args(args, command.name))
