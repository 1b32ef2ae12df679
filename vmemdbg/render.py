"""Text rendering of the engine views (shared by the CLI, the drgn plugin and gdb commands)."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from collections.abc import Iterable, Sequence


@lru_cache(maxsize=1 << 12)  # tables of 10^5 runs repeat a handful of sizes
def human(n: int | None) -> str:
    """Bytes as B/KiB/MiB/GiB/TiB."""
    if n is None:
        return "?"
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if v < 1024 or unit == "PiB":
            return f"{int(v)} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(n)


def hex_or_dash(v: int | None) -> str:
    """``0x…`` for a value, ``-`` for None (the text spelling of "no value")."""
    return "-" if v is None else f"{v:#x}"


def node(nid: int | None, max_numnodes: int | None = None) -> str:
    """A node id, or '-' for "no node": None, NUMA_NO_NODE (-1), or ``max_numnodes`` and above
    (MAX_NUMNODES: the nid mm/memblock.c memblock_add()/memblock_reserve() give a region, which
    reservations made after NUMA setup keep)."""
    if nid is None or nid < 0 or (max_numnodes is not None and nid >= max_numnodes):
        return "-"
    return str(nid)


def flags(names: list[str]) -> str:
    """Section flag names as the kernel spells them without the SECTION_ prefix
    (MARKED_PRESENT|HAS_MEM_MAP|IS_ONLINE|IS_EARLY), the same in every view and in JSON."""
    return "|".join(names)


def yes_no(v: bool | None) -> str:
    """A boolean for humans; None is '?'."""
    return "?" if v is None else "yes" if v else "no"


def table(headers: list[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cols = [list(map(str, c)) for c in zip(*rows)] or [[] for _ in headers]  # column-wise: 10^5 rows
    widths = [max(len(h), max(map(len, c), default=0)) for h, c in zip(headers, cols)]
    padded = [[s.ljust(w) for s in c] for c, w in zip(cols[:-1], widths)] + cols[-1:]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    return "\n".join([head] + ["  ".join(r).rstrip() for r in zip(*padded)])


def _unreadable(doc: dict) -> list[str]:
    return [f"UNREADABLE: {u}" for u in doc.get("unreadable", [])]


def render_summary(doc: dict, verbose: bool = False) -> str:
    """``summary`` view."""
    k, s, c, m = doc["kernel"], doc["sparse"], doc["counts"], doc["memmap"]
    lines = [
        f"kernel            {k['release']}  ({k['pgtable_levels']}-level paging)",
        f"KASLR offset      {k['kaslr_offset']:#x}   phys_base {k['phys_base']:#x}",
        f"page_offset_base  {k['page_offset_base']:#x}",
        f"vmemmap_base      {k['vmemmap_base']:#x}",
        f"vmalloc_base      {hex_or_dash(k['vmalloc_base'])}" + "".join(
            f"  ({n})" for n in doc.get("notes", []) if k["vmalloc_base"] is None and n.startswith("vmalloc_base")),
        f"init_top_pgt      {k['init_top_pgt']:#x}   sizeof(struct page) {k['struct_page_size']}",
        f"sections          present {c['present']}  valid {c['valid']}  online {c['online']}  early {c['early']}"
        f"  highest {c['highest_present']}",
        f"mem_section       roots {s['roots_present']}/{s['nr_section_roots']} at {s['roots_addr']:#x}"
        f"  SECTION_SIZE_BITS {s['section_size_bits']}  MAX_PHYSMEM_BITS {s['max_physmem_bits']}",
        f"                  sizeof(mem_section) {s['mem_section_size']}  usage {s['usage_size']} B ({s['usage_layout']})"
        f"  flag layout {s['flags_layout']}",
        f"memmap            {human(m['memmap_bytes'])} backing ({m['pmd_leaves']} PMD + {m['pte_leaves']} PTE leaves),"
        f" vmemmap page tables {human(m['pagetable_bytes'])}",
    ]
    for n in doc.get("nodes", []):
        end = n["start_pfn"] + n["spanned_pages"]
        lines.append(f"node {node(n['nid']):<12} pfn {n['start_pfn']:#x}-{end:#x} ({human(n['spanned_pages'] << 12)} spanned)")
    if verbose:
        lines += [f"usage layout: {s['usage_reason']}", f"flag layout: {s['flags_reason']}"]
        lines += [f"symbols: {doc['symbols']}"] if "symbols" in doc else []
        lines += [f"note: {x}" for x in doc.get("notes", [])]
    return "\n".join(lines + _unreadable(doc))


def _mt_summary(mts: list[str] | None) -> str:
    if not mts:
        return "-"
    return ",".join(f"{name}x{n}" if n > 1 else name for name, n in Counter(mts).most_common())


def render_sections(doc: dict, verbose: bool = False) -> str:
    """``sections`` view, columns like crash ``kmem -n``: CODED_MEM_MAP is ``section_mem_map &
    SECTION_MAP_MASK`` as crash prints it (memory.c dump_mem_sections(), section_mem_map_addr()),
    with the kernel's own mask for the flag layout; ``-v`` adds the raw word (SECTION_MEM_MAP)."""
    headers = ["NR", "SECTION", "CODED_MEM_MAP", "MEM_MAP", "PFN", "NID", "USAGE", "SUBSECTIONS", "FLAGS"]
    if verbose:
        headers[3:3] = ["SECTION_MEM_MAP"]
        headers.append("PAGEBLOCKS")
    mask = doc["layout"]["map_mask"]
    rows = []
    for r in doc["sections"]:
        row = [r["nr"], hex_or_dash(r["section"]), hex_or_dash(r["coded_mem_map"] & mask), hex_or_dash(r["mem_map"]), hex_or_dash(r["start_pfn"]),
               node(r["nid"]), hex_or_dash(r["usage"]),
               "-" if r["subsection_map"] is None else f"{r['subsection_map']:016x}", flags(r["flags"])]
        if verbose:
            row[3:3] = [hex_or_dash(r["coded_mem_map"])]
            row.append(_mt_summary(r["migratetypes"]))
        rows.append(row)
    out = [table(headers, rows)]
    if verbose:
        lay = doc["layout"]
        out.append(f"flag layout {lay['flags_layout']}: {lay['reason']} ({lay['origin']})")
        out.append(f"usage layout {lay['usage_layout']}: {lay['usage_reason']}")
    return "\n".join(out + _unreadable(doc))


def _collapse_hvo_tails(runs: list[dict]) -> list[tuple[dict, int]]:
    """Runs with consecutive read-only HVO tails onto one frame folded into one row (run, count)."""
    if not any(r.get("provenance") == "hvo" for r in runs):
        return [(r, 1) for r in runs]
    out: list[tuple[dict, int]] = []
    for r in runs:
        if out:
            p, n = out[-1]
            if (r.get("provenance") == "hvo" and not r["writable"] and p.get("provenance") == "hvo"
                    and not p["writable"] and r["phys"] == p["phys"] and r["start"] == p["end"]
                    and r["level"] == p["level"]):
                out[-1] = ({**p, "end": r["end"], "end_pfn": r["end_pfn"]}, n + 1)
                continue
        out.append((r, 1))
    return out


def render_vmemmap(doc: dict, verbose: bool = False) -> str:
    """``vmemmap`` view: runs with provenance, audit (anomalies, then notes), HVO, overhead."""
    sizes: dict[int, str] = {}  # a few distinct run sizes among up to 10^5 runs: human() once each
    rows = [[f"{r['start']:#x}", f"{r['end']:#x}", r["level"].upper(), "RW" if r["writable"] else "RO",
             hex_or_dash(r["phys"]) + (f" x{n}" if n > 1 else ""), node(r["nid"]),
             f"{r['start_pfn']:#x}-{r['end_pfn']:#x}",
             sizes.get(r["end"] - r["start"]) or sizes.setdefault(r["end"] - r["start"], human(r["end"] - r["start"])),
             r.get("provenance", "boot")]
            for r, n in _collapse_hvo_tails(doc["runs"])]
    out = [table(["START", "END", "LEVEL", "PROT", "PHYS", "NID", "PFNS", "SIZE", "PROVENANCE"], rows)]
    anomalies = [a for a in doc["audit"] if a.get("severity", "anomaly") == "anomaly"]
    notes = [a for a in doc["audit"] if a.get("severity") == "note"]
    out.append("")
    out.append(f"audit: {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}, {len(notes)} note{'' if len(notes) == 1 else 's'}"
               + (" by the checks that ran" if doc.get("not_audited") else ""))
    for a in anomalies:
        out.append(f"  ANOMALY {a['kind']:<20} {a['start']:#x}-{a['end']:#x}  {a['detail']}")
    for a in notes:
        out.append(f"  note    {a['mechanism'] or a['kind']:<20} {a['start']:#x}-{a['end']:#x}  {a['detail']}")
    out += [f"not audited: {x}" for x in doc.get("not_audited", [])]
    hvo = doc.get("hvo") or {}
    if hvo.get("hstates"):
        out.append("")
        out.append(table(["HSTATE", "FOLIOS", "SAVED", "VIOLATIONS"],
                         [[h["hstate"], h["folios"], f"{h['saved_pages']} pages ({human(h['saved_bytes'])})", h["violations"]]
                          for h in hvo["hstates"]]))
        if verbose:
            out.append(table(["HEAD PFN", "HSTATE", "NID", "HEAD PAGE", "SHARED PAGE", "TAILS RO->SHARED", "FLAG"],
                             [[hex_or_dash(f["head_pfn"]), f["hstate"], node(f["nid"]), hex_or_dash(f["head_page"]),
                               hex_or_dash(f["shared_page_phys"]), f"{f['tails_remapped']}/{f['tails']}",
                               "optimized" if f["vmemmap_optimized_flag"] else "CLEAR"] for f in hvo["folios"]]))
    out.append("")
    ov = doc["overhead"]
    provs = ("boot", "hotplug", "self_hosted", "hvo")

    def prow(label: str, d: dict) -> list[str]:
        bp = d.get("by_provenance", {})
        return [label, human(d["memmap_bytes"]), *[human(bp.get(p, 0)) for p in provs], human(d["pagetable_bytes"])]

    orow = [prow(node(n["nid"]), n) for n in ov["nodes"]]
    orow.append(prow("total", ov["total"]))
    out.append(table(["NODE", "MEMMAP", "BOOT", "HOTPLUG", "SELF_HOSTED", "HVO", "PAGE TABLES"], orow))
    kc = ov.get("kernel_counters")
    if kc:
        if kc["available"]:
            out.append(f"kernel counters: nr_memmap_boot_pages {kc['nr_memmap_boot_pages']} (census predicts "
                       f"{kc['expected_boot_pages']}), nr_memmap_pages {kc['nr_memmap_pages']} (census predicts "
                       f"{kc['expected_pages']})")
        else:
            out.append(f"kernel counters: {kc['reason']}")
    src = doc.get("counts", {}).get("nid_source")
    if verbose and src:
        out.append(f"node of backing frames: {src['node_ranges']} from pglist_data node ranges, "
                   f"{src['struct_page']} from struct page flags")
    return "\n".join(out + _unreadable(doc))


def render_memory_blocks(doc: dict, verbose: bool = False) -> str:
    """``memory-blocks`` view: what /sys/devices/system/memory shows."""
    rows = [[f"memory{b['phys_index']}", f"{b['phys_index']:08x}", b["state"], b["zone"] or "?",
             node(b["nid"]), hex_or_dash(b["start_pfn"] << 12), b["sections"],
             "boot" if b["early"] else "hot-added"] for b in doc["blocks"]]
    out = [f"block_size_bytes {doc['block_size']:x} ({human(doc['block_size'])}: {doc['block_size_source']})",
           table(["BLOCK", "PHYS_INDEX", "STATE", "ZONE", "NID", "PHYS", "SECTIONS", "ORIGIN"], rows)]
    if doc["zone_device_sections"]:
        out.append("ZONE_DEVICE sections (no memory block): " + ", ".join(
            f"{d['nr']} (pfn {d['start_pfn']:#x}, node {node(d['nid'])})" for d in doc["zone_device_sections"]))
    if doc.get("zone_source", "").startswith("unknown"):
        out.append(f"zones {doc['zone_source']}")
    if verbose:
        out.append("state from SECTION_IS_ONLINE of every section of the block; zone from page->flags of its first "
                   "and last RAM pfn ('none' when they differ, like sysfs valid_zones); nid from the sections")
    return "\n".join(out + _unreadable(doc))


def render_explain(doc: dict, verbose: bool = False) -> str:
    """``explain`` view."""
    s = doc["section"]
    lines = [
        f"{doc['input']}: {doc['kind']}",
        f"  pfn {doc['pfn']:#x}  phys {doc['phys']:#x}  direct map {doc['direct_map']:#x}  node {node(doc['nid'])}",
        f"  section {s['nr']} ({flags(s['flags']) or 'not present'})  subsection {doc['subsection']}"
        f" ({'valid' if doc['subsection_valid'] else 'not valid'})  pageblock {doc['pageblock']}"
        f" ({doc['migratetype'] or '?'})  pfn_valid: {yes_no(doc['pfn_valid'])}",
        f"  struct page {doc['page']:#x}",
    ]
    for p in doc["path"]:
        lines.append(f"    {p['level']:<4} table {p['table']:#x} [{p['index']:3}] = {p['entry']:#018x}")
    if doc["page_phys"] is None:
        lines.append("  struct page is NOT mapped")
    else:
        lines.append(f"  -> {doc['leaf'].upper()} leaf, struct page at phys {doc['page_phys']:#x} on node "
                     f"{node(doc['page_nid'])}")
    return "\n".join(lines)


def _region_rows(t: dict, max_numnodes: int | None) -> list[list[str]]:
    return [[str(i), hex_or_dash(r["base"]), hex_or_dash(r["base"] + r["size"] - 1), human(r["size"]), node(r["nid"], max_numnodes),
             "|".join(r["flag_names"]) or "NONE"] for i, r in enumerate(t["regions"] or [])]


def _discarded(doc: dict) -> str:
    """Whether memblock_discard() ran, in words, with the evidence."""
    state = {True: "discarded", False: "not discarded", None: "discard state unknown"}[doc["discarded"]]
    return f"{state} ({doc['discarded_reason']})"


def render_memblock(doc: dict, verbose: bool = False) -> str:
    """``memblock`` view."""
    ss = doc["system_state"]
    out = [f"memblock at {doc['addr']:#x}: allocates {'bottom-up' if doc['bottom_up'] else 'top-down'}, "
           f"current_limit {doc['current_limit']:#x}",
           f"system_state {ss['name'] if ss else '?'}; {_discarded(doc)}"]
    for name in ("memory", "reserved"):
        t = doc[name]
        out.append("")
        out.append(f"{name}: cnt {t['cnt']} max {t['max']} total {human(t['total_size'])} regions at {t['regions_addr']:#x}"
                   f" -> {t['trust'].upper()}: {t['trust_reason']}")
        if t["regions"] is not None:
            out.append(table(["IDX", "BASE", "LAST", "SIZE", "NID", "FLAGS"], _region_rows(t, doc.get("max_numnodes"))))
    return "\n".join(out + _unreadable(doc))


def render_e820(doc: dict, verbose: bool = False) -> str:
    """``e820`` view."""
    out = []
    for name, entries in doc["tables"].items():
        out.append(f"{name}:" if entries is not None else f"{name}: unavailable")
        if entries:
            out.append(table(["START", "LAST", "SIZE", "TYPE"],
                             [[hex_or_dash(e["addr"]), hex_or_dash(e["addr"] + e["size"] - 1), human(e["size"]), e["name"]] for e in entries]))
    return "\n".join(out + _unreadable(doc))


def render_audit(doc: dict, verbose: bool = False) -> str:
    """``audit``: the summary, then the vmemmap census with its findings, then memblock trust."""
    parts = [render_summary(doc["summary"], verbose), "", render_vmemmap(doc["vmemmap"], verbose)]
    if "error" in doc.get("e820", {}):
        parts += ["", f"e820: {doc['e820']['error']}"]
    mb = doc["memblock"]
    if "error" in mb:
        parts += ["", f"memblock: {mb['error']}"]
    else:
        parts += ["", f"memblock: {_discarded(mb)}; memory {mb['memory']['trust']}, reserved {mb['reserved']['trust']}"]
    return "\n".join(parts)


def render_describe(doc: dict, verbose: bool = False) -> str:
    """``describe`` view: the machine TOML (derived and assumed fields are its leading comments)."""
    return doc["toml"].rstrip("\n")


def render_check(doc: dict, verbose: bool = False) -> str:
    """``check`` view: verdict, differences, where placement was compared, overhead per node."""
    c = doc["counts"]
    out = [f"check: {doc['release']} replayed with the {doc['rules']} rules: "
           + ("consistent" if doc["consistent"] else f"{c['unexplained']} unexplained difference(s)")
           + f" ({c['differences']} difference(s); {c['sections']} sections, {c['dump_leaves']} vmemmap leaves "
           f"in the dump, {c['expected_leaves']} expected, {c['expected_tables']} expected table pages)"]
    if doc["differences"]:
        out.append("")
        rows = [["UNEXPLAINED" if not d["explained"] else "explained", d["kind"], d["mechanism"] or "-", d["text"]]
                for d in doc["differences"]]
        out.append(table(["VERDICT", "KIND", "MECHANISM", "DETAIL"], rows))
    out.append("")
    out.append("exact placement (frames, usage arrays, table pages):")
    for nid, p in doc["placement"].items():
        out.append(f"  node {nid}: {'compared' if p['determined'] else 'NOT compared'}: {p['reason']}")
    out.append("")
    out.append(table(["NODE", "MEMMAP EXPECTED", "ACTUAL", "EXPLAINED EXTRA"],
                     [[node(r["nid"]), human(r["expected_bytes"]), human(r["actual_bytes"]),
                       human(r["explained_bytes"])] for r in doc["overhead"]["nodes"]]))
    assumed = doc["describe"]["assumed"]
    if assumed:
        out.append("")
        out.append("assumed (not in the dump):")
        out += [f"  {a['field']}: {a['assumption']}" for a in assumed]
    if verbose:
        out += ["", "derived:"] + [f"  {a['field']}: {a['source']}" for a in doc["describe"]["derived"]]
        out += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(out)
