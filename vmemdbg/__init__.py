"""vmemdbg: explain the x86-64 Linux sparse memory model of a vmcore or live kernel.

The engine is a set of small modules named after kernel concepts:

* :mod:`vmemdbg.memory`, :mod:`vmemdbg.elfcore`, :mod:`vmemdbg.drgnsource`: memory sources.
* :mod:`vmemdbg.vmcoreinfo`, :mod:`vmemdbg.kallsyms`, :mod:`vmemdbg.symbols`: symbols.
* :mod:`vmemdbg.kernel`: one analysed target (bases, constants, address translation).
* :mod:`vmemdbg.pagetable`: the x86-64 page-table walker.
* :mod:`vmemdbg.mmzone`: ``mem_section`` and ``mem_section_usage``.
* :mod:`vmemdbg.vmemmap`, :mod:`vmemdbg.census`: the vmemmap leaves; runs with provenance, audit, overhead.
* :mod:`vmemdbg.ram`, :mod:`vmemdbg.hvo`, :mod:`vmemdbg.memory_block`, :mod:`vmemdbg.vmstat`: after boot --
  the kernel's account of RAM, HugeTLB vmemmap optimisation per folio, memory blocks, memmap counters.
* :mod:`vmemdbg.explain`: pfn / phys / virt / struct page explanation.
* :mod:`vmemdbg.versions`: every kernel-version quirk, in one place.
"""

__version__ = "0.1.0"
