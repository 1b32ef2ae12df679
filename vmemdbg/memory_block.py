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

from .errors import MemoryFault
from .mmzone import SECTION_HAS_MEM_MAP, SECTION_IS_EARLY, SECTION_IS_ONLINE
from .ram import ram_account
from .versions import ZONE_NAMES, zones_shift

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


def memory_blocks(kernel: "Kernel") -> dict:
    """Every memory block with at least one present section, plus ZONE_DEVICE sections."""
    secs = kernel.sections
    ppb, size_src = block_pages(kernel)
    spb = max(1, ppb // kernel.pages_per_section)
    device = secs.has(SECTION_TAINT_ZONE_DEVICE) if secs.flag_layout.decode(SECTION_TAINT_ZONE_DEVICE) else \
        np.zeros(len(secs), bool)
    sel = np.nonzero(secs.has(SECTION_HAS_MEM_MAP) & ~device)[0]
    blocks = []
    if sel.size:
        bid = secs.nr[sel] // spb
        brk = np.ones(sel.size, bool)
        brk[1:] = bid[1:] != bid[:-1]
        starts = np.flatnonzero(brk)
        ends = np.append(starts[1:], sel.size)
        first = sel[starts]
        last = sel[ends - 1]
        pfn0 = secs.nr[first].astype(np.uint64) << np.uint64(kernel.pfn_section_shift)
        pfn1 = ((secs.nr[last].astype(np.uint64) + np.uint64(1)) << np.uint64(kernel.pfn_section_shift)) - np.uint64(1)
        ram = ram_account(kernel)
        for k in range(len(pfn0)):
            inside = [(max(a, int(pfn0[k])), min(b, int(pfn1[k]) + 1)) for a, b in ram.ranges
                      if a <= int(pfn1[k]) and b > int(pfn0[k])]
            if inside:
                pfn0[k], pfn1[k] = inside[0][0], inside[-1][1] - 1
        f0, ok0 = kernel.vmemmap.page_flags(pfn0)
        f1, ok1 = kernel.vmemmap.page_flags(pfn1)
        z0, z1 = zone_of_flags(kernel, f0), zone_of_flags(kernel, f1)
        online = secs.has(SECTION_IS_ONLINE)
        early = secs.has(SECTION_IS_EARLY)
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            members = sel[a:b]
            n_on = int(np.count_nonzero(online[members]))
            state = "online" if n_on == len(members) else "offline" if n_on == 0 else "mixed"
            zone = None
            if state == "online" and ok0[k] and ok1[k]:  # unknown (None) if either struct page is not in the dump
                zone = "none" if z1[k] != z0[k] else ZONE_NAMES[z0[k]] if z0[k] < len(ZONE_NAMES) else f"?{z0[k]}"
            nid = int(secs.nid[members[0]])
            blocks.append({"phys_index": int(bid[a]), "start_pfn": int(bid[a]) * ppb, "sections": len(members),
                           "state": state, "zone": zone, "nid": nid if nid >= 0 else None,
                           "early": bool(early[members].all())})
    dev = [{"nr": int(secs.nr[i]), "start_pfn": int(secs.nr[i]) << kernel.pfn_section_shift,
            "nid": int(secs.nid[i]) if secs.nid[i] >= 0 else None} for i in np.nonzero(device)[0].tolist()]
    return {"block_size": ppb << 12, "block_size_source": size_src, "blocks": blocks, "zone_device_sections": dev,
            "zone_names": list(ZONE_NAMES)}
