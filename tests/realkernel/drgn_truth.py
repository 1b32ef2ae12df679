#!/usr/bin/env python3
"""Independent ground truth for vmemdbg, computed with drgn from a real vmcore.

Usage: ``drgn_truth.py DUMP VMLINUX -o truth.json``

DUMP may be a full ELF dump (QEMU ``dump-guest-memory``, paging=false) or a
kdump-compressed file (QEMU ``kdump-zlib``; QEMU does not record the
architecture there, so the x86-64 platform is passed to drgn explicitly).

Everything below is read through drgn and its own helpers
(``drgn.helpers.linux.mmzone`` / ``drgn.helpers.linux.mm``) with the kernel's
DWARF.  The only hand-written logic is

* page_to_nid(): ``(page->flags >> NODES_PGSHIFT) & NODES_MASK`` where
  NODES_SHIFT = log2(len(node_data)) and NODES_PGSHIFT = 64 - NODES_SHIFT
  (x86-64 SPARSEMEM_VMEMMAP: SECTIONS_WIDTH = 0, KASAN_TAG_WIDTH = 0), cross
  checked against every pgdat's [node_start_pfn, +node_spanned_pages);
* a small 4/5-level page-table walk (to get the leaf level and RW bit, which
  drgn does not expose), cross-checked page by page against drgn's
  ``follow_phys()``.

Output shapes follow docs/json.md (``summary``, ``sections``, ``vmemmap``
runs and ``explain``), plus informational ``memblock`` and ``e820`` parts.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import drgn
from drgn import FaultError, Object, Program
from drgn.helpers.linux.hugetlb import for_each_hstate
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.mm import follow_phys
from drgn.helpers.linux.nodemask import for_each_online_node
from drgn.helpers.linux.xarray import xa_for_each
from drgn.helpers.linux.mmzone import (
    NODE_DATA,
    decode_section_flags,
    early_section,
    for_each_present_section,
    online_section,
    section_decode_mem_map,
    valid_section,
)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
START_KERNEL_MAP = 0xFFFFFFFF80000000
PAGEBLOCK_ORDER = 9  # x86-64: HUGETLB_PAGE_ORDER (macro, not in DWARF)
_PTE_P, _PTE_RW, _PTE_PSE = 1 << 0, 1 << 1, 1 << 7
_FRAME_MASK = {"pte": 0x000FFFFFFFFFF000, "pmd": 0x000FFFFFFFE00000, "pud": 0x000FFFFFC0000000}

MIGRATETYPE_NAMES = {
    "MIGRATE_UNMOVABLE": "Unmovable",
    "MIGRATE_MOVABLE": "Movable",
    "MIGRATE_RECLAIMABLE": "Reclaimable",
    "MIGRATE_HIGHATOMIC": "HighAtomic",
    "MIGRATE_CMA": "CMA",
    "MIGRATE_ISOLATE": "Isolate",
}


class TruthError(RuntimeError):
    """Raised with a one-line explanation when the dump cannot be used."""


# --------------------------------------------------------------------------- program


def open_program(dump: Path, vmlinux: Path) -> Program:
    """Open ``dump`` with ``vmlinux`` debug info; kdump files get an explicit x86-64 platform."""
    with open(dump, "rb") as f:
        magic = f.read(16)
    if magic.startswith(b"\x7fELF"):
        prog = Program()
    else:  # kdump-compressed ("KDUMP   ") or makedumpfile flattened format
        prog = Program(
            drgn.Platform(
                drgn.Architecture.X86_64,
                drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN,
            )
        )
    prog.set_core_dump(str(dump))
    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        raise TruthError(f"{dump}: drgn does not recognise a Linux kernel core (no VMCOREINFO?)")
    prog.load_debug_info([str(vmlinux)])
    return prog


def vmcoreinfo(prog: Program) -> dict[str, str]:
    """The VMCOREINFO note as a dict."""
    text = prog["VMCOREINFO"].string_().decode(errors="replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class Kernel:
    """Cached constants and small primitives for one program."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.vmci = vmcoreinfo(prog)
        try:
            self.l5 = bool(prog["__pgtable_l5_enabled"].value_())
        except KeyError:  # CONFIG_X86_5LEVEL=n (Debian's 5.10 cloud kernel): always 4-level
            self.l5 = False
        self.levels = 5 if self.l5 else 4
        self.struct_page_size = drgn.sizeof(prog.type("struct page"))
        self.vmemmap_base = prog["vmemmap_base"].value_()
        self.page_offset_base = prog["page_offset_base"].value_()
        # phys_base is defined in head_64.S: a symbol without DWARF type. It is negative when KASLR
        # puts the kernel lower in physical memory than its link address: signed, as VMCOREINFO
        # prints it ("NUMBER(%s)=%ld", include/linux/crash_core.h VMCOREINFO_NUMBER)
        raw = prog.read_u64(prog.symbol("phys_base").address)
        self.phys_base = raw - (1 << 64) if raw >> 63 else raw
        if "NUMBER(phys_base)" in self.vmci and int(self.vmci["NUMBER(phys_base)"]) != self.phys_base:
            raise TruthError("phys_base symbol disagrees with VMCOREINFO NUMBER(phys_base)")
        self.init_top_pgt = prog.symbol("init_top_pgt").address  # head_64.S, no DWARF
        self.sme_mask = prog["sme_me_mask"].value_()
        self.max_numnodes = prog["node_data"].type_.length
        self.nodes_shift = int(math.log2(self.max_numnodes))
        self.nodes_pgshift = 64 - self.nodes_shift
        self.nodes_mask = self.max_numnodes - 1
        self.pfn_section_shift = prog["SECTION_SIZE_BITS"].value_() - PAGE_SHIFT
        self.pages_per_section = 1 << self.pfn_section_shift
        self.mm = prog["init_mm"].address_of_()
        # PG_vmemmap_self_hosted exists since v6.0 ("mm: memory_hotplug: make hugetlb_optimize_vmemmap
        # compatible with memmap_on_memory", Muchun Song, 2022); older kernels have no such flag
        try:
            self.pg_self_hosted: int | None = prog["PG_vmemmap_self_hosted"].value_()
        except KeyError:
            self.pg_self_hosted = None
        self.table_pages: set[int] = set()
        mt = prog.type("enum migratetype")
        self.migratetype = {}
        for e in mt.enumerators:  # duplicates (PCPTYPES, TYPES) are skipped
            if e.name in MIGRATETYPE_NAMES:
                self.migratetype[e.value] = MIGRATETYPE_NAMES[e.name]

    # -- struct page
    def page_addr(self, pfn: int) -> int:
        """``pfn_to_page(pfn)`` as an address (drgn's vmemmap + pfn)."""
        return self.vmemmap_base + pfn * self.struct_page_size

    def page_to_nid_addr(self, page: int) -> int | None:
        """Node id from ``page->flags`` of the struct page at ``page`` (None if unreadable)."""
        try:
            flags = self.prog.read_u64(page)
        except FaultError:
            return None
        return (flags >> self.nodes_pgshift) & self.nodes_mask

    def pfn_nid(self, pfn: int) -> int | None:
        """page_to_nid(pfn_to_page(pfn))."""
        return self.page_to_nid_addr(self.page_addr(pfn))

    # -- page tables
    def kernel_sym_phys(self, va: int) -> int:
        """Physical address of a kernel-image symbol: ``va - __START_KERNEL_map + phys_base``."""
        return va - START_KERNEL_MAP + self.phys_base

    def walk(self, va: int) -> dict[str, Any]:
        """Walk init_top_pgt for ``va`` with physical reads.

        Returns {"path": [...], "leaf": level|None, "phys": int|None, "writable": bool|None}.
        ``writable`` is the AND of the RW bits of every entry on the path (x86 semantics).
        """
        names = ["pgd", "p4d", "pud", "pmd", "pte"] if self.l5 else ["pgd", "pud", "pmd", "pte"]
        shifts = [48, 39, 30, 21, 12] if self.l5 else [39, 30, 21, 12]
        table = self.kernel_sym_phys(self.init_top_pgt)
        path = []
        rw = True
        for depth, (name, shift) in enumerate(zip(names, shifts)):
            idx = (va >> shift) & 511
            entry = self.prog.read_u64(table + idx * 8, True)
            path.append({"level": name, "table": table, "index": idx, "entry": entry})
            if depth > 0:
                self.table_pages.add(table)
            if not entry & _PTE_P:
                return {"path": path, "leaf": None, "phys": None, "writable": None}
            rw = rw and bool(entry & _PTE_RW)
            if name == "pte" or (name in ("pud", "pmd") and entry & _PTE_PSE):
                frame = entry & _FRAME_MASK[name] & ~self.sme_mask
                return {"path": path, "leaf": name, "phys": frame | (va & ((1 << shift) - 1)),
                        "writable": rw}
            table = entry & _FRAME_MASK["pte"] & ~self.sme_mask
        raise AssertionError("unreachable")

    def follow(self, va: int) -> int | None:
        """drgn's follow_phys(init_mm, va), None if unmapped."""
        try:
            return follow_phys(self.mm, va).value_()
        except FaultError:
            return None


# --------------------------------------------------------------------------- parts


def section_flag_names(section: Object) -> list[str]:
    """drgn's decode_section_flags() split, SECTION_ prefix removed (bit order)."""
    s = decode_section_flags(section)
    return [f.removeprefix("SECTION_") for f in s.split("|")] if s else []


def flags_layout(prog: Program) -> str:
    """Describe the section flag encoding found in DWARF."""
    try:
        t = prog["SECTION_MARKED_PRESENT_BIT"].type_
    except KeyError:
        return "macro (pre-6.0)"
    return "enum:" + ",".join(f"{e.name.removesuffix('_BIT').removeprefix('SECTION_')}={e.value}"
                              for e in t.enumerators)


def pageblock_words(k: Kernel, usage: Object) -> list[int]:
    """The 4 (SECTION_BLOCKFLAGS_BITS/64) unsigned longs of usage->pageblock_flags."""
    nbits = (1 << (k.pfn_section_shift - PAGEBLOCK_ORDER)) * nr_pageblock_bits(k.prog)
    return [usage.pageblock_flags[i].value_() for i in range((nbits + 63) // 64)]


def nr_pageblock_bits(prog: Program) -> int:
    """NR_PAGEBLOCK_BITS: an enumerator of enum pageblock_bits up to 6.15; since 6.16 a macro,
    roundup_pow_of_two(__NR_PAGEBLOCK_BITS) (include/linux/pageblock-flags.h), not in DWARF."""
    try:
        return prog["NR_PAGEBLOCK_BITS"].value_()
    except KeyError:
        return 1 << (prog["__NR_PAGEBLOCK_BITS"].value_() - 1).bit_length()


def decode_migratetypes(k: Kernel, words: list[int]) -> list[str]:
    """Migratetype name of each pageblock (bits 0..2 of each NR_PAGEBLOCK_BITS group)."""
    bits = nr_pageblock_bits(k.prog)
    out = []
    for i in range(len(words) * 64 // bits):
        bit = i * bits
        v = (words[bit // 64] >> (bit % 64)) & 0x7
        out.append(k.migratetype.get(v, f"?{v}"))
    return out


def collect_sections(k: Kernel) -> list[dict[str, Any]]:
    """One record per present section, docs/json.md ``sections`` shape."""
    prog = k.prog
    per_root = prog["SECTIONS_PER_ROOT"].value_()
    out = []
    for nr, sec in for_each_present_section(prog):
        mem_map = section_decode_mem_map(sec, nr).value_()
        usage = sec.usage
        rec: dict[str, Any] = {
            "nr": nr,
            "root": nr // per_root,
            "coded_mem_map": sec.section_mem_map.value_(),
            "mem_map": mem_map,
            "start_pfn": nr << k.pfn_section_shift,
            "flags": section_flag_names(sec),
            "nid": k.page_to_nid_addr(mem_map) if valid_section(sec) else None,
            "usage": usage.value_(),
            "subsection_map": None,
            "pageblock_flags": None,
            "migratetypes": None,
        }
        if usage.value_():
            try:
                rec["subsection_map"] = usage.subsection_map[0].value_()
                words = pageblock_words(k, usage)
                rec["pageblock_flags"] = words
                rec["migratetypes"] = decode_migratetypes(k, words)
            except FaultError:
                pass
        out.append(rec)
    return out


def hugetlb_folios(k: Kernel) -> list[dict[str, Any]]:
    """Every hugetlb folio of every hstate (free lists per node and the active list), with
    HPageVmemmapOptimized and the follow_phys() of each of its vmemmap pages. The lists link
    ``page->lru`` (6.1) or ``folio->lru`` (6.x), the same offset of the head struct page."""
    prog = k.prog
    try:
        opt_bit: int | None = prog["HPG_vmemmap_optimized"].value_()
    except KeyError:  # before HVO (f41f2ed43ca5, v5.14) no folio is ever optimised
        opt_bit = None
    out = []
    for h in for_each_hstate(prog):
        order = h.order.value_()
        heads = []
        for nid in range(len(h.hugepage_freelists)):
            heads += [e.value_() for e in list_for_each_entry("struct page", h.hugepage_freelists[nid].address_of_(), "lru")]
        heads += [e.value_() for e in list_for_each_entry("struct page", h.hugepage_activelist.address_of_(), "lru")]
        npages = ((1 << order) * k.struct_page_size) // PAGE_SIZE
        for head in sorted(set(heads)):
            private = Object(prog, "struct page", address=head).private.value_()
            vm = [k.follow(head + i * PAGE_SIZE) for i in range(npages)]
            walks = [k.walk(head + i * PAGE_SIZE) for i in range(npages)]
            out.append({"head_pfn": (head - k.vmemmap_base) // k.struct_page_size, "order": order,
                        "vmemmap_optimized": opt_bit is not None and bool(private >> opt_bit & 1), "head_page": head,
                        "shared_page_phys": vm[0], "vmemmap_pages": npages,
                        "tails_remapped": sum(1 for i in range(1, npages)
                                              if vm[i] == vm[0] and walks[i]["leaf"] == "pte" and not walks[i]["writable"])})
    return out


def _has_member(prog: Program, type_name: str, member: str) -> bool:
    try:
        prog.type(type_name).member(member)
        return True
    except LookupError:
        return False


def page_provenance(k: Kernel, hvo_pages: set[int], va: int, phys: int, early: bool) -> str:
    """Who built the vmemmap page at ``va``: HVO folio, PageVmemmapSelfHosted backing frame,
    a section added after boot (not early_section), or boot."""
    if va in hvo_pages:
        return "hvo"
    if not early:
        flags = k.prog.read_u64(k.page_addr(phys >> PAGE_SHIFT))
        if k.pg_self_hosted is not None and flags >> k.pg_self_hosted & 1:
            return "self_hosted"
        return "hotplug"
    return "boot"


def collect_vmemmap(k: Kernel, sections: list[dict[str, Any]], folios: list[dict[str, Any]]) -> dict[str, Any]:
    """Coalesced runs of the memmap of every present section, 4 KiB page by page, with provenance."""
    hvo_pages = {f["head_page"] + i * PAGE_SIZE for f in folios if f["vmemmap_optimized"]
                 for i in range(f["vmemmap_pages"])}
    runs: list[dict[str, Any]] = []
    unmapped: list[dict[str, int]] = []
    mismatches: list[dict[str, Any]] = []
    span = k.pages_per_section * k.struct_page_size
    k.table_pages.clear()
    npages = 0
    for s in sections:
        if not s["mem_map"] or "HAS_MEM_MAP" not in s["flags"]:
            continue
        early = "IS_EARLY" in s["flags"]
        for va in range(s["mem_map"], s["mem_map"] + span, PAGE_SIZE):
            npages += 1
            phys = k.follow(va)
            w = k.walk(va)
            if w["phys"] != phys:
                mismatches.append({"va": va, "follow_phys": phys, "walk": w["phys"]})
            if phys is None:
                if unmapped and unmapped[-1]["end"] == va:
                    unmapped[-1]["end"] = va + PAGE_SIZE
                else:
                    unmapped.append({"start": va, "end": va + PAGE_SIZE})
                continue
            nid = k.pfn_nid(phys >> PAGE_SHIFT)
            prov = page_provenance(k, hvo_pages, va, phys, early)
            last = runs[-1] if runs else None
            if (last and last["end"] == va and last["phys"] + (va - last["start"]) == phys
                    and last["level"] == w["leaf"] and last["writable"] == w["writable"]
                    and last["nid"] == nid and last["provenance"] == prov):
                last["end"] = va + PAGE_SIZE
            else:
                runs.append({"start": va, "end": va + PAGE_SIZE, "level": w["leaf"],
                             "writable": w["writable"], "phys": phys, "nid": nid, "provenance": prov})
    for r in runs:
        r["start_pfn"] = (r["start"] - k.vmemmap_base) // k.struct_page_size
        r["end_pfn"] = (r["end"] - k.vmemmap_base) // k.struct_page_size
    return {"pages_checked": npages, "runs": runs, "unmapped": unmapped,
            "walk_mismatches": mismatches, "table_pages": sorted(k.table_pages)}


def leaf_counts(k: Kernel, runs: list[dict[str, Any]]) -> dict[str, int]:
    """Number of distinct PMD / PTE leaves covering the runs."""
    pmd: set[int] = set()
    pte = 0
    for r in runs:
        if r["level"] == "pmd":
            pmd.update(range(r["start"] >> 21, (r["end"] - 1 >> 21) + 1))
        elif r["level"] == "pte":
            pte += (r["end"] - r["start"]) // PAGE_SIZE
    return {"pmd_leaves": len(pmd), "pte_leaves": pte}


def collect_summary(k: Kernel, sections: list[dict[str, Any]], vm: dict[str, Any]) -> dict[str, Any]:
    """docs/json.md ``summary`` shape (kernel, sparse, counts, memmap)."""
    prog = k.prog
    roots_addr = prog["mem_section"].value_()
    nr_roots = prog["NR_SECTION_ROOTS"].value_()
    per_root = prog["SECTIONS_PER_ROOT"].value_()
    raw = prog.read(roots_addr, nr_roots * 8)
    roots_present = sum(1 for i in range(nr_roots) if int.from_bytes(raw[i * 8:i * 8 + 8], "little"))
    usage_t = prog.type("struct mem_section_usage")
    usemap = (1 << (k.pfn_section_shift - PAGEBLOCK_ORDER)) * nr_pageblock_bits(prog) // 8
    has_rcu = any(m.name == "rcu" for m in usage_t.members)
    try:
        vmalloc_base: int | None = prog["vmalloc_base"].value_()
    except KeyError:
        vmalloc_base = None
    present = [sec for _, sec in for_each_present_section(prog)]
    counts = {
        "present": len(present),
        "valid": sum(valid_section(sec) for sec in present),
        "online": sum(online_section(sec) for sec in present),
        "early": sum(early_section(sec) for sec in present),
        "highest_present": prog["__highest_present_section_nr"].value_(),
    }
    lc = leaf_counts(k, vm["runs"])
    return {
        "kernel": {
            "release": prog["UTS_RELEASE"].string_().decode(),
            "kaslr_offset": int(k.vmci.get("KERNELOFFSET", "0"), 16),
            "phys_base": k.phys_base,
            "page_offset_base": k.page_offset_base,
            "vmemmap_base": k.vmemmap_base,
            "vmalloc_base": vmalloc_base,
            "pgtable_levels": k.levels,
            "page_size": prog["PAGE_SIZE"].value_(),
            "struct_page_size": k.struct_page_size,
            "init_top_pgt": k.init_top_pgt,
            "sme_mask": k.sme_mask,
        },
        "sparse": {
            "section_size_bits": prog["SECTION_SIZE_BITS"].value_(),
            "max_physmem_bits": prog["MAX_PHYSMEM_BITS"].value_(),
            "nr_mem_sections": nr_roots * per_root,
            "mem_section_size": drgn.sizeof(prog.type("struct mem_section")),
            "sections_per_root": per_root,
            "nr_section_roots": nr_roots,
            "roots_addr": roots_addr,
            "roots_present": roots_present,
            "usage_size": drgn.sizeof(usage_t) + usemap,
            "usage_layout": "rcu_head+subsection_map+pageblock_flags" if has_rcu
                            else "subsection_map+pageblock_flags",
            "flags_layout": flags_layout(prog),
            "nodes_shift": k.nodes_shift,
        },
        "counts": counts,
        "memmap": {
            "mapped_bytes": sum(r["end"] - r["start"] for r in vm["runs"]),
            **lc,
            # distinct page-table pages below the top level visited while walking the memmap
            "pagetable_bytes": len(vm["table_pages"]) * PAGE_SIZE,
        },
        "unreadable": [],
    }


def explain_one(k: Kernel, sections: dict[int, dict[str, Any]], label: str, kind: str,
                value: int) -> dict[str, Any]:
    """docs/json.md ``explain`` shape for one input value of the given kind."""
    if kind == "pfn":
        pfn = value
    elif kind == "phys":
        pfn = value >> PAGE_SHIFT
    elif kind == "direct":
        pfn = (value - k.page_offset_base) >> PAGE_SHIFT
    elif kind == "page":
        pfn = (value - k.vmemmap_base) // k.struct_page_size
    else:
        raise ValueError(kind)
    phys = value if kind == "phys" else (value - k.page_offset_base if kind == "direct"
                                         else pfn << PAGE_SHIFT)
    page = k.page_addr(pfn)
    nr = pfn >> k.pfn_section_shift
    sec = sections.get(nr)
    sub = (pfn & (k.pages_per_section - 1)) >> 9  # SUBSECTION_SHIFT 21 - PAGE_SHIFT
    pb = (pfn & (k.pages_per_section - 1)) >> PAGEBLOCK_ORDER
    w = k.walk(page)
    fp = k.follow(page)
    return {
        "input": label,
        "kind": kind,
        "pfn": pfn,
        "phys": phys,
        "direct_map": k.page_offset_base + phys,
        "page": page,
        "section": {"nr": nr, "flags": sec["flags"] if sec else [],
                    "present": sec is not None,
                    "valid": bool(sec and "HAS_MEM_MAP" in sec["flags"])},
        "subsection": sub,
        "subsection_valid": bool(sec and sec["subsection_map"] is not None
                                 and sec["subsection_map"] >> sub & 1),
        "pageblock": pb,
        "migratetype": sec["migratetypes"][pb] if sec and sec["migratetypes"] else None,
        "path": w["path"],
        "leaf": w["leaf"],
        "page_phys": fp,
        "page_nid": k.pfn_nid(fp >> PAGE_SHIFT) if fp is not None else None,
        "nid": k.pfn_nid(pfn),
        "walk_matches_follow_phys": w["phys"] == fp,
    }


def collect_explain(k: Kernel, sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """~8 sample addresses of different kinds."""
    by_nr = {s["nr"]: s for s in sections}
    last = sections[-1]
    samples: list[tuple[str, str, int]] = [
        ("pfn:0x0", "pfn", 0),
        ("pfn:0x1000", "pfn", 0x1000),
        (f"pfn:{last['start_pfn'] + 0x123:#x}", "pfn", last["start_pfn"] + 0x123),
    ]
    node1 = node_spans(k.prog)
    if len(node1) > 1:
        p = node1[1]["start_pfn"]
        samples.append((f"pfn:{p:#x}", "pfn", p))
    samples += [
        ("phys:0x1234567", "phys", 0x1234567),
        (f"direct:{k.page_offset_base + 0x2345678:#x}", "direct", k.page_offset_base + 0x2345678),
        (f"page:{k.page_addr(0x3456) + 8:#x}", "page", k.page_addr(0x3456) + 8),
        (f"phys:{(last['start_pfn'] << PAGE_SHIFT) + 0x10000:#x}", "phys",
         (last["start_pfn"] << PAGE_SHIFT) + 0x10000),
    ]
    return [explain_one(k, by_nr, *s) for s in samples]


def node_spans(prog: Program) -> list[dict[str, int]]:
    """Online pgdats: nid, node_start_pfn, node_spanned_pages, node_present_pages."""
    out = []
    for pgdat in prog["node_data"]:
        if not pgdat.value_():
            continue
        out.append({"nid": pgdat.node_id.value_(), "start_pfn": pgdat.node_start_pfn.value_(),
                    "spanned_pages": pgdat.node_spanned_pages.value_(),
                    "present_pages": pgdat.node_present_pages.value_()})
    return out


def check_nids(k: Kernel, sections: list[dict[str, Any]], nodes: list[dict[str, int]]) -> list[str]:
    """Cross-check page_to_nid (our NODES_PGSHIFT) against the pgdat spans."""
    problems = []
    for s in sections:
        if s["nid"] is None:
            continue
        pfn = s["start_pfn"]
        owners = [n["nid"] for n in nodes if n["start_pfn"] <= pfn < n["start_pfn"] + n["spanned_pages"]]
        if owners and s["nid"] not in owners:
            problems.append(f"section {s['nr']}: page nid {s['nid']} not in pgdat owners {owners}")
    return problems


def collect_memblock(prog: Program) -> dict[str, Any]:
    """memblock.memory / memblock.reserved (frozen at discard time) plus state indicators."""
    mb = prog["memblock"]

    def regions(t: Object, static: str) -> dict[str, Any]:
        cnt = t.cnt.value_()
        ptr = t.regions.value_()
        res: dict[str, Any] = {"cnt": cnt, "max": t.max.value_(), "total_size": t.total_size.value_(),
                               "regions_addr": ptr,
                               "regions_is_static": ptr == prog[static].address_, "regions": []}
        try:
            for i in range(cnt):
                r = t.regions[i]
                res["regions"].append({"base": r.base.value_(), "size": r.size.value_(),
                                       "flags": r.flags.value_(), "nid": r.nid.value_()})
        except FaultError as e:
            res["error"] = str(e)
        return res

    out: dict[str, Any] = {
        "bottom_up": bool(mb.bottom_up.value_()),
        "current_limit": mb.current_limit.value_(),
        "memory": regions(mb.memory, "memblock_memory_init_regions"),
        "reserved": regions(mb.reserved, "memblock_reserved_init_regions"),
    }
    try:
        out["memblock_memory"] = prog["memblock_memory"].value_()
    except KeyError:
        out["memblock_memory"] = None
    ss = prog["system_state"]
    out["system_state"] = {"value": ss.value_(), "name": ss.format_(type_name=False)}
    return out


def collect_e820(prog: Program) -> list[dict[str, int]]:
    """Entries of *e820_table."""
    t = prog["e820_table"]
    return [{"addr": e.addr.value_(), "size": e.size.value_(), "type": e.type.value_()}
            for e in (t.entries[i] for i in range(t.nr_entries.value_()))]


def _zone_by_spans(prog: Program, start_section_nr: int) -> str | None:
    """Zone of a memory block on kernels without ``memory_block.zone`` (before 5.15): as their
    sysfs valid_zones does (test_pages_in_a_zone), the zone whose span holds both the block's
    first and last pfn that lie in any zone span of its node, else None (sysfs "none")."""
    shift = prog["SECTION_SIZE_BITS"].value_() - PAGE_SHIFT
    try:
        per_block = prog["sections_per_block"].value_()
    except KeyError:
        per_block = 1
    start, end = start_section_nr << shift, (start_section_nr + per_block) << shift
    spans = []
    for nid in for_each_online_node(prog):
        for z in NODE_DATA(prog, nid).node_zones:
            zs, zn = z.zone_start_pfn.value_(), z.spanned_pages.value_()
            if zn and zs < end and zs + zn > start:
                spans.append((max(zs, start), min(zs + zn, end), z.name.string_().decode()))
    if not spans:
        return None
    first, last = min(spans), max(spans, key=lambda t: t[1])
    return first[2] if first[2] == last[2] else None


def collect_memory_blocks(prog: Program) -> list[dict[str, Any]]:
    """drivers/base/memory.c ``memory_blocks`` xarray: id, state, online_type, nid, zone name."""
    # MEM_ONLINE... were bit defines (include/linux/memory.h); newer kernels (7.x here) made them
    # enum memory_block_state with MEM_ONLINE = 0: name the value by the kernel's own enumerators
    try:
        states = {e.value: e.name.removeprefix("MEM_").lower().replace("_", "-")
                  for e in prog.type("enum memory_block_state").enumerators or ()}
    except LookupError:
        states = {1: "online", 2: "going-offline", 4: "offline", 8: "going-online"}
    out = []
    for idx, entry in xa_for_each(prog["memory_blocks"].address_of_()):
        mb = drgn.cast("struct memory_block *", entry)
        if _has_member(prog, "struct memory_block", "zone"):
            zone = mb.zone.name.string_().decode() if mb.zone else None
        else:
            zone = _zone_by_spans(prog, mb.start_section_nr.value_())
        out.append({"phys_index": idx, "start_section_nr": mb.start_section_nr.value_(),
                    "state": states.get(mb.state.value_(), str(mb.state.value_())),
                    "nid": mb.nid.value_(), "zone": zone if zone is not None else "none"})
    return out


def collect_memmap_counters(prog: Program) -> dict[str, int] | None:
    """6.12+ global nr_memmap_pages / nr_memmap_boot_pages (mm/vmstat.c)."""
    try:
        return {n: prog[n].counter.value_() for n in ("nr_memmap_pages", "nr_memmap_boot_pages")}
    except LookupError:
        return None


# --------------------------------------------------------------------------- main


def build_truth(dump: Path, vmlinux: Path) -> dict[str, Any]:
    """Everything, as one JSON-able dict."""
    t0 = time.monotonic()
    prog = open_program(dump, vmlinux)
    k = Kernel(prog)
    t_open = time.monotonic() - t0
    sections = collect_sections(k)
    if not sections:
        raise TruthError("no present sections found")
    folios = hugetlb_folios(k)
    vm = collect_vmemmap(k, sections, folios)
    nodes = node_spans(prog)
    truth = {
        "schema": "vmemdbg-truth/1",
        "source": {"dump": str(dump), "vmlinux": str(vmlinux), "drgn": drgn.__version__,
                   "tool": "tests/realkernel/drgn_truth.py"},
        "summary": collect_summary(k, sections, vm),
        "sections": sections,
        "vmemmap_pages": vm,
        "nodes": nodes,
        "nid_check_problems": check_nids(k, sections, nodes),
        "explain": collect_explain(k, sections),
        "memblock": collect_memblock(prog),
        "e820": collect_e820(prog),
        "hugetlb_folios": folios,
        "memory_blocks": collect_memory_blocks(prog),
        "memmap_counters": collect_memmap_counters(prog),
        "vmcoreinfo": k.vmci,
    }
    truth["timing"] = {"open_seconds": round(t_open, 2),
                       "total_seconds": round(time.monotonic() - t0, 2)}
    return truth


def human_summary(t: dict[str, Any]) -> Iterator[str]:
    """A few lines for humans."""
    kern, sp, c, mm = (t["summary"][x] for x in ("kernel", "sparse", "counts", "memmap"))
    yield (f"{kern['release']}  levels={kern['pgtable_levels']}  kaslr_offset={kern['kaslr_offset']:#x}"
           f"  phys_base={kern['phys_base']:#x}")
    yield (f"page_offset_base={kern['page_offset_base']:#x}  vmemmap_base={kern['vmemmap_base']:#x}"
           f"  vmalloc_base={kern['vmalloc_base']:#x}")
    yield (f"mem_section={sp['roots_addr']:#x} roots={sp['nr_section_roots']} (present {sp['roots_present']})"
           f"  sizeof(mem_section)={sp['mem_section_size']}  usage_size={sp['usage_size']}"
           f"  nodes_shift={sp['nodes_shift']}")
    yield (f"sections: present={c['present']} valid={c['valid']} online={c['online']} early={c['early']}"
           f" highest={c['highest_present']}")
    yield (f"memmap: {mm['mapped_bytes'] >> 20} MiB, {mm['pmd_leaves']} PMD leaves, {mm['pte_leaves']} PTE"
           f" leaves, {mm['pagetable_bytes']} bytes of vmemmap page tables")
    vm = t["vmemmap_pages"]
    yield (f"vmemmap: {vm['pages_checked']} pages, {len(vm['runs'])} runs, {len(vm['unmapped'])} unmapped"
           f" ranges, {len(vm['walk_mismatches'])} walk/follow_phys mismatches")
    for r in vm["runs"]:
        yield (f"  [{r['start']:#x}-{r['end']:#x}) {r['level']} rw={int(r['writable'])} -> phys"
               f" {r['phys']:#x} node {r['nid']}  pfns [{r['start_pfn']:#x}-{r['end_pfn']:#x})")
    for n in t["nodes"]:
        yield f"  node {n['nid']}: pfn {n['start_pfn']:#x} +{n['spanned_pages']:#x}"
    for p in t["nid_check_problems"]:
        yield f"  NID PROBLEM: {p}"
    yield f"time: {t['timing']['total_seconds']}s"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path, help="vmcore (ELF or kdump-compressed)")
    ap.add_argument("vmlinux", type=Path, help="vmlinux with DWARF (the -dbg package)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="truth JSON to write")
    ap.add_argument("-q", "--quiet", action="store_true", help="no human summary")
    args = ap.parse_args(argv)
    try:
        for p in (args.dump, args.vmlinux):
            if not p.is_file():
                raise TruthError(f"{p} not found")
        truth = build_truth(args.dump, args.vmlinux)
        args.output.write_text(json.dumps(truth, indent=1) + "\n")
    except (TruthError, drgn.FaultError, drgn.MissingDebugInfoError, LookupError, OSError,
            ValueError) as e:
        print(f"drgn_truth.py: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        for line in human_summary(truth):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
