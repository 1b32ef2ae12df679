"""vmemdbg: explain the x86-64 Linux sparse memory model of a vmcore or live kernel.

Module map (``tests/test_docs.py`` checks that it names exactly the modules of the package; the
design facts the modules rely on are in ``docs/``, see CONTRIBUTING.md):

Memory sources and symbols

* :mod:`vmemdbg.memory`: the ``MemorySource`` interface every reader implements.
* :mod:`vmemdbg.dump`: open a dump or live source by sniffing its format.
* :mod:`vmemdbg.elfcore`: reading ELF vmcores (kdump and QEMU ``dump-guest-memory``).
* :mod:`vmemdbg.elfwrite`: writing ELF vmcores (``extract`` and the simulator's fixtures).
* :mod:`vmemdbg.drgnsource`: sources opened through drgn (kdump-compressed dumps, ``/proc/kcore``).
* :mod:`vmemdbg.vmcoreinfo`: VMCOREINFO parsing.
* :mod:`vmemdbg.kallsyms`: the kernel's own kallsyms tables decoded out of the dump.
* :mod:`vmemdbg.symbols`: user symbol files (``System.map``, vmlinux).

The kernel's layout

* :mod:`vmemdbg.kernel`: one analysed target: constants, bases, symbols, address translation.
* :mod:`vmemdbg.versions`: every kernel-version quirk, in one place, with its commit.
* :mod:`vmemdbg.pagetable`: the x86-64 page-table walker.
* :mod:`vmemdbg.abi`: x86-64 ABI constants shared by engine, simulator and gdb front end.
* :mod:`vmemdbg.intervals`: interval lookup, run splitting and range merging over sorted arrays.
* :mod:`vmemdbg.errors`: the exceptions (one-line messages).

Kernel concepts

* :mod:`vmemdbg.mmzone`: ``mem_section`` and ``mem_section_usage``.
* :mod:`vmemdbg.vmemmap`: the vmemmap page-table leaves and ``struct page`` translation.
* :mod:`vmemdbg.census`: vmemmap runs with provenance, the audit, overhead per node.
* :mod:`vmemdbg.hvo`: HugeTLB Vmemmap Optimization per hugetlb folio.
* :mod:`vmemdbg.ram`: what RAM is, by the kernel's own account after boot.
* :mod:`vmemdbg.memory_block`: memory blocks as ``/sys/devices/system/memory`` shows them.
* :mod:`vmemdbg.memblock`: memblock regions and whether they can still be trusted.
* :mod:`vmemdbg.e820`: the kernel's e820 tables.
* :mod:`vmemdbg.vmstat`: the kernel's memmap counters.

Views and front ends

* :mod:`vmemdbg.commands`: every command declared once; the CLI, drgn and gdb commands are generated from it.
* :mod:`vmemdbg.views`: engine views, plain data for every front end.
* :mod:`vmemdbg.addresses`: the address forms ``explain`` accepts and their classification.
* :mod:`vmemdbg.render`: text rendering of the views.
* :mod:`vmemdbg.jsonout`: the JSON text of the views.
* :mod:`vmemdbg.cli`, :mod:`vmemdbg.__main__`: the ``vmemdbg`` command line.
* :mod:`vmemdbg.drgn_plugin`: the drgn API and command.
* :mod:`vmemdbg.gdb`: the gdb front end, loaded by one line (docs/frontends.md):
  :mod:`vmemdbg.gdb.load` (the file gdb sources), :mod:`vmemdbg.gdb.__main__` (prints that line),
  :mod:`vmemdbg.gdb.commands` (the ``vmemdbg`` prefix command), :mod:`vmemdbg.gdb.functions`
  (``$vmemdbg_*`` convenience functions), :mod:`vmemdbg.gdb.target` (what gdb is attached to, as a
  Kernel), :mod:`vmemdbg.gdb.memory` (physical reads through gdb), :mod:`vmemdbg.gdb.debuginfo`
  (symbols, type sizes and VMCOREINFO from gdb's debug info).
* :mod:`vmemdbg.extract`: a minimal vmcore holding only the pages the views read.
* :mod:`vmemdbg.map`, :mod:`vmemdbg.map.model`, :mod:`vmemdbg.map.draw`: the ``map`` picture.

The simulator (``vmemdbg simulate``, ``describe``, ``check``)

* :mod:`vmemdbg.sim`: entry point: simulate a machine, write the fixture.
* :mod:`vmemdbg.sim.machine`: the machine model.
* :mod:`vmemdbg.sim.machine_format`: reading and validating machine descriptions (docs/machine-format.md).
* :mod:`vmemdbg.sim.boot`: the parts of setup_arch that move sparse_init's placements.
* :mod:`vmemdbg.sim.memblock`: replay of the memblock allocator.
* :mod:`vmemdbg.sim.directmap`: replay of init_mem_mapping.
* :mod:`vmemdbg.sim.sparse`: replay of sparse_init.
* :mod:`vmemdbg.sim.vmemmap`: replay of vmemmap population.
* :mod:`vmemdbg.sim.pagetable_build`: the page tables the replay builds.
* :mod:`vmemdbg.sim.events`: hot-add, onlining, HVO after boot.
* :mod:`vmemdbg.sim.image`: the physical-memory image of the simulated kernel.
* :mod:`vmemdbg.sim.kallsyms_image`: the kallsyms tables encoder.
* :mod:`vmemdbg.sim.debuginfo`: the DWARF debug ELF for drgn and gdb.
* :mod:`vmemdbg.sim.writer`: VMCOREINFO and the fixture vmcore.
* :mod:`vmemdbg.sim.kdump`: the kdump-compressed variant.
* :mod:`vmemdbg.sim.describe`: the machine description a dump implies.
* :mod:`vmemdbg.sim.check`: a dump against its replayed boot.
"""

__version__ = "0.1.0"
