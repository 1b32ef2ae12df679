"""Simulator of the Linux 6.1 and 6.12 x86-64 early boot memory layout: memblock, sparse_init, vmemmap.

``simulate(machine, out)`` replays setup_arch up to sparse_init for a machine description
(docs/machine-format.md), writes a fixture ELF vmcore holding exactly the memory a real kernel
would have for the sparse model (plus a matching debug-info ELF), and returns a :class:`SimResult`
with the replay record. The ``vmemdbg simulate`` command is declared in vmemdbg/commands.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from ..abi import SECTION_HAS_MEM_MAP, SECTION_MARKED_PRESENT
from .boot import BootState, boot
from .debuginfo import DebugInfo, build
from .events import apply_events
from .image import Image, build_image
from .machine import Machine, MachineError
from .machine_format import load_machine
from .memblock import Allocation, MemblockPanic
from .writer import vmcoreinfo_text, write_fixture

__all__ = ["simulate", "SimResult", "Machine", "MachineError", "load_machine"]


@dataclass
class SimResult:
    """The replay record of one simulated boot and where its fixture was written."""

    machine: Machine
    state: BootState
    debuginfo: DebugInfo
    image: Image
    vmcoreinfo: str
    fixture: Path | None
    debuginfo_path: Path

    # -- bases -------------------------------------------------------------------------------------
    @property
    def bases(self) -> dict[str, int]:
        """page_offset_base, vmalloc_base, vmemmap_base, kernel_offset, phys_base."""
        lay = self.machine.layout
        return {"page_offset_base": lay.page_offset_base, "vmalloc_base": lay.vmalloc_base,
                "vmemmap_base": lay.vmemmap_base, "kernel_offset": lay.kernel_offset,
                "phys_base": lay.phys_base}

    @property
    def allocations(self) -> list[Allocation]:
        """Every memblock allocation call, in boot order."""
        return self.state.memblock.allocations

    @property
    def trace(self) -> list[str]:
        """memblock=debug style log lines."""
        return self.state.memblock.lines

    @property
    def roots_phys(self) -> int:
        """Physical address of the mem_section roots array."""
        return self.state.sparse.roots_phys

    @property
    def roots_addr(self) -> int:
        """SYMBOL(mem_section): direct-map VA of the roots array."""
        return self.machine.layout.page_offset_base + self.roots_phys

    @property
    def node_data(self) -> dict[int, int]:
        """nid → physical address of NODE_DATA(nid)."""
        return dict(self.state.node_data)

    def memblock_regions(self, kind: str) -> list[tuple[int, int, int, int]]:
        """Final (after sparse_init) memblock.memory or .reserved: [(base, size, flags, nid)]."""
        t = self.state.memblock.memory if kind == "memory" else self.state.memblock.reserved
        return [(r.base, r.size, r.flags, r.nid) for r in t.regions]

    # -- sections ----------------------------------------------------------------------------------
    @property
    def present_sections(self) -> np.ndarray:
        """Section numbers with SECTION_MARKED_PRESENT."""
        return np.flatnonzero(self.state.sparse.words & np.uint64(SECTION_MARKED_PRESENT))

    def section(self, nr: int) -> dict:
        """{nr, nid, word, usage (VA or 0), memmap: [(vmemmap VA, phys, level)]} of one section."""
        sp, p = self.state.sparse, self.machine.profile
        po, vbase = self.machine.layout.page_offset_base, self.machine.layout.vmemmap_base
        word = int(sp.words[nr])
        usage = int(sp.usage[nr])
        memmap = []
        if word & SECTION_HAS_MEM_MAP:
            vm = self.state.vmemmap.state
            start = vbase + (nr << p.nr_section_bits) * p.struct_page_size
            end = start + p.pages_per_section * p.struct_page_size
            va = start & ~((1 << 21) - 1)
            while va < end:
                leaf = vm.pmd_at(va)
                if leaf is not None:
                    memmap.append((va, leaf, "pmd"))
                    va += 1 << 21
                    continue
                for a in range(max(va, start & ~0xFFF), min(va + (1 << 21), end), 4096):
                    if a in vm.pte:
                        memmap.append((a, vm.pte[a], "pte"))
                va += 1 << 21
        return {"nr": nr, "nid": int(sp.early_nid[nr]), "word": word,
                "usage": usage + po if usage else 0, "memmap": memmap}

    def sections(self) -> Iterator[dict]:
        """section() of every present section, ascending."""
        for nr in self.present_sections.tolist():
            yield self.section(nr)

    # -- vmemmap -------------------------------------------------------------------------------------
    @property
    def vmemmap_pmd_leaves(self) -> dict[int, int]:
        """vmemmap VA → backing phys of every PMD leaf (a new dict, built on each access)."""
        return self.state.vmemmap.state.pmd_leaves()

    @property
    def nr_vmemmap_pmd_leaves(self) -> int:
        """Number of PMD leaves, without building the dict."""
        return len(self.state.vmemmap.state.pmd_va)

    @property
    def vmemmap_pte_leaves(self) -> dict[int, int]:
        """vmemmap VA → backing phys of every PTE leaf."""
        return self.state.vmemmap.state.pte

    @property
    def vmemmap_not_from_buffer(self) -> dict[int, tuple[int, str]]:
        """Leaves whose block came from memblock rather than the sparse buffer: VA → (node, source)."""
        return self.state.vmemmap.state.not_from_buffer

    @property
    def vmemmap_tables(self) -> list[tuple[int, str, int]]:
        """vmemmap page-table pages: (phys, level, requested node), allocation order."""
        return self.state.vmemmap.state.tables

    @property
    def messages(self) -> list[str]:
        """Kernel messages of note (failures, off-node warnings)."""
        return self.state.messages


def simulate(machine: Machine | str | os.PathLike[str], out: str | os.PathLike[str] | None,
             trace: str | os.PathLike[str] | None = None,
             debuginfo: str | os.PathLike[str] | None = None, layout: str = "pages") -> SimResult:
    """Replay the boot of ``machine`` and write the fixture vmcore to ``out`` (None: no file).

    ``trace`` receives the memblock=debug style log; ``debuginfo`` a copy of the debug ELF
    (otherwise it stays in the cache, see :func:`vmemdbg.sim.debuginfo.cache_dir`); ``layout``
    is one of :data:`vmemdbg.sim.writer.LAYOUTS`.
    """
    m = machine if isinstance(machine, Machine) else load_machine(machine)
    try:
        st = boot(m)
    except MemblockPanic as e:
        raise MachineError(f"boot: the kernel would panic: {e}") from None
    st.messages.extend(apply_events(st))
    dbg = build(m.profile)
    img = build_image(st, dbg)
    text = write_fixture(out, st, dbg, img, layout) if out is not None else vmcoreinfo_text(st, dbg, img)
    dpath = dbg.path
    if debuginfo is not None:
        shutil.copyfile(dbg.path, debuginfo)
        dpath = Path(debuginfo)
    if trace is not None:
        Path(trace).write_text("\n".join(st.memblock.lines + st.messages) + "\n")
    return SimResult(m, st, dbg, img, text, Path(out) if out is not None else None, dpath)
