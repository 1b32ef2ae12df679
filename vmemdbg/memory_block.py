"""Memory blocks: what ``/sys/devices/system/memory`` shows, read from the dump.

drivers/base/memory.c keeps one ``struct memory_block`` per block in the ``memory_blocks`` xarray;
its fields need DWARF, so this view derives the same facts from what the dump gives without it:

* block size: ``memory_block_size_probed`` (arch/x86/mm/init_64.c probe_memory_block_size,
  found through kallsyms), else one section (the x86 minimum, MIN_MEMORY_BLOCK_SIZE = 128 MiB);
* ``phys_index`` = first section number / sections per block (memory_block_id);
* ``state``: online when every present section of the block is SECTION_IS_ONLINE, offline when
  none is (online_mem_sections / offline_mem_sections, mm/page_alloc.c), else ``mixed``;
* ``nid``: page_to_nid of the block's first present pfn (the sections' nid);
* zone: page_zonenum of the block's first and last RAM pfns (RAM by the kernel's account,
  :mod:`vmemdbg.ram`; struct pages of holes past a zone's end carry no meaningful zone), from the
  ZONES field of page->flags just below the node field (include/linux/page-flags-layout.h:
  SECTIONS_WIDTH is 0 with SPARSEMEM_VMEMMAP), named after :data:`vmemdbg.versions.ZONE_NAMES`.
  sysfs ``valid_zones`` of an online block prints its zone when the whole block is in one zone
  and ``none`` when it spans zones (drivers/base/memory.c valid_zones_show, 6.1+), and so does
  this view;
* ``early``: all sections SECTION_IS_EARLY (boot memory); otherwise the block was hot-added.

ZONE_DEVICE sections (SECTION_TAINT_ZONE_DEVICE, memremap_pages) get no memory block; they are
listed apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .abi import SECTION_HAS_MEM_MAP, SECTION_IS_EARLY, SECTION_IS_ONLINE
from .errors import MemoryFault
from .intervals import containing, split_runs
from .mmzone import present_sections
from .ram import ram_account
from .versions import ZONE_NAMES, zones_shift
from .vmemmap import vmemmap_mapping

if TYPE_CHECKING:
    from .kernel import Kernel

SECTION_TAINT_ZONE_DEVICE = 0x10


def block_pages(kernel: "Kernel") -> tuple[int, str]:
    """Pages per memory block and where that came from."""
    addr = kernel.symbol("memory_block_size_probed")
    why = "no symbol memory_block_size_probed"
    if addr is not None:
        try:
            v = kernel.read_u64(addr)
        except MemoryFault:
            why = "memory_block_size_probed is not in the dump"
        else:
            section = kernel.pages_per_section << 12
            if v and v % section == 0 and v & (v - 1) == 0:
                return v >> 12, "memory_block_size_probed"
            why = f"memory_block_size_probed = {v:#x} is not a power-of-two number of sections"
    return kernel.pages_per_section, f"assumed one section, the x86 minimum ({why})"


def zone_of_flags(kernel: "Kernel", flags: np.ndarray) -> np.ndarray:
    """``page_zonenum``: the ZONES_WIDTH bits just below the node bits of page->flags."""
    zshift = zones_shift(len(ZONE_NAMES))
    pg = 64 - kernel.nodes_shift - zshift
    return ((np.asarray(flags, np.uint64) >> np.uint64(pg)) & np.uint64((1 << zshift) - 1)).astype(np.int64)


def _ram_clip(ram_ranges: list[tuple[int, int]], lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last RAM pfn inside each ``[lo, hi]`` (unchanged where the block holds no RAM)."""
    if not ram_ranges:
        return lo, hi
    rs = np.array([r[0] for r in ram_ranges], np.int64)
    re_ = np.array([r[1] for r in ram_ranges], np.int64)
    i = np.searchsorted(re_, lo, side="right")  # first range ending after lo
    ic = np.minimum(i, len(rs) - 1)
    first = np.where((i < len(rs)) & (rs[ic] <= hi), np.maximum(lo, rs[ic]), lo)
    jc, _ = containing(rs, re_, hi)  # last range starting at or before hi
    last = np.where((rs[jc] <= hi) & (re_[jc] > lo), np.minimum(hi, re_[jc] - 1), hi)
    return first, last


def memory_blocks(kernel: "Kernel") -> dict:
    """Every memory block with at least one present section, plus ZONE_DEVICE sections (column-wise)."""
    secs = present_sections(kernel)
    ppb, size_src = block_pages(kernel)
    spb = max(1, ppb // kernel.pages_per_section)
    device = secs.has(SECTION_TAINT_ZONE_DEVICE) if secs.flag_layout.decode(SECTION_TAINT_ZONE_DEVICE) else \
        np.zeros(len(secs), bool)
    sel = np.nonzero(secs.has(SECTION_HAS_MEM_MAP) & ~device)[0]
    blocks: list[dict] = []
    ram = ram_account(kernel)
    # without an account of RAM the edge pfns may be holes, whose struct pages carry no meaningful zone
    zone_source = (f"page->flags of each block's first and last RAM pfn (RAM: {'; '.join(ram.sources)})"
                   if ram.ranges else f"unknown: no account of RAM ({'; '.join(ram.sources)})")
    if sel.size:
        shift = kernel.pfn_section_shift
        bid = secs.nr[sel] // spb
        starts, ends = split_runs(bid[1:] != bid[:-1])
        lo = secs.nr[sel[starts]] << shift
        hi = ((secs.nr[sel[ends - 1]] + 1) << shift) - 1
        pfn0, pfn1 = _ram_clip(ram.ranges, lo, hi)
        f0, ok0 = vmemmap_mapping(kernel).page_flags(pfn0.astype(np.uint64))
        f1, ok1 = vmemmap_mapping(kernel).page_flags(pfn1.astype(np.uint64))
        z0, z1 = zone_of_flags(kernel, f0), zone_of_flags(kernel, f1)
        n_on = np.add.reduceat(secs.has(SECTION_IS_ONLINE)[sel].astype(np.int64), starts)
        n_early = np.add.reduceat(secs.has(SECTION_IS_EARLY)[sel].astype(np.int64), starts)
        count = ends - starts
        names = {z: (ZONE_NAMES[z] if z < len(ZONE_NAMES) else f"?{z}") for z in np.unique(z0).tolist()}
        online = n_on == count
        # unknown (None) if either struct page is not in the dump, or RAM is unknown
        zone_ok = (online & ok0 & ok1 & bool(ram.ranges)).tolist()
        same = (z0 == z1).tolist()
        nids = secs.nid[sel[starts]].tolist()
        state = np.where(online, "online", np.where(n_on == 0, "offline", "mixed")).tolist()
        for k, (b, c, z, ne) in enumerate(zip(bid[starts].tolist(), count.tolist(), z0.tolist(), n_early.tolist())):
            blocks.append({"phys_index": b, "start_pfn": b * ppb, "sections": c, "state": state[k],
                           "zone": (names[z] if same[k] else "none") if zone_ok[k] else None,
                           "nid": nids[k] if nids[k] >= 0 else None, "early": ne == c})
    dev = [{"nr": int(secs.nr[i]), "start_pfn": int(secs.nr[i]) << kernel.pfn_section_shift,
            "nid": int(secs.nid[i]) if secs.nid[i] >= 0 else None} for i in np.nonzero(device)[0].tolist()]
    return {"block_size": ppb << 12, "block_size_source": size_src, "zone_source": zone_source, "blocks": blocks,
            "zone_device_sections": dev, "zone_names": list(ZONE_NAMES)}
