"""Load vmemdbg into gdb: ``source <site-packages>/vmemdbg/gdb/load.py`` (``python -m vmemdbg.gdb`` prints it).

gdb runs its own Python (Debian 12's gdb 13: the system Python 3.11), not the interpreter vmemdbg
was installed with. This file puts the directory holding the ``vmemdbg`` package, found from its
own path, at the front of gdb's ``sys.path``, so the package's dependencies installed next to it
(numpy, pyelftools) import too. They do only if the venv was made with the same Python minor
version as gdb's (numpy's compiled modules are built per version); otherwise one line says why
and what to do, and ``vmemdbg`` repeats it instead of running.

Only the standard library and gdb are imported before that check.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import re
import sys

import gdb

#: ``.../lib/python3.11/site-packages``: the Python version a venv's site-packages belongs to.
_SITE_VERSION = re.compile(r"/lib/python(\d+\.\d+)/(?:site|dist)-packages/?$")


def _venv_version(path: str) -> str | None:
    """The ``X.Y`` of a ``lib/pythonX.Y/site-packages`` directory, None for other directories."""
    m = _SITE_VERSION.search(path)
    return m.group(1) if m else None


def _numpy_built_for(site: str) -> str | None:
    """The other Python numpy's compiled core in ``site`` is built for (``cpython-313``), None if it suits gdb's."""
    mine = importlib.machinery.EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so"
    tags = {os.path.basename(c).split(".")[1] for c in glob.glob(os.path.join(site, "numpy", "*core", "_multiarray_umath.cpython-*"))}
    if not tags or mine.split(".")[1] in tags:
        return None
    return min(tags)


def problem(home: str) -> str | None:
    """Why gdb's Python cannot run vmemdbg from ``home`` (on ``sys.path``), in one line, or None."""
    mine = "{}.{}".format(*sys.version_info[:2])
    spec = importlib.util.find_spec("numpy")
    numpy_dir = os.path.dirname(os.path.dirname(spec.origin)) if spec is not None and spec.origin else ""
    for where in (home, numpy_dir):
        theirs = _venv_version(where)
        if theirs is not None and theirs != mine:
            return (f"vmemdbg: gdb's Python is {mine} but this venv is {theirs} ({where}): "
                    f"create the venv with python{mine} (the Python gdb links) and pip install vmemdbg into it")
    built = _numpy_built_for(numpy_dir)
    if built is not None:
        return (f"vmemdbg: numpy in {numpy_dir} is built for {built}, gdb's Python is {mine}: "
                f"create the venv with python{mine} (the Python gdb links) and pip install vmemdbg into it")
    for module in ("numpy", "elftools"):
        try:
            importlib.import_module(module)
        except ImportError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return (f"vmemdbg: gdb's Python {mine} cannot import {module} ({first}) from {home}: "
                    f"pip install vmemdbg into a venv made with python{mine} and source that venv's load.py")
    return None


class _Unusable(gdb.Command):
    """vmemdbg cannot run in this gdb: the line printed when it was loaded says why."""

    def __init__(self, why: str):
        super().__init__("vmemdbg", gdb.COMMAND_DATA)
        self.why = why

    def invoke(self, argument: str, from_tty: bool) -> None:
        """Repeat why vmemdbg did not load."""
        raise gdb.GdbError(self.why)


def load(here: str) -> None:
    """Put the package's site-packages on ``sys.path`` and register the commands, or say why not."""
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(here))))
    if home not in sys.path:
        sys.path.insert(0, home)
    why = problem(home)
    if why is not None:
        gdb.write(why + "\n", gdb.STDERR)
        _Unusable(why)
        return
    from vmemdbg.gdb import commands, functions

    commands.register()
    functions.register()


load(__file__)
