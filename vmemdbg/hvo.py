"""HugeTLB Vmemmap Optimization (HVO) per hugetlb folio, from the page tables and struct pages.

With ``hugetlb_free_vmemmap=on`` hugetlb_vmemmap_optimize() (mm/hugetlb_vmemmap.c) splits the
vmemmap PMDs of a huge page into PTEs (vmemmap_split_pmd), keeps the head vmemmap page (since
5.18; two pages before) and remaps every other vmemmap page of the folio read-only onto it
(vmemmap_remap_pte), freeing the original frames. The quirks per kernel are in
:mod:`vmemdbg.versions` (``hvo_reserved_pages``, ``folio_order_location``).

Without DWARF the folios are found from that shape: a writable PTE leaf whose frame is also mapped
read-only is the shared page; the struct page at the start of the folio must have PG_head
(NUMBER(PG_head_mask)) and an hstate order (9: 2 MiB, 18: 1 GiB) read from its first tail page.
The folio's extent comes from that order, not from the tails, so a tail that is writable or maps
another frame is a violation of *that* folio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .intervals import containing
from .pagetable import Leaves
from .versions import (
    HPG_VMEMMAP_OPTIMIZED_BIT,
    HSTATE_ORDERS,
    folio_order_location,
    hvo_reserved_pages,
)
from .vmemmap import vmemmap_mapping

if TYPE_CHECKING:
    from .kernel import Kernel

#: Violations listed per folio at most (the count is always complete).
VIOLATION_CAP = 16


@dataclass
class HvoResult:
    """Folios, per-hstate totals and the leaf indices that belong to optimised folios."""

    folios: list[dict] = field(default_factory=list)
    hstates: list[dict] = field(default_factory=list)
    leaf_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    order_source: str = ""


def _gather(kernel: "Kernel", vas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u64 at each vmemmap VA (through the page tables); ok False where unmapped or not dumped."""
    phys, ok = vmemmap_mapping(kernel).translate(vas)
    vals = np.zeros(len(vas), np.uint64)
    sel = np.nonzero(ok)[0]
    if sel.size:
        v, ok2 = kernel.source.gather_u64(phys[sel])
        vals[sel] = v
        ok[sel] = ok2
    return vals, ok


def find_hvo(kernel: "Kernel", writable: np.ndarray) -> HvoResult:
    """Every HVO-optimised hugetlb folio, its tails' mappings and their violations."""
    lv = vmemmap_mapping(kernel).leaves
    res = HvoResult(leaf_mask=np.zeros(len(lv), bool))
    heads = _folio_heads(kernel, lv, writable, res)
    if heads is None:
        return res
    tails = _folio_tails(kernel, lv, writable, heads)
    res.leaf_mask = tails.leaf_mask
    _add_folios(kernel, res, heads, tails)
    return res


@dataclass
class _Heads:
    """Accepted folio heads, by folio (arrays of equal length)."""

    head_va: np.ndarray  # vmemmap VA of the head struct page
    order: np.ndarray  # folio order (an hstate's)
    npages: np.ndarray  # vmemmap pages the folio's struct pages span
    shared_leaf: np.ndarray  # index of the writable PTE leaf holding the head (the shared page)
    flag: np.ndarray  # HPG_vmemmap_optimized set in the head's private word


def _folio_heads(kernel: "Kernel", lv: Leaves, writable: np.ndarray, res: HvoResult) -> _Heads | None:
    """Writable PTE leaves whose frame read-only PTEs also map, whose first struct page is a
    PG_head of an hstate order: the heads of optimised folios (None if there are none). Sets
    ``res.order_source``."""
    if not len(lv):
        return None
    pte = lv.shift == 12
    ro = pte & ~writable
    if not ro.any():
        return None
    shared = np.unique(lv.phys[ro])
    cand = np.nonzero(pte & writable & np.isin(lv.phys, shared))[0]
    if not cand.size:
        return None
    sps = kernel.struct_page_size
    reserve = hvo_reserved_pages(kernel.version)
    head_va = lv.va[cand] - np.uint64((reserve - 1) * 4096)
    info = kernel.info
    order_off, order_mask, res.order_source = folio_order_location(
        kernel.version, {"page_size": sps, "page.compound_order": info.offset("page.compound_order"),
                         "folio._folio_order": info.offset("folio._folio_order")})
    head_mask = info.number("PG_head_mask") or 0
    priv_off = info.offset("page.private") or 40
    flags, ok_f = _gather(kernel, head_va)
    order_word, ok_o = _gather(kernel, head_va + np.uint64(order_off & ~7))
    priv, ok_p = _gather(kernel, head_va + np.uint64(priv_off))
    order = ((order_word >> np.uint64((order_off & 7) * 8)) & np.uint64(order_mask)).astype(np.int64)
    is_head = ok_f & ok_o & ((flags & np.uint64(head_mask)) != 0) & np.isin(order, list(HSTATE_ORDERS))
    # Accept heads in VA order; a candidate inside the previous folio is one of its writable tails
    # (it maps the shared page, so its "struct page" reads as that folio's head).
    idx = np.nonzero(is_head)[0]
    npages_all = ((np.int64(1) << order[idx]) * sps) // 4096
    keep = np.zeros(idx.size, bool)
    covered_to = 0
    for n, (h, npg) in enumerate(zip(head_va[idx].tolist(), npages_all.tolist())):
        if h >= covered_to:
            keep[n] = True
            covered_to = h + npg * 4096
    idx, npages = idx[keep], npages_all[keep]
    if not idx.size:
        return None
    flag = ok_p[idx] & ((priv[idx] >> np.uint64(HPG_VMEMMAP_OPTIMIZED_BIT)) & np.uint64(1) == 1)
    return _Heads(head_va[idx], order[idx], npages, cand[idx], flag)


@dataclass
class _Tails:
    """Every tail vmemmap page of every folio and how it is mapped (arrays of equal length)."""

    leaf_mask: np.ndarray  # per leaf: inside an optimised folio's vmemmap
    first_tail: np.ndarray  # per folio: VA of its first tail vmemmap page
    counts: np.ndarray  # per folio: number of tail vmemmap pages
    owner: np.ndarray  # per tail: its folio
    va: np.ndarray
    phys: np.ndarray
    mapped: np.ndarray
    pte: np.ndarray
    rw: np.ndarray
    on_shared: np.ndarray  # maps the folio's shared page


def _folio_tails(kernel: "Kernel", lv: Leaves, writable: np.ndarray, h: _Heads) -> _Tails:
    """The leaves of every folio's vmemmap (a difference array over leaf indices) and each tail
    page's translation, for all folios at once."""
    frame = lv.phys[h.shared_leaf]
    ext_end = h.head_va + (h.npages * 4096).astype(np.uint64)
    delta = np.zeros(len(lv) + 1, np.int64)
    np.add.at(delta, np.searchsorted(lv.va, h.head_va), 1)
    np.add.at(delta, np.searchsorted(lv.va, ext_end), -1)
    first_tail = lv.va[h.shared_leaf] + np.uint64(4096)
    counts = ((ext_end - first_tail) // np.uint64(4096)).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    step = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    tails = first_tail[owner] + step.astype(np.uint64) * np.uint64(4096)
    jc, mapped = containing(lv.va, vmemmap_mapping(kernel).ends, tails)
    t_phys = lv.phys[jc] + (tails - lv.va[jc])
    return _Tails(np.cumsum(delta)[:-1] > 0, first_tail, counts, owner, tails, t_phys, mapped,
                  lv.shift[jc] == 12, writable[jc], t_phys == frame[owner])


def _violations(kernel: "Kernel", h: _Heads, t: _Tails, frame: np.ndarray) -> list[list[dict]]:
    """Per folio, its tails that are not read-only PTEs onto its shared page (capped per kind)."""
    sps, base = kernel.struct_page_size, kernel.vmemmap_base
    violations: list[list[dict]] = [[] for _ in range(len(h.head_va))]
    for kind, mask, what in (
            ("hvo_tail_unmapped", ~t.mapped, "is not mapped"),
            ("hvo_tail_not_pte", t.mapped & ~t.pte, "is not a 4 KiB PTE (PMD not split)"),
            ("hvo_writable_tail", t.mapped & t.pte & t.rw, "is writable"),
            ("hvo_wrong_alias", t.mapped & t.pte & ~t.on_shared, "does not map the folio's shared page")):
        bad = np.nonzero(mask)[0]
        for f in np.unique(t.owner[bad]).tolist():
            mine = bad[t.owner[bad] == f]
            o = int(h.order[f])
            for k in mine[:VIOLATION_CAP].tolist():
                extra = f" {int(frame[f]):#x} (maps {int(t.phys[k]):#x})" if kind == "hvo_wrong_alias" else ""
                violations[f].append({"kind": kind, "va": int(t.va[k]),
                                      "detail": f"tail vmemmap page {int(t.va[k]):#x} of the {HSTATE_ORDERS[o]} folio at pfn "
                                                f"{(int(h.head_va[f]) - base) // sps:#x} {what}{extra}"})
            if mine.size > VIOLATION_CAP:
                violations[f].append({"kind": kind, "va": int(t.va[mine[VIOLATION_CAP]]),
                                      "detail": f"... and {mine.size - VIOLATION_CAP} more {kind} tails"})
    return violations


def _add_folios(kernel: "Kernel", res: HvoResult, h: _Heads, t: _Tails) -> None:
    """One entry per folio and the per-hstate totals."""
    lv = vmemmap_mapping(kernel).leaves
    sps, base = kernel.struct_page_size, kernel.vmemmap_base
    frame = lv.phys[h.shared_leaf]
    good = np.bincount(t.owner, weights=t.mapped & t.pte & ~t.rw & t.on_shared,
                       minlength=len(h.head_va)).astype(np.int64)
    violations = _violations(kernel, h, t, frame)
    nids = vmemmap_mapping(kernel).pfn_nids((h.head_va - np.uint64(base)) // np.uint64(sps))
    for f, (hv, o, fr, sva, npg, cnt, g, nid, fl) in enumerate(zip(
            h.head_va.tolist(), h.order.tolist(), frame.tolist(), lv.va[h.shared_leaf].tolist(), h.npages.tolist(),
            t.counts.tolist(), good.tolist(), nids.tolist(), h.flag.tolist())):
        res.folios.append({
            "head_pfn": (hv - base) // sps, "order": o, "hstate": HSTATE_ORDERS[o], "nid": nid if nid >= 0 else None,
            "head_page": hv, "shared_page_phys": fr, "shared_page_va": sva, "vmemmap_pages": npg, "tails": cnt,
            "tails_remapped": g, "saved_pages": g, "vmemmap_optimized_flag": bool(fl), "violations": violations[f]})
    per: dict[int, dict] = {}
    for folio in res.folios:
        d = per.setdefault(folio["order"], {"order": folio["order"], "hstate": folio["hstate"], "folios": 0,
                                            "saved_pages": 0, "saved_bytes": 0, "violations": 0})
        d["folios"] += 1
        d["saved_pages"] += folio["saved_pages"]
        d["saved_bytes"] += folio["saved_pages"] * 4096
        d["violations"] += len(folio["violations"])
    res.hstates = [per[o] for o in sorted(per)]
