"""vmemmap census, audit and overhead.

The census coalesces the vmemmap leaves (:mod:`vmemdbg.vmemmap`) into runs. The audit flags what
a kernel engineer looks for after vmemmap_populate (arch/x86/mm/init_64.c, 6.1):

* ``offnode``: memmap of node A backed by node B memory (what vmemmap_verify warns about as
  "potential offnode page_structs").
* ``pte_fallback``: a boot section's memmap mapped by 4 KiB PTEs where vmemmap_populate_hugepages
  installs a 2 MiB PMD unless vmemmap_alloc_block_buf failed.
* ``hvo``: a PMD split by HugeTLB vmemmap optimisation (read-only PTEs, mm/hugetlb_vmemmap.c).
* ``hole_mapped``: memmap mapped for pfns that are not RAM (non-present sections, or whole memmap
  pages describing pfns outside e820 RAM inside a present section).
* ``subsection_unmapped``: a subsection marked valid in subsection_map whose memmap is unmapped.
* ``aliased``: one physical frame mapped at several vmemmap addresses.
* ``unreadable``: page-table pages missing from the dump.

All of it is vectorised over leaves and sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .e820 import ram_pfn_ranges, read_e820_table
from .mmzone import SECTION_HAS_MEM_MAP, SECTION_IS_EARLY
from .pagetable import LEAF_NAME

if TYPE_CHECKING:
    from .kernel import Kernel

#: Cap on per-item audit entries of one kind (a summary entry says how many were left out).
AUDIT_CAP = 1000


@dataclass
class Census:
    """Result of :func:`vmemmap_census`."""

    runs: list[dict]
    audit: list[dict]
    overhead: dict
    counts: dict


def _groups(mask_break: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of runs, given a per-element 'starts a new run' mask."""
    starts = np.flatnonzero(mask_break)
    ends = np.append(starts[1:], len(mask_break))
    return starts, ends


def vmemmap_census(kernel: "Kernel") -> Census:
    """Runs, audit and overhead of the whole vmemmap region."""
    m = kernel.vmemmap
    lv = m.leaves
    sps = kernel.struct_page_size
    V = np.uint64(kernel.vmemmap_base)
    n = len(lv)
    size = lv.size
    writable = lv.writable
    before = dict(m.nid_sources)
    nid = m.pfn_nids(lv.phys >> np.uint64(12)) if n else np.zeros(0, np.int64)
    nid_source = {k: v - before[k] for k, v in m.nid_sources.items()}  # backing frames only
    start_pfn = (lv.va - V) // np.uint64(sps)
    end_pfn = (lv.va + size - V + np.uint64(sps - 1)) // np.uint64(sps)
    runs: list[dict] = []
    if n:
        brk = np.ones(n, dtype=bool)
        brk[1:] = ~((lv.va[1:] == lv.va[:-1] + size[:-1]) & (lv.phys[1:] == lv.phys[:-1] + size[:-1])
                    & (lv.shift[1:] == lv.shift[:-1]) & (writable[1:] == writable[:-1]) & (nid[1:] == nid[:-1]))
        s, e = _groups(brk)
        last = e - 1
        # columns as Python lists first: one conversion per column, not per run
        cols = zip(lv.va[s].tolist(), (lv.va[last] + size[last]).tolist(), lv.shift[s].tolist(),
                   writable[s].tolist(), lv.phys[s].tolist(), nid[s].tolist(), start_pfn[s].tolist(),
                   end_pfn[last].tolist(), (e - s).tolist())
        runs = [{"start": va, "end": end, "level": LEAF_NAME[sh], "writable": w, "phys": ph,
                 "nid": nd if nd >= 0 else None, "start_pfn": sp, "end_pfn": ep, "leaves": cnt}
                for va, end, sh, w, ph, nd, sp, ep, cnt in cols]
    audit = _audit(kernel, nid, writable, start_pfn, end_pfn)
    overhead = _overhead(kernel, nid)
    counts = {"pmd_leaves": int(np.count_nonzero(lv.shift == 21)), "pte_leaves": int(np.count_nonzero(lv.shift == 12)),
              "pud_leaves": int(np.count_nonzero(lv.shift == 30)), "mapped_bytes": int(size.sum()) if n else 0,
              "pagetable_bytes": 4096 * len(lv.tables), "nid_source": nid_source}
    return Census(runs, audit, overhead, counts)


def _add(audit: list[dict], kind: str, start: int, end: int, detail: str) -> None:
    audit.append({"kind": kind, "start": start, "end": end, "detail": detail})


def _capped(audit: list[dict], kind: str, items: list[tuple[int, int, str]]) -> None:
    for start, end, detail in items[:AUDIT_CAP]:
        _add(audit, kind, start, end, detail)
    if len(items) > AUDIT_CAP:
        _add(audit, kind, items[AUDIT_CAP][0], items[-1][1], f"... and {len(items) - AUDIT_CAP} more {kind} entries")


def _audit(kernel: "Kernel", nid: np.ndarray, writable: np.ndarray, start_pfn: np.ndarray,
           end_pfn: np.ndarray) -> list[dict]:
    m = kernel.vmemmap
    lv = m.leaves
    secs = kernel.sections
    audit: list[dict] = []
    for f in m.faults:
        _add(audit, "unreadable", f.va_start, f.va_end, f"{f.reason}: table page {f.table:#x}")
    if len(lv) == 0:
        return audit
    size = lv.size
    sec_of_leaf = (start_pfn >> np.uint64(kernel.pfn_section_shift)).astype(np.int64)
    idx = secs.index_of(sec_of_leaf)
    if len(secs):
        at = np.maximum(idx, 0)
        desc_nid = np.where(idx >= 0, secs.nid[at], -1)
        valid = np.where(idx >= 0, secs.has(SECTION_HAS_MEM_MAP)[at], False)
        early = np.where(idx >= 0, secs.has(SECTION_IS_EARLY)[at], False)
    else:  # no readable section (filtered dump, or mid-boot before memory_present)
        desc_nid = np.full(len(lv), -1, dtype=np.int64)
        valid = early = np.zeros(len(lv), dtype=bool)

    # offnode: coalesce consecutive leaves with the same (described nid, backing nid).
    off = (nid >= 0) & (desc_nid >= 0) & (nid != desc_nid)
    items = []
    for i0, i1 in _mask_runs(off, lv.va, size):
        items.append((int(lv.va[i0]), int(lv.va[i1] + size[i1]),
                      f"memmap of node {int(desc_nid[i0])} (pfn {int(start_pfn[i0]):#x}-{int(end_pfn[i1]):#x}) "
                      f"backed by node {int(nid[i0])} memory at {int(lv.phys[i0]):#x}"))
    _capped(audit, "offnode", items)

    # PTE-mapped PMD slots: HVO splits (read-only PTEs) versus basepage fallback of boot sections.
    pte = np.nonzero(lv.shift == 12)[0]
    if pte.size:
        slot = lv.va[pte] >> np.uint64(21)
        brk = np.ones(pte.size, dtype=bool)
        brk[1:] = slot[1:] != slot[:-1]
        s, e = _groups(brk)
        ro_any = np.logical_or.reduceat(~writable[pte], s)
        early_slot = early[pte][s]
        hvo_items, fb_items = [], []
        for k, (a, b) in enumerate(zip(s.tolist(), e.tolist())):
            va0 = int(lv.va[pte[a]]) & ~((1 << 21) - 1)
            cnt = b - a
            if ro_any[k]:
                nro = int(np.count_nonzero(~writable[pte[a:b]]))
                hvo_items.append((va0, va0 + (1 << 21), f"PMD split into {cnt} PTEs, {nro} read-only (HugeTLB vmemmap optimisation)"))
            elif early_slot[k]:
                fb_items.append((va0, va0 + (1 << 21), f"boot memmap mapped by {cnt} 4 KiB PTEs instead of a 2 MiB PMD "
                                 f"(section {int(sec_of_leaf[pte[a]])}, node {int(desc_nid[pte[a]])})"))
        _capped(audit, "pte_fallback", _merge_items(fb_items))
        _capped(audit, "hvo", hvo_items)

    # hole_mapped (a): leaves describing pfns of sections without a memmap.
    items = []
    for i0, i1 in _mask_runs(~valid, lv.va, size):
        items.append((int(lv.va[i0]), int(lv.va[i1] + size[i1]),
                      f"memmap mapped for pfn {int(start_pfn[i0]):#x}-{int(end_pfn[i1]):#x} in sections without a memmap"))
    _capped(audit, "hole_mapped", items)
    _audit_ram_holes(kernel, audit)
    _audit_subsections(kernel, audit)
    _audit_aliases(kernel, writable, audit)
    return audit


def _mask_runs(mask: np.ndarray, va: np.ndarray, size: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges (inclusive) of VA-contiguous leaves where ``mask`` is set."""
    idx = np.nonzero(mask)[0]
    if not idx.size:
        return []
    brk = np.ones(idx.size, dtype=bool)
    brk[1:] = (idx[1:] != idx[:-1] + 1) | (va[idx[1:]] != va[idx[:-1]] + size[idx[:-1]])
    s, e = _groups(brk)
    return [(int(idx[a]), int(idx[b - 1])) for a, b in zip(s.tolist(), e.tolist())]


def _merge_items(items: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Merge VA-adjacent audit items, keeping the first detail and counting the slots."""
    out: list[tuple[int, int, str]] = []
    count = 0
    for it in items:
        if out and it[0] == out[-1][1]:
            count += 1
            out[-1] = (out[-1][0], it[1], out[-1][2].split(" [+")[0] + f" [+{count} more PMD slots]")
        else:
            count = 0
            out.append(it)
    return out


def _audit_ram_holes(kernel: "Kernel", audit: list[dict]) -> None:
    """Whole memmap pages inside present sections that only describe non-RAM pfns (e820)."""
    table = read_e820_table(kernel)
    if table is None:
        return
    ram = ram_pfn_ranges(table)
    secs = kernel.sections
    if not ram or not len(secs):
        return
    pps = kernel.pages_per_section
    sps = kernel.struct_page_size
    starts = np.array([r[0] for r in ram], dtype=np.int64)
    ends = np.array([r[1] for r in ram], dtype=np.int64)
    sec_start = secs.nr << kernel.pfn_section_shift
    sec_end = sec_start + pps
    i = np.searchsorted(starts, sec_start, side="right") - 1
    inside = (i >= 0) & (ends[np.maximum(i, 0)] >= sec_end)
    cand = np.nonzero(~inside & secs.has(SECTION_HAS_MEM_MAP))[0]
    mapped = kernel.vmemmap
    items = []
    for k in cand.tolist():
        s0, s1 = int(sec_start[k]), int(sec_end[k])
        holes, cur = [], s0
        for a, b in ram:
            if b <= s0 or a >= s1:
                continue
            if a > cur:
                holes.append((cur, a))
            cur = max(cur, b)
        if cur < s1:
            holes.append((cur, s1))
        total = 0
        for a, b in holes:
            va_a = kernel.vmemmap_base + a * sps
            va_b = kernel.vmemmap_base + b * sps
            p0, p1 = (va_a + 4095) & ~4095, va_b & ~4095
            if p1 > p0:
                pages = np.arange(p0, p1, 4096, dtype=np.uint64)
                _, ok = mapped.translate(pages)
                total += int(np.count_nonzero(ok)) * 4096
        if total:
            items.append((kernel.vmemmap_base + s0 * sps, kernel.vmemmap_base + s1 * sps,
                          f"section {int(secs.nr[k])}: {total // 1024} KiB of mapped memmap describe only pfns outside e820 RAM"))
    _capped(audit, "hole_mapped", items)


def _audit_subsections(kernel: "Kernel", audit: list[dict]) -> None:
    """Valid subsections (subsection_map bit set) whose memmap is not fully mapped."""
    secs = kernel.sections
    m = kernel.vmemmap
    lv = m.leaves
    valid = np.nonzero(secs.has(SECTION_HAS_MEM_MAP) & secs.usage_ok)[0]
    if not valid.size:
        return
    sps = kernel.struct_page_size
    per_sub = 512 * sps
    nsub = kernel.pages_per_section // 512
    if len(lv):
        brk = np.ones(len(lv), dtype=bool)
        brk[1:] = lv.va[1:] != m.ends[:-1]
        s, e = _groups(brk)
        iv_start, iv_end = lv.va[s], m.ends[e - 1]
    else:
        iv_start = iv_end = np.zeros(0, np.uint64)
    base = np.uint64(kernel.vmemmap_base) + (secs.nr[valid].astype(np.uint64) << np.uint64(kernel.pfn_section_shift)) * np.uint64(sps)
    end = base + np.uint64(kernel.pages_per_section * sps)
    j = np.searchsorted(iv_start, base, side="right").astype(np.int64) - 1
    full = (j >= 0) & (iv_end[np.maximum(j, 0)] >= end) if len(iv_start) else np.zeros(valid.size, bool)
    items = []
    for k, b in zip(valid[~full].tolist(), base[~full].tolist()):
        bits = int(secs.subsection_map[k])
        vas = np.array([b + i * per_sub + off for i in range(nsub) if bits >> i & 1
                        for off in range(0, per_sub, 4096)], dtype=np.uint64)
        if not vas.size:
            continue
        _, ok = m.translate(vas)
        if not ok.all():
            bad = sorted({int((int(v) - b) // per_sub) for v in vas[~ok]})
            items.append((b, b + nsub * per_sub,
                          f"section {int(secs.nr[k])}: valid subsections {bad} have unmapped memmap"))
    _capped(audit, "subsection_unmapped", items)


def _audit_aliases(kernel: "Kernel", writable: np.ndarray, audit: list[dict]) -> None:
    """Physical frames reachable from more than one vmemmap VA."""
    lv = kernel.vmemmap.leaves
    if len(lv) < 2:
        return
    size = lv.size
    order = np.argsort(lv.phys, kind="stable")
    ps, pe = lv.phys[order], lv.phys[order] + size[order]
    prev_end = np.maximum.accumulate(pe)
    over = np.zeros(len(ps), dtype=bool)
    over[1:] = ps[1:] < prev_end[:-1]
    items = []
    for k in np.nonzero(over)[0].tolist():
        i = int(order[k])
        ro = "" if writable[i] else " (read-only alias)"
        items.append((int(lv.va[i]), int(lv.va[i] + size[i]),
                      f"frame {int(lv.phys[i]):#x} is also mapped at another vmemmap address{ro}"))
    items.sort()
    _capped(audit, "aliased", items)


def _overhead(kernel: "Kernel", nid: np.ndarray) -> dict:
    """Bytes of physical memory backing struct pages (each frame counted once) and of table pages."""
    m = kernel.vmemmap
    lv = m.leaves
    per: dict[int | None, dict] = {}

    def slot(n: int | None) -> dict:
        return per.setdefault(n, {"nid": n, "memmap_bytes": 0, "pagetable_bytes": 0})

    if len(lv):
        size = lv.size
        order = np.argsort(lv.phys, kind="stable")
        ps = lv.phys[order].astype(np.int64)
        pe = ps + size[order].astype(np.int64)
        prev_end = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(pe)[:-1]))
        eff = np.maximum(0, pe - np.maximum(ps, prev_end))
        nn = nid[order]
        for v in np.unique(nn).tolist():
            slot(v if v >= 0 else None)["memmap_bytes"] += int(eff[nn == v].sum())
    if lv.tables:
        tn = m.pfn_nids(np.array(lv.tables, dtype=np.uint64) >> np.uint64(12))
        for v in tn.tolist():
            slot(v if v >= 0 else None)["pagetable_bytes"] += 4096
    nodes = sorted(per.values(), key=lambda d: (d["nid"] is None, d["nid"] or 0))
    total = {"memmap_bytes": sum(d["memmap_bytes"] for d in nodes),
             "pagetable_bytes": sum(d["pagetable_bytes"] for d in nodes)}
    return {"total": total, "nodes": nodes}
