"""What x86-64 allows: a checker for the JSON documents of every view.

A result printed with exit status 0 is a statement of fact about a kernel, so every value in it
must be possible on x86-64 (arch/x86/include/asm/sparsemem.h, page_64_types.h, pgtable_64_types.h;
include/linux/numa.h; kernel/crash_core.c):

* pfns are below 2^40 (MAX_PHYSMEM_BITS 52, PAGE_SHIFT 12), physical addresses below 2^52;
* kernel virtual addresses (bases, table and struct addresses, vmemmap ranges) are canonical
  kernel-half addresses for the kernel's paging depth (sign-extended from bit 47 or 56);
* node ids are below MAX_NUMNODES (at most 1 << 10);
* sizes of memory are below 2^52, page counts below 2^40, the KASLR offset within the 1 GiB
  kernel image area, ``sme_mask`` a single bit below 2^52, the section constants those of x86-64.

Raw words read from memory (``coded_mem_map``, ``usage``, page-table ``entry``, memblock pointers
and sizes, bitmaps, ``mem_map`` decoded from the raw word) are reported as found and only need to be
64-bit values. :func:`violations` returns one line per value that breaks a rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vmemdbg.jsonout import decode

MAX_PFN = 1 << 40
MAX_PHYS = 1 << 52
MAX_NUMNODES = 1 << 10
U64 = 1 << 64


def _ints(doc: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _ints(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _ints(v, f"{path}[{i}]")
    elif isinstance(doc, int) and not isinstance(doc, bool):
        yield path, doc


class _Checker:
    def __init__(self, levels: int | None):
        self.levels = levels
        self.out: list[str] = []

    def bad(self, path: str, value: Any, why: str) -> None:
        self.out.append(f"{path}={value!r}: {why}")

    def kva(self, path: str, v: Any, *, null: bool = False, end: bool = False) -> None:
        """A canonical kernel-half virtual address (``end``: an exclusive end, may be 0 past the top)."""
        if v is None and null:
            return
        if not isinstance(v, int) or not 0 <= v < U64:
            return self.bad(path, v, "not a 64-bit address")
        x = v - 1 if end else v
        bits = {4: 47, 5: 56}.get(self.levels or 5, 56)
        if x >> bits != (U64 - 1) >> bits and not (self.levels is None and x >> 47 == (U64 - 1) >> 47):
            self.bad(path, v, f"not a canonical kernel address for {self.levels or '4/5'}-level paging")

    def rng(self, path: str, v: Any, lo: int, hi: int, *, null: bool = False) -> None:
        """``lo <= v < hi``."""
        if v is None and null:
            return
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
            self.bad(path, v, f"outside [{lo:#x}, {hi:#x})")

    def nid(self, path: str, v: Any) -> None:
        self.rng(path, v, 0, MAX_NUMNODES, null=True)

    # -- views --------------------------------------------------------------------------------------
    def summary(self, d: dict, p: str) -> None:
        k, s = d["kernel"], d["sparse"]
        self.rng(p + ".kernel.pgtable_levels", k["pgtable_levels"], 4, 6)
        self.rng(p + ".kernel.kaslr_offset", k["kaslr_offset"], 0, 1 << 30)
        self.rng(p + ".kernel.phys_base", k["phys_base"], -MAX_PHYS, MAX_PHYS)
        for f in ("page_offset_base", "vmemmap_base", "init_top_pgt"):
            self.kva(f"{p}.kernel.{f}", k[f])
        self.kva(p + ".kernel.vmalloc_base", k["vmalloc_base"], null=True)
        sme = k["sme_mask"]
        if not (isinstance(sme, int) and 0 <= sme < MAX_PHYS and sme & (sme - 1) == 0):
            self.bad(p + ".kernel.sme_mask", sme, "not 0 or a single bit below 2^52")
        self.rng(p + ".kernel.struct_page_size", k["struct_page_size"], 32, 257)
        self.rng(p + ".kernel.page_size", k["page_size"], 4096, 4097)
        if s["max_physmem_bits"] not in (46, 52):
            self.bad(p + ".sparse.max_physmem_bits", s["max_physmem_bits"], "x86-64 has 46 or 52")
        if s["section_size_bits"] != 27:
            self.bad(p + ".sparse.section_size_bits", s["section_size_bits"], "x86-64 has 27")
        self.rng(p + ".sparse.nodes_shift", s["nodes_shift"], 0, 11)
        self.rng(p + ".sparse.nr_mem_sections", s["nr_mem_sections"], 1, (1 << 25) + 1)
        if s["roots_addr"]:
            self.kva(p + ".sparse.roots_addr", s["roots_addr"])
        c = d["counts"]
        for f in ("present", "valid", "online", "early"):
            self.rng(f"{p}.counts.{f}", c[f], 0, s["nr_mem_sections"] + 1)
        self.rng(p + ".counts.highest_present", c["highest_present"], -1, s["nr_mem_sections"])
        for f, v in d["memmap"].items():
            self.rng(f"{p}.memmap.{f}", v, 0, MAX_PHYS)
        for i, n in enumerate(d.get("nodes") or []):
            self.nid(f"{p}.nodes[{i}].nid", n["nid"])
            self.kva(f"{p}.nodes[{i}].pgdat", n["pgdat"])
            self.rng(f"{p}.nodes[{i}].start_pfn", n["start_pfn"], 0, MAX_PFN)
            self.rng(f"{p}.nodes[{i}].spanned_pages", n["spanned_pages"], 0, MAX_PFN - n["start_pfn"] + 1
                     if isinstance(n["start_pfn"], int) and 0 <= n["start_pfn"] < MAX_PFN else 1)

    def sections(self, d: dict, p: str) -> None:
        for i, s in enumerate(d["sections"]):
            q = f"{p}.sections[{i}]"
            self.rng(q + ".nr", s["nr"], 0, 1 << 25)
            self.rng(q + ".start_pfn", s["start_pfn"], 0, MAX_PFN)
            self.kva(q + ".section", s["section"])
            self.nid(q + ".nid", s["nid"])

    def vmemmap(self, d: dict, p: str) -> None:
        self.kva(p + ".vmemmap_base", d["vmemmap_base"])
        for i, r in enumerate(d["runs"]):
            q = f"{p}.runs[{i}]"
            self.kva(q + ".start", r["start"])
            self.kva(q + ".end", r["end"], end=True)
            if isinstance(r["start"], int) and isinstance(r["end"], int) and not r["start"] < r["end"]:
                self.bad(q, (r["start"], r["end"]), "empty or reversed range")
            self.rng(q + ".phys", r["phys"], 0, MAX_PHYS)
            if isinstance(r["phys"], int) and r["phys"] + (r["end"] - r["start"]) > MAX_PHYS:
                self.bad(q + ".phys", r["phys"], "run ends past 2^52")
            self.nid(q + ".nid", r["nid"])
            self.rng(q + ".start_pfn", r["start_pfn"], 0, MAX_PFN)
            self.rng(q + ".end_pfn", r["end_pfn"], 1, MAX_PFN + 1)
        for i, a in enumerate(d["audit"]):
            q = f"{p}.audit[{i}]"
            self.kva(q + ".start", a["start"])
            self.kva(q + ".end", a["end"], end=True)
        for i, n in enumerate(d["overhead"]["nodes"]):
            self.nid(f"{p}.overhead.nodes[{i}].nid", n["nid"])
            for f in ("memmap_bytes", "pagetable_bytes"):
                self.rng(f"{p}.overhead.nodes[{i}].{f}", n[f], 0, MAX_PHYS)
            for prov, v in n.get("by_provenance", {}).items():
                self.rng(f"{p}.overhead.nodes[{i}].by_provenance.{prov}", v, 0, MAX_PHYS)
        for f, v in d["overhead"]["total"].items():
            if f == "by_provenance":
                for prov, b in v.items():
                    self.rng(f"{p}.overhead.total.by_provenance.{prov}", b, 0, MAX_PHYS)
            else:
                self.rng(f"{p}.overhead.total.{f}", v, 0, MAX_PHYS)
        for i, f in enumerate((d.get("hvo") or {}).get("folios", [])):
            q = f"{p}.hvo.folios[{i}]"
            self.rng(q + ".head_pfn", f["head_pfn"], 0, MAX_PFN)
            self.kva(q + ".head_page", f["head_page"])
            self.rng(q + ".shared_page_phys", f["shared_page_phys"], 0, MAX_PHYS, null=True)
            self.nid(q + ".nid", f["nid"])

    def e820(self, d: dict, p: str) -> None:
        if "error" in d:  # the audit holds the e820 view's one-line error (e.g. no symbols)
            return
        for name, t in d["tables"].items():
            for i, e in enumerate(t or []):
                self.rng(f"{p}.tables.{name}[{i}].end", e["addr"] + e["size"], 0, U64 + 1)

    def memblock(self, d: dict, p: str) -> None:
        if "error" in d:
            return
        self.kva(p + ".addr", d["addr"])
        for t in ("memory", "reserved"):
            m = d[t]
            if m["regions"] is None:
                continue
            self.rng(f"{p}.{t}.cnt", m["cnt"], 0, m["max"] + 1 if isinstance(m["max"], int) else 1)
            self.rng(f"{p}.{t}.max", m["max"], 0, (1 << 20) + 1)
            for i, r in enumerate(m["regions"]):
                self.rng(f"{p}.{t}.regions[{i}].end", r["base"] + r["size"], 0, U64)
                if r["nid"] is not None:
                    self.rng(f"{p}.{t}.regions[{i}].nid", r["nid"], -1, MAX_NUMNODES + 1)

    def explain(self, d: dict, p: str) -> None:
        self.rng(p + ".pfn", d["pfn"], 0, MAX_PFN)
        self.rng(p + ".phys", d["phys"], 0, MAX_PHYS)
        self.kva(p + ".direct_map", d["direct_map"])
        self.kva(p + ".page", d["page"])
        self.rng(p + ".page_phys", d["page_phys"], 0, MAX_PHYS, null=True)
        self.nid(p + ".nid", d["nid"])
        self.nid(p + ".page_nid", d["page_nid"])
        self.nid(p + ".section.nid", d["section"]["nid"])
        self.rng(p + ".subsection", d["subsection"], 0, 64)
        self.rng(p + ".pageblock", d["pageblock"], 0, 64)
        for i, s in enumerate(d["path"]):
            self.rng(f"{p}.path[{i}].table", s["table"], 0, MAX_PHYS)


def violations(doc: dict, levels: int | None = None) -> list[str]:
    """Every value of a view document that x86-64 does not allow (empty list: all plausible). The
    document may be parsed JSON of either schema: vmemdbg/2's "0x…" strings are checked as the
    integers they write."""
    doc = decode(doc)
    c = _Checker(levels)
    for path, v in _ints(doc):
        if not -(1 << 63) <= v < U64:
            c.bad(path, v, "not a 64-bit value")
    cmd = doc.get("command")
    if cmd == "audit":
        c.levels = doc["summary"]["kernel"]["pgtable_levels"]
        c.summary(doc["summary"], ".summary")
        c.vmemmap(doc["vmemmap"], ".vmemmap")
        c.e820(doc["e820"], ".e820")
        if "sections" in doc:
            c.sections(doc["sections"], ".sections")
        c.memblock(doc["memblock"], ".memblock")
    elif cmd == "explain" and "results" in doc:
        for i, r in enumerate(doc["results"]):
            c.explain(r, f".results[{i}]")
    elif cmd in ("summary", "sections", "vmemmap", "e820", "memblock", "explain"):
        if cmd == "summary":
            c.levels = doc["kernel"]["pgtable_levels"]
        getattr(c, cmd)(doc, "")
    return c.out
