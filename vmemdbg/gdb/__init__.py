"""gdb front end: the ``vmemdbg`` commands and ``$vmemdbg_*`` functions inside gdb.

Load it in gdb with the line ``python -m vmemdbg.gdb`` prints (run by the Python vmemdbg is
installed in)::

    (gdb) source /path/to/venv/lib/python3.11/site-packages/vmemdbg/gdb/load.py

One module per job:

* ``load.py``: the file gdb sources. It puts the site-packages holding this package on gdb's
  ``sys.path``, checks that gdb's Python can use it (one line says why not), and registers the
  commands and functions.
* ``memory.py``: :class:`~vmemdbg.gdb.memory.GdbSource`, physical memory read through gdb.
* ``debuginfo.py``: what gdb's kernel debug info gives: symbol addresses relocated by the
  KASLR offset of VMCOREINFO, type sizes, and the VMCOREINFO a live kernel has not written yet.
* ``target.py``: what gdb is attached to (a vmcore, a live gdbstub, nothing) as an engine
  :class:`~vmemdbg.kernel.Kernel`, cached until the target changes; one-line errors for each
  known situation.
* ``commands.py``: the ``vmemdbg`` prefix command, one subcommand per debugger command of
  :data:`vmemdbg.commands.COMMANDS`, with help and completion.
* ``functions.py``: convenience functions for expressions (``$vmemdbg_pfn_to_page(pfn)``...).

Only ``__main__.py`` runs outside gdb; this file imports nothing so that it can.
"""
