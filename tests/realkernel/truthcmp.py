"""Compare vmemdbg's views with the drgn truth JSON written by drgn_truth.py.

Used by make_fixtures.py (full dump and extracted fixture) and by the offline test suite
(tests/test_realkernel_fixtures.py) on the committed fixtures. Every field the truth holds is
compared; layout *names* are vmemdbg's own vocabulary and are checked through the values they
imply (usage_size, flag names per section) instead.
"""

from __future__ import annotations

from typing import Any

from vmemdbg.kernel import Kernel
from vmemdbg import views
from vmemdbg.vmemmap import vmemmap_mapping

SUMMARY_SPARSE_KEYS = ("section_size_bits", "max_physmem_bits", "nr_mem_sections", "mem_section_size",
                       "sections_per_root", "nr_section_roots", "roots_addr", "roots_present", "usage_size",
                       "nodes_shift")
SECTION_KEYS = ("nr", "root", "coded_mem_map", "mem_map", "start_pfn", "flags", "nid", "usage",
                "subsection_map", "pageblock_flags", "migratetypes")
RUN_KEYS = ("start", "end", "level", "writable", "phys", "nid", "start_pfn", "end_pfn")
EXPLAIN_KEYS = ("kind", "pfn", "phys", "direct_map", "page", "subsection", "subsection_valid", "pageblock",
                "migratetype", "path", "leaf", "page_phys", "page_nid", "nid")


def engine_views(kernel: Kernel, truth: dict[str, Any]) -> dict[str, Any]:
    """Every view the truth can be compared with, computed by the engine."""
    return {
        "summary": views.summary(kernel),
        "sections": views.sections(kernel, with_migratetypes=True),
        "vmemmap": views.vmemmap(kernel),
        "explain": [views.explain(kernel, e["input"]) for e in truth.get("explain", [])],
        "table_pages": sorted(vmemmap_mapping(kernel).leaves.tables),
        "memblock": views.memblock(kernel),
        "e820": views.e820(kernel),
        "memory_blocks": views.memory_blocks(kernel),
    }


def _diff(where: str, mine: Any, truth: Any, out: list[str]) -> None:
    if mine != truth:
        out.append(f"{where}: vmemdbg {mine!r} != drgn {truth!r}")


def compare(mine: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """Return one line per differing field (empty list = identical)."""
    out: list[str] = []
    ts, ms = truth["summary"], mine["summary"]
    for k, v in ts["kernel"].items():
        _diff(f"summary.kernel.{k}", ms["kernel"].get(k), v, out)
    for k in SUMMARY_SPARSE_KEYS:
        if k in ts["sparse"]:
            _diff(f"summary.sparse.{k}", ms["sparse"].get(k), ts["sparse"][k], out)
    for k, v in ts["counts"].items():
        _diff(f"summary.counts.{k}", ms["counts"].get(k), v, out)
    for k, v in ts["memmap"].items():
        _diff(f"summary.memmap.{k}", ms["memmap"].get(k), v, out)
    _diff("summary.unreadable", ms["unreadable"], ts.get("unreadable", []), out)
    tsec = {s["nr"]: s for s in truth["sections"]}
    msec = {s["nr"]: s for s in mine["sections"]["sections"]}
    _diff("sections (numbers)", sorted(msec), sorted(tsec), out)
    for nr in sorted(set(tsec) & set(msec)):
        for k in SECTION_KEYS:
            _diff(f"section {nr}.{k}", msec[nr].get(k), tsec[nr].get(k), out)
    truns = truth["vmemmap_pages"]["runs"]
    keys = RUN_KEYS + (("provenance",) if truns and "provenance" in truns[0] else ())
    mruns = [{k: r[k] for k in keys} for r in mine["vmemmap"]["runs"]]
    _diff("vmemmap.runs", mruns, [{k: r[k] for k in keys} for r in truns], out)
    if "hugetlb_folios" in truth:
        tf = sorted((f["head_pfn"], f["order"], f["head_page"], f["shared_page_phys"], f["vmemmap_pages"],
                     f["tails_remapped"], f["vmemmap_optimized"]) for f in truth["hugetlb_folios"] if f["vmemmap_optimized"])
        mf = sorted((f["head_pfn"], f["order"], f["head_page"], f["shared_page_phys"], f["vmemmap_pages"],
                     f["tails_remapped"], f["vmemmap_optimized_flag"]) for f in mine["vmemmap"]["hvo"]["folios"])
        _diff("vmemmap.hvo.folios", mf, tf, out)
    if "memory_blocks" in truth:
        mb = [{"phys_index": b["phys_index"], "state": b["state"], "nid": b["nid"], "zone": b["zone"]}
              for b in mine["memory_blocks"]["blocks"]]
        _diff("memory_blocks", mb, [{k: b[k] for k in ("phys_index", "state", "nid", "zone")}
                                    for b in sorted(truth["memory_blocks"], key=lambda b: b["phys_index"])], out)
    if truth.get("memmap_counters"):
        kc = mine["vmemmap"]["overhead"]["kernel_counters"]
        for n, v in truth["memmap_counters"].items():
            _diff(f"kernel_counters.{n}", kc.get(n), v, out)
    _diff("vmemmap.table_pages", mine["table_pages"], sorted(truth["vmemmap_pages"]["table_pages"]), out)
    for me, te in zip(mine["explain"], truth.get("explain", [])):
        for k in EXPLAIN_KEYS:
            if k in te:
                _diff(f"explain {te['input']}.{k}", me.get(k), te[k], out)
        for k in ("nr", "flags", "present", "valid"):
            _diff(f"explain {te['input']}.section.{k}", me["section"].get(k), te["section"].get(k), out)
    mnodes = [{k: n[k] for k in ("nid", "start_pfn", "spanned_pages")} for n in ms.get("nodes", [])]
    tnodes = [{k: n[k] for k in ("nid", "start_pfn", "spanned_pages")} for n in truth.get("nodes", [])]
    _diff("nodes", mnodes, tnodes, out)
    if "memblock" in truth:
        tm, mm = truth["memblock"], mine["memblock"]
        for k in ("bottom_up", "current_limit", "memblock_memory", "system_state"):
            _diff(f"memblock.{k}", mm.get(k), tm.get(k), out)
        for t in ("memory", "reserved"):
            for k in ("cnt", "max", "total_size", "regions_addr", "regions_is_static"):
                _diff(f"memblock.{t}.{k}", mm[t].get(k), tm[t].get(k), out)
            mr = [{k: r[k] for k in ("base", "size", "flags", "nid")} for r in mm[t]["regions"] or []]
            _diff(f"memblock.{t}.regions", mr, tm[t]["regions"], out)
    if "e820" in truth:
        me = [{k: e[k] for k in ("addr", "size", "type")} for e in mine["e820"]["tables"]["e820_table"] or []]
        _diff("e820", me, truth["e820"], out)
    return out
