"""vmemmap census, audit and overhead.

The census coalesces the vmemmap leaves (:mod:`vmemdbg.vmemmap`) into runs, each with its
*provenance* (who built that part of the memmap):

* ``boot``: sparse_init -> vmemmap_populate (sparse buffer or memblock) for early sections;
* ``hotplug``: section_activate -> populate_section_memmap for a section added after boot
  (not SECTION_IS_EARLY), from the buddy allocator;
* ``self_hosted``: the same with ``memory_hotplug.memmap_on_memory``: the memmap lives in an
  altmap at the start of the added memory block itself (the kernel marks those pages
  PageVmemmapSelfHosted, mm/memory_hotplug.c mhp_init_memmap_on_memory); derived here from the
  backing frame lying in the same (non-early) memory block as the pfns it describes;
* ``hvo``: the head and read-only tail vmemmap pages of a HugeTLB-vmemmap-optimised folio
  (:mod:`vmemdbg.hvo`).

Every audit entry has a ``severity``. An ``anomaly`` is something a kernel engineer must act on:

* ``offnode``: memmap of node A backed by node B memory while node A had memory of its own (what
  vmemmap_verify warns about as "potential offnode page_structs");
* ``pte_fallback``: a boot section's memmap mapped by 4 KiB PTEs where vmemmap_populate_hugepages
  installs a 2 MiB PMD unless vmemmap_alloc_block_buf failed;
* ``hole_mapped``: memmap mapped for pfns that are not RAM by the kernel's own account
  (:mod:`vmemdbg.ram`) where nothing explains it: non-present sections, or hot-added sections;
* ``subsection_unmapped``: a subsection marked valid in subsection_map whose memmap is unmapped;
* ``aliased``: one physical frame mapped at several vmemmap addresses outside HVO;
* ``hvo_writable_tail`` / ``hvo_wrong_alias`` / ``hvo_tail_unmapped`` / ``hvo_tail_not_pte``: a
  tail of an optimised folio that is not a read-only PTE onto the folio's shared page;
  ``hvo_orphan``: read-only vmemmap PTEs that belong to no hugetlb folio;
* ``unreadable``: page-table pages missing from the dump.

A ``note`` is an expected fact, and names its ``mechanism``: ``boot_section_hole`` (early sections
get the memmap of the whole section, so the legacy hole below 1 MiB and RAM ending mid-section
have mapped memmap), ``hotplug``, ``self_hosted``, ``hvo``, ``memoryless_node`` (off-node memmap for
a node that had no memory of its own).

All of it is vectorised over leaves and sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .abi import SECTION_HAS_MEM_MAP, SECTION_IS_EARLY
from .hvo import HvoResult, find_hvo
from .intervals import containing, split_runs
from .mmzone import present_sections
from .pagetable import LEAF_NAME, Leaves
from .ram import RamAccount, ram_account
from .vmemmap import vmemmap_mapping

if TYPE_CHECKING:
    from .kernel import Kernel

#: Cap on per-item audit entries of one kind (a summary entry says how many were left out).
AUDIT_CAP = 1000
#: Provenance names by code (the ``provenance`` key of runs, docs/json.md).
PROVENANCES = ("boot", "hotplug", "self_hosted", "hvo")
BOOT, HOTPLUG, SELF_HOSTED, HVO = range(4)
ANOMALY, NOTE = "anomaly", "note"


@dataclass
class Census:
    """Result of :func:`vmemmap_census`."""

    runs: list[dict]
    audit: list[dict]
    overhead: dict
    counts: dict
    hvo: dict
    ram: dict


def vmemmap_census(kernel: "Kernel") -> Census:
    """Runs (with provenance), audit and overhead of the whole vmemmap region, computed once per
    kernel and kept in ``kernel.cache``."""
    return kernel.cached("census.vmemmap_census", _census)


def _census(kernel: "Kernel") -> Census:
    m = vmemmap_mapping(kernel)
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
    hvo = find_hvo(kernel, writable)
    prov = _provenance(kernel, hvo, writable, start_pfn)
    runs: list[dict] = []
    if n:
        s, e = split_runs(~((lv.va[1:] == lv.va[:-1] + size[:-1]) & (lv.phys[1:] == lv.phys[:-1] + size[:-1])
                            & (lv.shift[1:] == lv.shift[:-1]) & (writable[1:] == writable[:-1])
                            & (nid[1:] == nid[:-1]) & (prov[1:] == prov[:-1])))
        last = e - 1
        # columns as Python lists first: one conversion per column, not per run
        cols = zip(lv.va[s].tolist(), (lv.va[last] + size[last]).tolist(), lv.shift[s].tolist(),
                   writable[s].tolist(), lv.phys[s].tolist(), nid[s].tolist(), start_pfn[s].tolist(),
                   end_pfn[last].tolist(), (e - s).tolist(), prov[s].tolist())
        runs = [{"start": va, "end": end, "level": LEAF_NAME[sh], "writable": w, "phys": ph,
                 "nid": nd if nd >= 0 else None, "start_pfn": sp, "end_pfn": ep, "leaves": cnt,
                 "provenance": PROVENANCES[pv]}
                for va, end, sh, w, ph, nd, sp, ep, cnt, pv in cols]
    ram = ram_account(kernel)
    audit = _audit(kernel, nid, writable, start_pfn, end_pfn, hvo, prov, ram)
    overhead = _overhead(kernel, nid, prov)
    counts = {"pmd_leaves": int(np.count_nonzero(lv.shift == 21)), "pte_leaves": int(np.count_nonzero(lv.shift == 12)),
              "pud_leaves": int(np.count_nonzero(lv.shift == 30)), "mapped_bytes": int(size.sum()) if n else 0,
              "pagetable_bytes": 4096 * len(lv.tables), "nid_source": nid_source,
              "anomalies": sum(1 for x in audit if x["severity"] == ANOMALY),
              "notes": sum(1 for x in audit if x["severity"] == NOTE)}
    return Census(runs, audit, overhead, counts,
                  {"folios": hvo.folios, "hstates": hvo.hstates, "order_source": hvo.order_source},
                  {"sources": ram.sources, "ranges": [list(r) for r in ram.ranges]})


def _provenance(kernel: "Kernel", hvo: HvoResult, writable: np.ndarray, start_pfn: np.ndarray) -> np.ndarray:
    """Provenance code of every leaf (see the module docstring)."""
    from .memory_block import block_pages

    lv = vmemmap_mapping(kernel).leaves
    prov = np.full(len(lv), BOOT, dtype=np.int8)
    if not len(lv):
        return prov
    secs = present_sections(kernel)
    idx = secs.index_of((start_pfn >> np.uint64(kernel.pfn_section_shift)).astype(np.int64))
    at = np.maximum(idx, 0)
    if len(secs):
        late = (idx >= 0) & secs.has(SECTION_HAS_MEM_MAP)[at] & ~secs.has(SECTION_IS_EARLY)[at]
    else:
        late = np.zeros(len(lv), bool)
    ppb = np.uint64(block_pages(kernel)[0])
    own_block = (lv.phys >> np.uint64(12)) // ppb == start_pfn // ppb
    prov[late] = HOTPLUG
    prov[late & own_block] = SELF_HOSTED
    prov[hvo.leaf_mask | ((lv.shift == 12) & ~writable)] = HVO
    return prov


def _add(audit: list[dict], kind: str, start: int, end: int, detail: str, severity: str = ANOMALY,
         mechanism: str | None = None) -> None:
    audit.append({"kind": kind, "severity": severity, "mechanism": mechanism, "start": start, "end": end,
                  "detail": detail})


def _capped(audit: list[dict], kind: str, items: list[tuple[int, int, str]], severity: str = ANOMALY,
            mechanism: str | None = None) -> None:
    for start, end, detail in items[:AUDIT_CAP]:
        _add(audit, kind, start, end, detail, severity, mechanism)
    if len(items) > AUDIT_CAP:
        _add(audit, kind, items[AUDIT_CAP][0], items[-1][1], f"... and {len(items) - AUDIT_CAP} more {kind} entries",
             severity, mechanism)


def _audit(kernel: "Kernel", nid: np.ndarray, writable: np.ndarray, start_pfn: np.ndarray,
           end_pfn: np.ndarray, hvo: HvoResult, prov: np.ndarray, ram: RamAccount) -> list[dict]:
    """Every audit entry, kind by kind (the module docstring), in a fixed order."""
    m = vmemmap_mapping(kernel)
    lv = m.leaves
    audit: list[dict] = []
    for f in m.faults:
        _add(audit, "unreadable", f.va_start, f.va_end, f"{f.reason}: table page {f.table:#x}")
    if len(lv) == 0:
        return audit
    described = _described_sections(kernel, start_pfn)
    _audit_offnode(lv, nid, described, start_pfn, end_pfn, audit)
    _audit_pte_slots(lv, writable, hvo, described, audit)
    _audit_hvo(kernel, hvo, audit)
    # hole_mapped (a): leaves describing pfns of sections without a memmap.
    items = [(int(lv.va[i0]), int(lv.va[i1] + lv.size[i1]),
              f"memmap mapped for pfn {int(start_pfn[i0]):#x}-{int(end_pfn[i1]):#x} in sections without a memmap")
             for i0, i1 in _mask_runs(~described.valid, lv.va, lv.size)]
    _capped(audit, "hole_mapped", items)
    _audit_ram_holes(kernel, ram, audit)
    _note_hotplug(kernel, prov, nid, audit)
    _audit_subsections(kernel, audit)
    _audit_aliases(kernel, writable, ~(hvo.leaf_mask | ((lv.shift == 12) & ~writable)), audit)
    return audit


@dataclass
class _Described:
    """Per leaf, the present section whose struct pages it holds (from its first pfn)."""

    section: np.ndarray  # section number
    nid: np.ndarray  # that section's node, -1 if not present
    valid: np.ndarray  # SECTION_HAS_MEM_MAP
    early: np.ndarray  # SECTION_IS_EARLY
    boot_nodes: set[int]  # nodes with early valid sections (boot memory of their own)


def _described_sections(kernel: "Kernel", start_pfn: np.ndarray) -> _Described:
    secs = present_sections(kernel)
    sec_of_leaf = (start_pfn >> np.uint64(kernel.pfn_section_shift)).astype(np.int64)
    if not len(secs):  # no readable section (filtered dump, or mid-boot before memory_present)
        none = np.zeros(len(start_pfn), dtype=bool)
        return _Described(sec_of_leaf, np.full(len(start_pfn), -1, dtype=np.int64), none, none, set())
    idx = secs.index_of(sec_of_leaf)
    at = np.maximum(idx, 0)
    return _Described(sec_of_leaf, np.where(idx >= 0, secs.nid[at], -1),
                      np.where(idx >= 0, secs.has(SECTION_HAS_MEM_MAP)[at], False),
                      np.where(idx >= 0, secs.has(SECTION_IS_EARLY)[at], False),
                      set(secs.nid[secs.has(SECTION_IS_EARLY) & secs.has(SECTION_HAS_MEM_MAP)].tolist()))


def _audit_offnode(lv: Leaves, nid: np.ndarray, d: _Described, start_pfn: np.ndarray, end_pfn: np.ndarray,
                   audit: list[dict]) -> None:
    """offnode: runs of consecutive leaves with the same (described nid, backing nid); a note when
    the described node had no boot memory of its own (memoryless_node)."""
    size = lv.size
    off = (nid >= 0) & (d.nid >= 0) & (nid != d.nid)
    items: list[tuple[int, int, str]] = []
    notes: list[tuple[int, int, str]] = []
    for i0, i1 in _mask_runs(off, lv.va, size, d.nid * 4096 + nid):
        item = (int(lv.va[i0]), int(lv.va[i1] + size[i1]),
                f"memmap of node {int(d.nid[i0])} (pfn {int(start_pfn[i0]):#x}-{int(end_pfn[i1]):#x}) "
                f"backed by node {int(nid[i0])} memory at {int(lv.phys[i0]):#x}")
        (items if int(d.nid[i0]) in d.boot_nodes else notes).append(item)
    _capped(audit, "offnode", items)
    _capped(audit, "offnode", [(a, b, t + " (the node had no boot memory of its own)") for a, b, t in notes],
            NOTE, "memoryless_node")


def _audit_pte_slots(lv: Leaves, writable: np.ndarray, hvo: HvoResult, d: _Described, audit: list[dict]) -> None:
    """PTE-mapped PMD slots outside HVO folios: read-only orphans (hvo_orphan) versus the basepage
    fallback of boot sections (pte_fallback)."""
    pte = np.nonzero((lv.shift == 12) & ~hvo.leaf_mask)[0]
    if not pte.size:
        return
    slot = lv.va[pte] >> np.uint64(21)
    s, e = split_runs(slot[1:] != slot[:-1])
    ro_any = np.logical_or.reduceat(~writable[pte], s)
    early_slot = d.early[pte][s]
    in_hvo_slot = np.isin(slot[s], np.unique(lv.va[hvo.leaf_mask] >> np.uint64(21)))
    orphan, fb_items = [], []
    for k, (a, b) in enumerate(zip(s.tolist(), e.tolist())):
        va0 = int(lv.va[pte[a]]) & ~((1 << 21) - 1)
        if ro_any[k]:
            nro = int(np.count_nonzero(~writable[pte[a:b]]))
            orphan.append((va0, va0 + (1 << 21), f"{nro} read-only vmemmap PTEs that belong to no HVO-optimised "
                                                  f"hugetlb folio (no PG_head/hstate order at the shared page)"))
        elif early_slot[k] and not in_hvo_slot[k]:
            fb_items.append((va0, va0 + (1 << 21), f"boot memmap mapped by {b - a} 4 KiB PTEs instead of a 2 MiB PMD "
                             f"(section {int(d.section[pte[a]])}, node {int(d.nid[pte[a]])})"))
    _capped(audit, "pte_fallback", _merge_items(fb_items))
    _capped(audit, "hvo_orphan", orphan)


def _audit_hvo(kernel: "Kernel", hvo: HvoResult, audit: list[dict]) -> None:
    """One note per hstate (mechanism ``hvo``) and one anomaly per violated tail."""
    for h in hvo.hstates:
        fs = [f for f in hvo.folios if f["order"] == h["order"]]
        start = min(f["head_page"] for f in fs)
        end = max(f["head_page"] + f["vmemmap_pages"] * 4096 for f in fs)
        _add(audit, "hvo", start, end,
             f"{h['folios']} {h['hstate']} hugetlb folio(s) optimised by HVO: tail vmemmap pages remapped read-only "
             f"onto each folio's head vmemmap page, {h['saved_pages']} pages ({h['saved_bytes'] // 1024} KiB) freed",
             NOTE, "hvo")
    for f in hvo.folios:
        for v in f["violations"]:
            _add(audit, v["kind"], v["va"], v["va"] + 4096, v["detail"])
        if not f["vmemmap_optimized_flag"]:
            _add(audit, "hvo_flag", f["head_page"], f["head_page"] + 4096,
                 f"folio at pfn {f['head_pfn']:#x} is remapped but HPG_vmemmap_optimized is clear in its private word")


def _note_hotplug(kernel: "Kernel", prov: np.ndarray, nid: np.ndarray, audit: list[dict]) -> None:
    """A note per range of sections added after boot, naming where their memmap came from."""
    lv = vmemmap_mapping(kernel).leaves
    for code, mech, how in ((HOTPLUG, "hotplug", "memmap allocated from the buddy allocator (section_activate)"),
                            (SELF_HOSTED, "self_hosted",
                             "memmap self-hosted in the altmap at the start of the added memory (memmap_on_memory)")):
        sel = prov == code
        for i0, i1 in _mask_runs(sel, lv.va, lv.size):
            sps = kernel.struct_page_size
            p0 = (int(lv.va[i0]) - kernel.vmemmap_base) // sps
            p1 = (int(lv.va[i1] + lv.size[i1]) - kernel.vmemmap_base) // sps
            shift = kernel.pfn_section_shift
            nodes = sorted({int(x) for x in nid[i0:i1 + 1].tolist() if x >= 0})
            s0, s1 = p0 >> shift, (p1 - 1) >> shift
            what = f"section {s0} (pfn {p0:#x}-{p1:#x}) was" if s0 == s1 else f"sections {s0}-{s1} (pfn {p0:#x}-{p1:#x}) were"
            _add(audit, mech, int(lv.va[i0]), int(lv.va[i1] + lv.size[i1]),
                 f"{what} hot-added after boot: {how}, "
                 f"{int(lv.size[i0:i1 + 1].sum()) // 1024} KiB on node {','.join(map(str, nodes)) or '?'}",
                 NOTE, mech)


def _mask_runs(mask: np.ndarray, va: np.ndarray, size: np.ndarray,
               key: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Index ranges (inclusive) of VA-contiguous leaves where ``mask`` is set (and ``key`` is equal)."""
    idx = np.nonzero(mask)[0]
    if not idx.size:
        return []
    brk = (idx[1:] != idx[:-1] + 1) | (va[idx[1:]] != va[idx[:-1]] + size[idx[:-1]])
    if key is not None:
        brk |= key[idx[1:]] != key[idx[:-1]]
    s, e = split_runs(brk)
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


def _audit_ram_holes(kernel: "Kernel", ram: RamAccount, audit: list[dict]) -> None:
    """Whole memmap pages inside present sections that only describe pfns that are not RAM.

    Early sections get the memmap of the whole section at boot (sparse_init_nid populates
    PAGES_PER_SECTION struct pages and pfn_valid() is true for every pfn of an early section), so
    the legacy hole below 1 MiB and RAM ending mid-section are notes; sections added after boot
    are populated subsection by subsection (section_activate), so there it is an anomaly.
    """
    secs = present_sections(kernel)
    if not ram.ranges or not len(secs):
        return
    pps = kernel.pages_per_section
    sps = kernel.struct_page_size
    starts = np.array([r[0] for r in ram.ranges], dtype=np.int64)
    ends = np.array([r[1] for r in ram.ranges], dtype=np.int64)
    sec_start = secs.nr << kernel.pfn_section_shift
    sec_end = sec_start + pps
    _, inside = containing(starts, ends, sec_start, sec_end)
    cand = np.nonzero(~inside & secs.has(SECTION_HAS_MEM_MAP))[0]
    early = secs.has(SECTION_IS_EARLY)
    mapped = vmemmap_mapping(kernel)
    anomalies, notes = [], []
    for k in cand.tolist():
        s0, s1 = int(sec_start[k]), int(sec_end[k])
        total, where = 0, []
        for a, b in ram.holes(s0, s1):
            va_a = kernel.vmemmap_base + a * sps
            va_b = kernel.vmemmap_base + b * sps
            p0, p1 = (va_a + 4095) & ~4095, va_b & ~4095
            if p1 > p0:
                pages = np.arange(p0, p1, 4096, dtype=np.uint64)
                _, ok = mapped.translate(pages)
                n = int(np.count_nonzero(ok)) * 4096
                if n:
                    total += n
                    where.append("the legacy hole below 1 MiB" if b <= 0x100 else
                                 "the end of RAM" if a >= int(ends[-1]) else f"pfn {a:#x}-{b:#x}")
        if not total:
            continue
        item = (kernel.vmemmap_base + s0 * sps, kernel.vmemmap_base + s1 * sps,
                f"section {int(secs.nr[k])}: {total // 1024} KiB of mapped memmap describe only pfns that are not RAM"
                f" ({', '.join(where)})")
        if early[k]:
            notes.append((item[0], item[1], item[2] + ": early sections have the memmap of the whole section"))
        else:
            anomalies.append((item[0], item[1], item[2] + f" in a section added after boot (RAM: {', '.join(ram.sources)})"))
    _capped(audit, "hole_mapped", anomalies)
    _capped(audit, "hole_mapped", notes, NOTE, "boot_section_hole")


def _audit_subsections(kernel: "Kernel", audit: list[dict]) -> None:
    """Valid subsections (subsection_map bit set) whose memmap is not fully mapped."""
    secs = present_sections(kernel)
    m = vmemmap_mapping(kernel)
    lv = m.leaves
    valid = np.nonzero(secs.has(SECTION_HAS_MEM_MAP) & secs.usage_ok)[0]
    if not valid.size:
        return
    sps = kernel.struct_page_size
    per_sub = 512 * sps
    nsub = kernel.pages_per_section // 512
    if len(lv):
        s, e = split_runs(lv.va[1:] != m.ends[:-1])
        iv_start, iv_end = lv.va[s], m.ends[e - 1]
    else:
        iv_start = iv_end = np.zeros(0, np.uint64)
    base = np.uint64(kernel.vmemmap_base) + (secs.nr[valid].astype(np.uint64) << np.uint64(kernel.pfn_section_shift)) * np.uint64(sps)
    end = base + np.uint64(kernel.pages_per_section * sps)
    _, full = containing(iv_start, iv_end, base, end)
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


def _audit_aliases(kernel: "Kernel", writable: np.ndarray, consider: np.ndarray, audit: list[dict]) -> None:
    """Physical frames reachable from more than one vmemmap VA, among the leaves in ``consider``
    (HVO folios and read-only PTEs are audited by their own rules)."""
    lv = vmemmap_mapping(kernel).leaves
    sel = np.nonzero(consider)[0]
    if sel.size < 2:
        return
    size = lv.size
    order = sel[np.argsort(lv.phys[sel], kind="stable")]
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


def _overhead(kernel: "Kernel", nid: np.ndarray, prov: np.ndarray) -> dict:
    """Bytes of physical memory backing struct pages (each frame counted once, by node and by
    provenance) and of table pages; plus the kernel's own counters where it keeps them."""
    m = vmemmap_mapping(kernel)
    lv = m.leaves
    per: dict[int | None, dict] = {}

    def slot(n: int | None) -> dict:
        return per.setdefault(n, {"nid": n, "memmap_bytes": 0, "pagetable_bytes": 0,
                                  "by_provenance": {p: 0 for p in PROVENANCES}})

    if len(lv):
        size = lv.size
        order = np.argsort(lv.phys, kind="stable")
        ps = lv.phys[order].astype(np.int64)
        pe = ps + size[order].astype(np.int64)
        prev_end = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(pe)[:-1]))
        eff = np.maximum(0, pe - np.maximum(ps, prev_end))
        nn = nid[order]
        pp = prov[order]
        for v in np.unique(nn).tolist():
            d = slot(v if v >= 0 else None)
            on = nn == v
            d["memmap_bytes"] += int(eff[on].sum())
            for code, name in enumerate(PROVENANCES):
                d["by_provenance"][name] += int(eff[on & (pp == code)].sum())
    if lv.tables:
        tn = m.pfn_nids(np.array(lv.tables, dtype=np.uint64) >> np.uint64(12))
        for v in tn.tolist():
            slot(v if v >= 0 else None)["pagetable_bytes"] += 4096
    nodes = sorted(per.values(), key=lambda d: (d["nid"] is None, d["nid"] or 0))
    total = {"memmap_bytes": sum(d["memmap_bytes"] for d in nodes),
             "pagetable_bytes": sum(d["pagetable_bytes"] for d in nodes),
             "by_provenance": {p: sum(d["by_provenance"][p] for d in nodes) for p in PROVENANCES}}
    from .vmstat import memmap_counters

    counters = memmap_counters(kernel)
    bp = total["by_provenance"]
    counters["expected_boot_pages"] = bp["boot"] // 4096
    counters["expected_pages"] = (bp["hotplug"] + bp["self_hosted"] + bp["hvo"]) // 4096
    return {"total": total, "nodes": nodes, "kernel_counters": counters}
