"""``python -m vmemdbg.gdb``: print the gdb line that loads vmemdbg's gdb commands.

Run it with the Python vmemdbg is installed in; then ``gdb -ex "$(python -m vmemdbg.gdb)" ...``
or append its output to ``~/.gdbinit``. For an installed package the line is
``source <site-packages>/vmemdbg/gdb/load.py``. For an editable install (the package is a source
tree, its dependencies in this interpreter's site-packages) the line first puts that
site-packages on gdb's ``sys.path``, then sources the same file.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path


def source_line() -> str:
    """The one gdb command that loads the commands from this installation."""
    load = Path(__file__).resolve().with_name("load.py")
    home = load.parents[2]  # the directory holding the vmemdbg package
    sites = list(dict.fromkeys(str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("purelib", "platlib")))
    if str(home) in sites:
        return f"source {load}"
    return f"python import sys; sys.path[:0] = {sites!r}; gdb.execute({f'source {load}'!r})"


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit(f"python -m vmemdbg.gdb takes no arguments (got {' '.join(sys.argv[1:])}): "
                 "it prints the gdb line that loads vmemdbg")
    print(source_line())
