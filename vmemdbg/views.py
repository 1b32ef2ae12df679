"""Engine views: plain data (dicts and lists) for every front end. Shapes: docs/json.md.

Front ends (CLI, drgn plugin, gdb) call these and only print; nothing here formats text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .addresses import parse_address
from .census import vmemmap_census
from .e820 import read_e820_table
from .memblock import read_memblock
from .errors import VmemdbgError
from .jsonout import SCHEMA
from .mmzone import (
    SECTION_HAS_MEM_MAP,
    SECTION_IS_EARLY,
    SECTION_IS_ONLINE,
    decode_mem_map,
    migratetypes,
    present_sections,
)
from .versions import MIGRATETYPE_MASK, migratetype_name
from .vmemmap import vmemmap_mapping

if TYPE_CHECKING:
    from .kernel import Kernel



def document(command: str, **body: object) -> dict:
    """A view document: ``schema`` and ``command`` first, then ``body`` (docs/json.md)."""
    return {"schema": SCHEMA, "command": command, **body}


def _unreadable(kernel: "Kernel") -> list[str]:
    out = list(dict.fromkeys(kernel.unreadable + present_sections(kernel).unreadable))
    out += [f"{f.reason} at table {f.table:#x} ({f.va_start:#x}-{f.va_end:#x})" for f in vmemmap_mapping(kernel).faults]
    return out


def summary(kernel: "Kernel") -> dict:
    """Kernel identity, bases, section constants, counts and memmap totals."""
    secs = present_sections(kernel)
    census = vmemmap_census(kernel)
    return document(
        "summary",
        kernel={"release": kernel.release, "kaslr_offset": kernel.kaslr_offset, "phys_base": kernel.phys_base,
                "page_offset_base": kernel.page_offset_base, "vmemmap_base": kernel.vmemmap_base,
                "vmalloc_base": kernel.vmalloc_base, "pgtable_levels": kernel.pgtable_levels,
                "page_size": kernel.page_size, "struct_page_size": kernel.struct_page_size,
                "init_top_pgt": kernel.init_top_pgt, "sme_mask": kernel.sme_mask},
        sparse={"section_size_bits": kernel.section_size_bits, "max_physmem_bits": kernel.max_physmem_bits,
                "nr_mem_sections": kernel.nr_mem_sections, "mem_section_size": kernel.mem_section_size,
                "sections_per_root": kernel.sections_per_root, "nr_section_roots": kernel.nr_section_roots,
                "roots_addr": kernel.roots_addr, "roots_present": secs.roots_present,
                "usage_size": secs.usage_layout.stride, "usage_layout": secs.usage_layout.name,
                "usage_reason": secs.usage_reason, "flags_layout": secs.flag_layout.name,
                "flags_reason": secs.flag_reason, "nodes_shift": kernel.nodes_shift},
        counts={"present": len(secs), "valid": int(np.count_nonzero(secs.has(SECTION_HAS_MEM_MAP))),
                "online": int(np.count_nonzero(secs.has(SECTION_IS_ONLINE))),
                "early": int(np.count_nonzero(secs.has(SECTION_IS_EARLY))),
                "highest_present": secs.highest_present},
        memmap={"mapped_bytes": census.counts["mapped_bytes"], "pmd_leaves": census.counts["pmd_leaves"],
                "pte_leaves": census.counts["pte_leaves"], "pagetable_bytes": census.counts["pagetable_bytes"],
                "memmap_bytes": census.overhead["total"]["memmap_bytes"]},
        nodes=kernel.nodes,
        symbols=kernel.symbol_source,
        notes=kernel.notes,
        unreadable=_unreadable(kernel),
    )


def sections(kernel: "Kernel", *, with_migratetypes: bool = False, nr_range: tuple[int, int] | None = None) -> dict:
    """Every present section, decoded (comparable to crash ``kmem -n``); ``nr_range`` keeps only
    section numbers ``first..last`` (inclusive).

    Built column-wise (numpy ``tolist`` per column, flag names looked up per distinct low-bit
    pattern) so that half a million sections take well under a second.
    """
    secs = present_sections(kernel)
    lay = secs.flag_layout
    n = len(secs)
    lo, hi = (0, n) if nr_range is None else (int(np.searchsorted(secs.nr, nr_range[0])),
                                               int(np.searchsorted(secs.nr, nr_range[1], side="right")))
    low_mask = np.uint64(~lay.map_mask & ((1 << 64) - 1))
    valid = secs.has(SECTION_HAS_MEM_MAP).tolist()
    mem_map = decode_mem_map(kernel, secs).tolist()
    nr = secs.nr.tolist()
    addr = secs.addr.tolist()
    spr = kernel.sections_per_root
    shift = kernel.pfn_section_shift
    words = secs.word.tolist()
    names = {int(b): lay.decode(int(b)) for b in np.unique(secs.word & low_mask).tolist()}
    nid = secs.nid.tolist()
    usage = secs.usage.tolist()
    uok = secs.usage_ok.tolist()
    sub = secs.subsection_map.tolist()
    pb = secs.pageblock.tolist()
    low = (secs.word & low_mask).tolist()
    rows = [{"nr": nr[i], "root": nr[i] // spr, "section": addr[i], "coded_mem_map": words[i],
             "mem_map": mem_map[i] if valid[i] else None, "start_pfn": nr[i] << shift,
             "flags": names[low[i]], "nid": nid[i] if nid[i] >= 0 else None, "usage": usage[i],
             "subsection_map": sub[i] if uok[i] else None, "pageblock_flags": pb[i] if uok[i] else None,
             "migratetypes": migratetypes(secs.pageblock[i], secs.usage_layout.pageblock_bits) if (uok[i] and with_migratetypes) else None}
            for i in range(lo, hi)]
    return document("sections",
                layout={"flags_layout": lay.name, "reason": secs.flag_reason, "origin": lay.origin,
                        "map_mask": lay.map_mask,
                        "usage_layout": secs.usage_layout.name, "usage_reason": secs.usage_reason},
                sections=rows, unreadable=_unreadable(kernel))


def vmemmap(kernel: "Kernel") -> dict:
    """Census of the vmemmap region: runs, audit findings, overhead per node."""
    c = vmemmap_census(kernel)
    # hole_mapped compares the memmap with the kernel's account of RAM (vmemdbg.ram): without one
    # (no iomem_resource, memblock or e820_table readable) the check does not run, and says why
    not_audited = ([] if c.ram["ranges"] else
                   ["hole_mapped: " + kernel.missing_symbol("iomem_resource", "the kernel's account of RAM")
                    if kernel.symbol("iomem_resource") is None else
                    "hole_mapped: no account of RAM could be read (" + "; ".join(c.ram["sources"]) + ")"])
    return document("vmemmap", vmemmap_base=kernel.vmemmap_base, runs=c.runs, audit=c.audit,
                overhead=c.overhead, counts=c.counts, hvo=c.hvo, ram=c.ram, not_audited=not_audited,
                unreadable=_unreadable(kernel))


def memory_blocks(kernel: "Kernel") -> dict:
    """Memory blocks as /sys/devices/system/memory shows them, plus ZONE_DEVICE sections."""
    from .memory_block import memory_blocks as blocks

    return document("memory-blocks", **blocks(kernel), unreadable=_unreadable(kernel))


def explain(kernel: "Kernel", text: str) -> dict:
    """Section, subsection, pageblock, struct page and its page-table path for one address."""
    kind, value = parse_address(kernel, text)
    if kind == "pfn":
        pfn = value
    elif kind == "phys":
        pfn = value >> 12
    elif kind == "direct":
        pfn = (value - kernel.page_offset_base) >> 12
    else:
        pfn = kernel.page_to_pfn(value)
    phys = value if kind == "phys" else pfn << 12
    if kind == "direct":
        phys = value - kernel.page_offset_base
    if pfn < 0 or pfn >= 1 << (kernel.max_physmem_bits - 12):
        raise VmemdbgError(f"{text}: pfn {pfn:#x} is outside MAX_PHYSMEM_BITS={kernel.max_physmem_bits}")
    page = kernel.pfn_to_page(pfn)
    secs = present_sections(kernel)
    nr = pfn >> kernel.pfn_section_shift
    idx = int(secs.index_of(np.array([nr]))[0])
    sub = (pfn & (kernel.pages_per_section - 1)) // 512
    pageblock = (pfn & (kernel.pages_per_section - 1)) >> 9
    section = {"nr": nr, "present": idx >= 0, "valid": False, "flags": [], "nid": None}
    sub_valid = False
    mt = None
    if idx >= 0:
        w = int(secs.word[idx])
        section.update(flags=secs.flag_layout.decode(w), valid=bool(w & SECTION_HAS_MEM_MAP),
                       nid=int(secs.nid[idx]) if secs.nid[idx] >= 0 else None, coded_mem_map=w,
                       usage=int(secs.usage[idx]))
        if secs.usage_ok[idx]:
            sub_valid = bool(int(secs.subsection_map[idx]) >> sub & 1) or bool(w & SECTION_IS_EARLY)
            bit = pageblock * secs.usage_layout.pageblock_bits
            word = int(secs.pageblock[idx][bit // 64])
            mt = migratetype_name((word >> (bit % 64)) & MIGRATETYPE_MASK)
    t = kernel.translate(page)
    path = [{"level": s.level, "table": s.table, "index": s.index, "entry": s.entry} for s in t.path]
    page_nid = nid = None
    if t.phys is not None:
        page_nid_arr = vmemmap_mapping(kernel).pfn_nids(np.array([t.phys >> 12], dtype=np.uint64))
        page_nid = int(page_nid_arr[0]) if page_nid_arr[0] >= 0 else None
        nid_arr = vmemmap_mapping(kernel).pfn_nids(np.array([pfn], dtype=np.uint64))
        nid = int(nid_arr[0]) if nid_arr[0] >= 0 else None
    return document("explain", input=text, kind=kind, pfn=pfn, phys=phys,
                direct_map=kernel.page_offset_base + phys, page=page,
                page_offset=value - page if kind == "page" else 0,
                section=section, subsection=sub, subsection_valid=sub_valid,
                pfn_valid=bool(section["valid"] and sub_valid),
                pageblock=pageblock, migratetype=mt, path=path, leaf=t.leaf,
                page_phys=t.phys, page_nid=page_nid, nid=nid)


def memblock(kernel: "Kernel") -> dict:
    """memblock.memory / memblock.reserved with flags, nids and a trust verdict."""
    return document("memblock", **read_memblock(kernel), max_numnodes=1 << kernel.nodes_shift,
                    unreadable=list(kernel.unreadable))


def e820(kernel: "Kernel") -> dict:
    """The kernel's e820 tables: e820_table (modified), e820_table_firmware, e820_table_kexec."""
    kernel.require_symbol("e820_table", "e820")
    tables = {name: read_e820_table(kernel, name) for name in ("e820_table", "e820_table_firmware", "e820_table_kexec")}
    return document("e820", tables=tables, unreadable=list(kernel.unreadable))


def audit(kernel: "Kernel", *, with_sections: bool = True, with_migratetypes: bool = False) -> dict:
    """The full audit in one document: summary, sections, vmemmap census, memblock, e820.

    ``with_sections=False`` leaves out the per-section list (the text report does not print it;
    the section table itself is still read, for the summary and the census).
    """
    out: dict = {"summary": summary(kernel), "vmemmap": vmemmap(kernel)}
    if with_sections:
        out["sections"] = sections(kernel, with_migratetypes=with_migratetypes)
    for name, view in (("e820", e820), ("memblock", memblock)):
        try:
            out[name] = view(kernel)
        except VmemdbgError as e:
            out[name] = {"error": str(e)}
    return document("audit", **out)


def all_views(kernel: "Kernel") -> dict:
    """Every view with every optional part (what ``extract`` must preserve)."""
    return {**audit(kernel, with_migratetypes=True), "memory_blocks": memory_blocks(kernel)}


def describe(kernel: "Kernel") -> dict:
    """The machine description the dump implies (vmemdbg/sim/describe.py), with its TOML text."""
    from .sim.describe import describe as derive, to_toml

    d = derive(kernel)
    return document("describe", **d.as_dict(), toml=to_toml(d))


def check(kernel: "Kernel") -> dict:
    """The dump against the replay of its derived machine (vmemdbg/sim/check.py)."""
    from .sim.check import check as run

    return run(kernel)
