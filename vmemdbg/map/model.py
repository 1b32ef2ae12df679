"""What the map shows, computed from the engine views (no drawing here).

Input is the view documents of :mod:`vmemdbg.views` (``summary``, ``sections``, ``vmemmap``,
``memblock``, ``e820``) and optionally a ``vmemdbg check --json`` document; output is a
:class:`MapModel`: two address axes (physical, vmemmap virtual) with long holes collapsed, the marks
of every track in axis coordinates, and the compact per-section / per-run tables the interactive
page decodes on hover.

Marks per track (docs/map.md):

* nodes: one per online node (``node_start_pfn`` .. + ``node_spanned_pages``);
* e820: one per ``e820_table`` entry (RAM and every other type), holes are the background;
* sections: one per *present-section run*: consecutive section numbers with the same nid and the
  same provenance (boot, hot-added, self-hosted);
* reserved: one per ``memblock.reserved`` region;
* memmap: one per group of vmemmap runs whose fields progress affinely (for instance node 5 of a
  big machine whose 2 MiB leaves were allocated top-down), drawn at the physical frames backing
  them with a ribbon to the sections they describe;
* vmemmap: the same groups on the virtual axis, coloured by leaf level and protection;
* findings: one per vmemmap audit finding and per ``check`` difference, on each axis it has a
  place on.

On the memmap, vmemmap and findings tracks, marks that together are narrower than
:data:`BIN_PX` are drawn as one aggregate mark (the page separates them again when zoomed in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import VmemdbgError
from ..intervals import merge_ranges, split_runs
from ..render import human, node

#: Section provenance classes, in the order of precedence when several apply.
PROVENANCES = ("self_hosted", "hotplug", "boot")

#: Width of a collapsed hole on an axis, in layout pixels.
HOLE_PX = 26.0
#: Smallest width of a populated stretch of an axis, in layout pixels.
MIN_PX = 4.0
#: Width of a stretch that holds only non-RAM firmware ranges (e820 reserved, ACPI, ...).
MINOR_PX = 40.0
#: Marks of one track narrower than this together (layout px) are drawn as one.
BIN_PX = 2.0
#: A gap is collapsed when it is longer than this fraction of the populated length.
COLLAPSE_FRACTION = 0.02

_U64 = (1 << 64) - 1


@dataclass
class Axis:
    """Piecewise-linear address → x map: populated stretches share one scale, long holes are
    collapsed to :data:`HOLE_PX`. ``addr`` and ``x`` are the knots of the map (np.interp)."""

    addr: list[int]
    x: list[float]
    holes: list[tuple[int, int]]

    @classmethod
    def build(cls, spans: list[tuple[int, int]], left: float, width: float,
              minor: Sequence[tuple[int, int]] = ()) -> "Axis":
        """An axis over ``spans`` (address ranges, any order, may overlap) from ``left`` to
        ``left+width``. ``minor`` ranges (non-RAM firmware ranges) are shown too, but a stretch
        holding only minor ranges gets :data:`MINOR_PX`, not its share of the scale."""
        major = sorted((a, b) for a, b in spans if b > a)
        spans = sorted(major + [(a, b) for a, b in minor if b > a])
        if not spans:
            raise VmemdbgError("nothing to draw: no address range is known")
        merged = merge_ranges(spans)
        populated = sum(b - a for a, b in merged)
        stretches: list[list[int]] = [list(merged[0])]
        holes: list[tuple[int, int]] = []
        for a, b in merged[1:]:
            if a - stretches[-1][1] > COLLAPSE_FRACTION * populated:
                holes.append((stretches[-1][1], a))
                stretches.append([a, b])
            else:
                stretches[-1][1] = b
        starts = np.array([a for a, _ in major], dtype=np.float64)
        ends = np.array([b for _, b in major], dtype=np.float64)
        is_minor = np.array([not np.any((starts < b) & (ends > a)) for a, b in stretches], dtype=bool)
        if is_minor.all():
            is_minor[:] = False
        lengths = np.array([b - a for a, b in stretches], dtype=np.float64)
        avail = width - HOLE_PX * len(holes) - MINOR_PX * is_minor.sum()
        fixed = is_minor.copy()
        px = np.where(fixed, MINOR_PX, 0.0)
        for _ in range(4):  # give tiny stretches MIN_PX, rescale the others
            free = ~fixed
            px = np.where(fixed, px, lengths * (avail / lengths[free].sum()))
            small = free & (px < MIN_PX)
            if not small.any() or (fixed | small).all():
                break
            px = np.where(small, MIN_PX, px)
            avail -= MIN_PX * small.sum()
            fixed |= small
        knots_a: list[int] = []
        knots_x: list[float] = []
        x = left
        for (a, b), w in zip(stretches, px.tolist()):
            if knots_a:
                x += HOLE_PX
            knots_a += [a, b]
            knots_x += [x, x + w]
            x += w
        return cls(addr=knots_a, x=knots_x, holes=holes)

    def at(self, addrs) -> np.ndarray:
        """x of each address (float64; addresses < 2**53 are exact)."""
        return np.interp(np.asarray(addrs, dtype=np.float64), np.array(self.addr, dtype=np.float64), self.x)

    def to_json(self) -> dict:
        """The knots, for the page's inverse map (hover) and its tick labels."""
        return {"addr": self.addr, "x": self.x}


@dataclass
class Mark:
    """One drawn rectangle: ``[x0, x1)`` on its axis, the track it belongs to, its CSS class and
    its tooltip text; a finding's mark links to its text (``link``)."""

    track: str
    x0: float
    x1: float
    cls: str
    tip: str
    link: str | None = None
    target: tuple[float, float] | None = None  # memmap frames: x range of the sections they describe
    members: list[int] = field(default_factory=list)  # findings: the finding indices this mark stands for


@dataclass
class MapModel:
    """Everything the SVG and the HTML draw."""

    title: str
    phys: Axis
    virt: Axis
    marks: list[Mark]
    links: list[tuple[float, float, float, float, str, str]]  # memmap x0,x1 -> section x0,x1, class, tip
    findings: list[dict]
    data: dict
    left: float
    width: float
    counts: dict = field(default_factory=dict)


def affine_groups(columns: list[np.ndarray], cats: list[np.ndarray],
                  breaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into groups in which every uint64 column is ``base + k * stride`` (mod 2**64) and
    every categorical column is constant; ``breaks`` (bool per row) forces a group to start there.
    Returns (start, end) row indices.

    Row i starts a group when a categorical value changes (or ``breaks`` says so), or when some
    column's step into row i differs from its step into row i-1 and row i-1 did not start a group
    for one of those reasons. One vectorised pass: groups are affine but not always maximal (a
    changed step can leave a one-row group behind it).
    """
    n = len(columns[0]) if columns else len(cats[0])
    brk = np.zeros(n, dtype=bool)
    if n:
        brk[0] = True
    if breaks is not None:
        brk |= breaks
    for c in cats:
        brk[1:] |= c[1:] != c[:-1]
    fresh = brk.copy()  # rows starting a group for a categorical reason: the step into them is no stride
    for col in columns:
        d = col[1:] - col[:-1]  # uint64 wraps, which is what the page's BigInt decoding does too
        brk[2:] |= (d[1:] != d[:-1]) & ~fresh[1:-1]
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n)
    return starts, ends


def _encode_groups(columns: list[np.ndarray], starts: np.ndarray, ends: np.ndarray) -> list[list[str]]:
    """Per group and column: ``[base, stride]`` as hex without 0x (stride mod 2**64)."""
    out = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        row = []
        for col in columns:
            base = int(col[s])
            stride = (int(col[s + 1]) - base) & _U64 if e - s > 1 else 0
            row.append(f"{base:x}")
            row.append(f"{stride:x}")
        out.append(row)
    return out


def _u64(values) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def section_provenance(secs: list[dict], runs: list[dict], pfn_shift: int) -> np.ndarray:
    """Provenance index (into :data:`PROVENANCES`) of each present section.

    * self-hosted or hot-added: a vmemmap run describing its pfns says so (the census' provenance,
      docs/after-boot.md);
    * hot-added also when the section lacks SECTION_IS_EARLY (only sparse_init_nid passes it to
      sparse_init_one_section; sparse_add_section, the hotplug path, passes 0: mm/sparse.c, 6.1),
      even where its memmap could not be read;
    * boot otherwise.
    """
    nrs = np.array([s["nr"] for s in secs], dtype=np.int64)
    prov = np.full(len(secs), PROVENANCES.index("boot"), dtype=np.int8)
    not_early = np.array(["IS_EARLY" not in s["flags"] and "EARLY" not in s["flags"] for s in secs], dtype=bool)
    prov[not_early] = PROVENANCES.index("hotplug")
    if not runs or not len(secs):
        return prov
    spfn = np.array([r["start_pfn"] for r in runs], dtype=np.int64)
    epfn = np.array([r["end_pfn"] for r in runs], dtype=np.int64)
    lo = np.searchsorted(nrs, spfn >> pfn_shift)
    hi = np.searchsorted(nrs, (epfn - 1) >> pfn_shift, side="right")
    kind = np.array([r["provenance"] for r in runs])
    for want in ("hotplug", "self_hosted"):  # self_hosted applied last: it wins
        for i in np.flatnonzero(kind == want).tolist():
            prov[lo[i]:hi[i]] = PROVENANCES.index(want)
    return prov


def section_runs(secs: list[dict], prov: np.ndarray) -> list[tuple[int, int]]:
    """(first index, end index) of each present-section run: consecutive nr, same nid and provenance."""
    if not secs:
        return []
    nr = np.array([s["nr"] for s in secs], dtype=np.int64)
    nid = np.array([-1 if s["nid"] is None else s["nid"] for s in secs], dtype=np.int64)
    starts, ends = split_runs((nr[1:] != nr[:-1] + 1) | (nid[1:] != nid[:-1]) | (prov[1:] != prov[:-1]))
    return list(zip(starts.tolist(), ends.tolist()))


def _memmap_groups(runs: list[dict], base: int, sps: int) -> tuple[list[tuple[int, int]], dict]:
    """Affine groups of vmemmap runs and their page data (exact per-run values on hover)."""
    if not runs:
        return [], {"groups": []}
    start = _u64([r["start"] - base for r in runs])
    size = _u64([r["end"] - r["start"] for r in runs])
    phys = _u64([r["phys"] for r in runs])
    spfn = _u64([r["start_pfn"] for r in runs])
    epfn = _u64([r["end_pfn"] for r in runs])
    cats = [np.array([f"{r['level']}|{r['writable']}|{r['nid']}|{r['provenance']}" for r in runs])]
    cols = [start, size, phys, spfn, epfn]
    # a group's backing must be one block of frames (ascending or, top-down allocation, descending)
    apart = np.zeros(len(runs), dtype=bool)
    apart[1:] = ((phys[1:] != phys[:-1] + size[:-1]) & (phys[1:] + size[1:] != phys[:-1])
                 & (phys[1:] != phys[:-1]))  # the same frame again: HVO's read-only tail aliases
    apart[1:] |= start[1:] != start[:-1] + size[:-1]  # and one stretch of virtual addresses
    starts, ends = affine_groups(cols, cats, apart)
    enc = _encode_groups(cols, starts, ends)
    groups = []
    for (s, e), row in zip(zip(starts.tolist(), ends.tolist()), enc):
        r = runs[s]
        groups.append([e - s, r["level"], bool(r["writable"]), r["nid"], r["provenance"], *row])
    return list(zip(starts.tolist(), ends.tolist())), {"groups": groups, "base": f"{base:x}", "struct_page": sps}


def _sections_data(secs: list[dict], prov: np.ndarray) -> dict:
    """Affine groups of present sections: the page reconstructs every field of every section."""
    if not secs:
        return {"groups": [], "flags": []}
    flag_names = sorted({"|".join(s["flags"]) for s in secs})
    fidx = {f: i for i, f in enumerate(flag_names)}
    cats = [np.array([-1 if s["nid"] is None else s["nid"] for s in secs], dtype=np.int64),
            np.array([fidx["|".join(s["flags"])] for s in secs], dtype=np.int64),
            np.array([(s["mem_map"] is None) * 1 + (s["subsection_map"] is None) * 2 for s in secs], dtype=np.int64),
            prov.astype(np.int64)]
    cols = [_u64([s["nr"] for s in secs]), _u64([s["section"] for s in secs]),
            _u64([s["coded_mem_map"] for s in secs]), _u64([s["mem_map"] or 0 for s in secs]),
            _u64([s["usage"] for s in secs]), _u64([s["subsection_map"] or 0 for s in secs])]
    starts, ends = affine_groups(cols, cats)
    enc = _encode_groups(cols, starts, ends)
    groups = []
    for (s, e), row in zip(zip(starts.tolist(), ends.tolist()), enc):
        c = [int(cat[s]) for cat in cats]
        groups.append([e - s, c[0], c[1], c[2], PROVENANCES[c[3]], *row])
    return {"groups": groups, "flags": flag_names,
            "fields": ["nr", "section", "coded_mem_map", "mem_map", "usage", "subsection_map"]}


def _check_findings(check: dict | None) -> list[dict]:
    if check is None:
        return []
    return [{"source": "check", "kind": d.get("kind", "difference"), "text": d.get("text", ""),
             "explained": bool(d.get("explained")), "mechanism": d.get("mechanism"),
             "va": d.get("va"), "phys": d.get("phys"), "section": d.get("section")}
            for d in check.get("differences", [])]


def _bins(items: list[Mark]) -> list[list[Mark]]:
    """Consecutive marks (sorted by x0) that together fit in :data:`BIN_PX`: drawn as one mark at
    zoom 1 (the page draws each vmemmap run again once zoomed in)."""
    out: list[list[Mark]] = []
    for m in items:
        if out and m.x1 - out[-1][0].x0 <= BIN_PX and out[-1][-1].x1 - out[-1][0].x0 <= BIN_PX:
            out[-1].append(m)
        else:
            out.append([m])
    return out


def _aggregate(bucket: list[Mark], noun: str) -> Mark:
    """One mark standing for a bucket of marks of one track."""
    if len(bucket) == 1:
        return bucket[0]
    first = bucket[0]
    classes = {m.cls for m in bucket}
    base = first.cls.split()[0]
    if len(classes) == 1:
        cls = first.cls + " agg"
    else:
        words = set().union(*(c.split() for c in classes))
        cls = " ".join([base, "mixed", *sorted(words & {"hvo", "offnode", "check", "audit"})])
    tips = list(dict.fromkeys(m.tip for m in bucket))
    tip = f"{len(bucket)} {noun} here (zoom in to separate them):\n" + "\n".join(tips[:4])
    if len(tips) > 4:
        tip += f"\n... and {len(tips) - 4} more"
    target = None
    targets = [m.target for m in bucket if m.target is not None]
    if first.target is not None:
        target = (min(t[0] for t in targets), max(t[1] for t in targets))
    return Mark(first.track, min(m.x0 for m in bucket), max(m.x1 for m in bucket), cls, tip, first.link,
                target, [i for m in bucket for i in m.members])


def build_model(docs: dict, check: dict | None = None, title: str = "vmemdbg map",
                width: float = 1400.0, left: float = 130.0) -> MapModel:
    """The map of ``docs`` (view documents keyed by command name) and an optional check document."""
    summ, sect, vmm, mb, e8 = (docs[k] for k in ("summary", "sections", "vmemmap", "memblock", "e820"))
    sbits = summ["sparse"]["section_size_bits"]
    pfn_shift = sbits - 12
    base = summ["kernel"]["vmemmap_base"]
    sps = summ["kernel"]["struct_page_size"]
    secs = sect["sections"]
    runs = vmm["runs"]
    e820 = (e8.get("tables") or {}).get("e820_table") or []
    reserved = ((mb.get("reserved") or {}).get("regions") or []) if "error" not in mb else []
    nodes = summ.get("nodes") or []

    prov = section_provenance(secs, runs, pfn_shift)
    sruns = section_runs(secs, prov)
    mgroups, mdata = _memmap_groups(runs, base, sps)
    findings = [{"source": "audit", "kind": a["kind"], "text": a["detail"], "va": [a["start"], a["end"]],
                 "phys": None, "section": None} for a in vmm.get("audit", [])] + _check_findings(check)
    vm_end = base + (sps << (summ["sparse"]["max_physmem_bits"] - 12))
    for f in findings:  # a difference at a virtual address outside the vmemmap has no place on its axis
        if f.get("va") and not base <= f["va"][0] < f["va"][1] <= vm_end:
            f["text"] += f" (va {f['va'][0]:#x}-{f['va'][1]:#x} is outside the vmemmap: not placed)"
            f["va"] = None

    # -- axes -----------------------------------------------------------------------------------
    pspans = [(e["addr"], e["addr"] + e["size"]) for e in e820 if e["type"] == 1]
    pspans += [(n["start_pfn"] << 12, (n["start_pfn"] + n["spanned_pages"]) << 12) for n in nodes]
    pspans += [(secs[s]["nr"] << sbits, (secs[e - 1]["nr"] + 1) << sbits) for s, e in sruns]
    pspans += [(r["phys"], r["phys"] + r["end"] - r["start"]) for r in runs]
    pspans += [(r["base"], r["base"] + r["size"]) for r in reserved]
    phys_axis = Axis.build(pspans, left, width, minor=[(e["addr"], e["addr"] + e["size"]) for e in e820 if e["type"] != 1])
    vspans = [(r["start"] - base, r["end"] - base) for r in runs]
    vspans += [(f["va"][0] - base, f["va"][1] - base) for f in findings if f.get("va")]
    if not vspans:  # nothing mapped (yet): an empty 2 MiB axis
        vspans = [(0, 1 << 21)]
    virt_axis = Axis.build(vspans, left, width)

    marks: list[Mark] = []

    def add(track: str, axis: Axis, a: int, b: int, cls: str, tip: str) -> None:
        x0, x1 = axis.at([a, b]).tolist()
        marks.append(Mark(track, x0, x1, cls, tip))

    for n in nodes:
        a, b = n["start_pfn"] << 12, (n["start_pfn"] + n["spanned_pages"]) << 12
        add("nodes", phys_axis, a, b, f"node node{n['nid'] % 8}",
            f"node {n['nid']}: pfn {n['start_pfn']:#x}-{n['start_pfn'] + n['spanned_pages']:#x} "
            f"({human(n['spanned_pages'] << 12)} spanned), pglist_data {n['pgdat']:#x}")
    for e in e820:
        kind = "ram" if e["type"] == 1 else "other"
        add("e820", phys_axis, e["addr"], e["addr"] + e["size"], f"e820 e820-{kind}",
            f"e820 {e['name']}: {e['addr']:#x}-{e['addr'] + e['size'] - 1:#x} ({human(e['size'])})")
    for s, e in sruns:
        first, last = secs[s], secs[e - 1]
        p = PROVENANCES[int(prov[s])]
        a, b = first["nr"] << sbits, (last["nr"] + 1) << sbits
        add("sections", phys_axis, a, b, f"section-run prov-{p}",
            f"sections {first['nr']}-{last['nr']} ({e - s}), node {node(first['nid'])}, {p}: "
            f"{a:#x}-{b - 1:#x} ({human(b - a)})")
    trust = (mb.get("reserved") or {}).get("trust", "unknown") if "error" not in mb else "unknown"
    untrusted = trust in ("dangling", "corrupt")  # drawn, but marked: the array may hold stale entries
    max_numnodes = mb.get("max_numnodes")
    for i, r in enumerate(reserved):
        nid = r["nid"]
        add("reserved", phys_axis, r["base"], r["base"] + r["size"], "reserved untrusted" if untrusted else "reserved",
            f"memblock.reserved[{i}]: {r['base']:#x}-{r['base'] + r['size'] - 1:#x} ({human(r['size'])}) "
            f"nid {node(nid, max_numnodes)}{' (MAX_NUMNODES: after NUMA setup)' if nid == max_numnodes else ''} "
            f"flags {'|'.join(r.get('flag_names') or []) or 'NONE'}; array {trust}")
    sec_nr = np.array([x["nr"] for x in secs], dtype=np.int64)
    sec_nid = np.array([-1 if x["nid"] is None else x["nid"] for x in secs], dtype=np.int64)
    frames: list[Mark] = []
    vruns: list[Mark] = []
    for s, e in mgroups:
        grp = runs[s:e]
        lo = min(r["phys"] for r in grp)
        hi = max(r["phys"] + r["end"] - r["start"] for r in grp)
        lo_i = int(np.searchsorted(sec_nr, grp[0]["start_pfn"] >> pfn_shift))
        hi_i = int(np.searchsorted(sec_nr, (grp[-1]["end_pfn"] - 1) >> pfn_shift, side="right"))
        dnids = set(np.unique(sec_nid[lo_i:hi_i]).tolist()) - {-1}
        off = grp[0]["nid"] is not None and any(n != grp[0]["nid"] for n in dnids)
        r0 = grp[0]
        prot = "RW" if r0["writable"] else "RO"
        hvo = r0["provenance"] == "hvo"
        tip = (f"memmap {'run' if e - s == 1 else f'group of {e - s} runs'}: {r0['level'].upper()} {prot}, "
               f"backed by node {node(r0['nid'])} at {lo:#x}-{hi - 1:#x}, describes pfn {r0['start_pfn']:#x}-"
               f"{grp[-1]['end_pfn']:#x}{' (off-node)' if off else ''}")
        xm0, xm1, xs0, xs1 = phys_axis.at([lo, hi, r0["start_pfn"] << 12, grp[-1]["end_pfn"] << 12]).tolist()
        frames.append(Mark("memmap", xm0, xm1, f"memmap node{(r0['nid'] or 0) % 8}" + (" offnode" if off else ""),
                           tip, target=(xs0, xs1)))
        vtip = (f"vmemmap {grp[0]['start']:#x}-{grp[-1]['end']:#x}: {r0['level'].upper()} {prot}"
                f"{' HVO' if hvo else ''}, {e - s} run(s), provenance {r0['provenance']}")
        vx0, vx1 = virt_axis.at([grp[0]["start"] - base, grp[-1]["end"] - base]).tolist()
        vruns.append(Mark("vmemmap", vx0, vx1, f"vrun level-{r0['level']} {'rw' if r0['writable'] else 'ro'}"
                          + (" hvo" if hvo else ""), vtip))
    frames.sort(key=lambda m: m.x0)
    marks += [_aggregate(b, "memmap groups") for b in _bins(frames)]
    links = [(m.x0, m.x1, m.target[0], m.target[1], "link offnode" if "offnode" in m.cls else "link", m.tip)
             for m in marks if m.track == "memmap" and m.target is not None]
    marks += [_aggregate(b, "vmemmap run groups") for b in _bins(vruns)]

    fmarks: dict[str, list[Mark]] = {"pfindings": [], "vfindings": []}

    def fadd(track: str, axis: Axis, a: int, b: int, i: int, f: dict) -> None:
        x0, x1 = axis.at([a, b]).tolist()
        fmarks[track].append(Mark(track, x0, x1, f"finding {f['source']}", f"{f['source']} {f['kind']}: {f['text']}",
                                  f"finding-{i}", members=[i]))

    for i, f in enumerate(findings):
        if f.get("va"):
            fadd("vfindings", virt_axis, f["va"][0] - base, f["va"][1] - base, i, f)
            fadd("pfindings", phys_axis, (f["va"][0] - base) // sps << 12, -(-(f["va"][1] - base) // sps) << 12, i, f)
        if f.get("phys"):
            fadd("pfindings", phys_axis, f["phys"][0], f["phys"][1], i, f)
        if f.get("section") is not None and not f.get("phys") and not f.get("va"):
            fadd("pfindings", phys_axis, f["section"] << sbits, (f["section"] + 1) << sbits, i, f)
    for items in fmarks.values():
        items.sort(key=lambda m: m.x0)
        marks += [_aggregate(b, "findings") for b in _bins(items)]

    k = summ["kernel"]
    subtitle = (f"{k['release']}  {len(secs)} present sections in {len(sruns)} runs, {len(nodes)} node(s), "
                f"memmap {human(summ['memmap']['mapped_bytes'])} in {len(runs)} vmemmap runs, "
                f"{len(reserved)} memblock.reserved regions, {len(findings)} finding(s)")
    data = {
        "title": title, "subtitle": subtitle, "section_size_bits": sbits, "sections_per_root": summ["sparse"]["sections_per_root"],
        "phys": phys_axis.to_json(), "virt": virt_axis.to_json(), "vmemmap_base": f"{base:x}",
        "sections": _sections_data(secs, prov), "memmap": mdata,
        "findings": [{"source": f["source"], "kind": f["kind"], "text": f["text"],
                      "va": [f["va"][0] - base, f["va"][1] - base] if f.get("va") else None,  # offsets: exact in JS
                      "phys": f.get("phys"), "section": f.get("section")} for f in findings],
        "present": len(secs), "runs": len(runs),
    }
    counts = {"section_runs": len(sruns), "nodes": len(nodes), "reserved": len(reserved), "e820": len(e820),
              "memmap_groups": len(mgroups), "findings": len(findings)}
    return MapModel(title=title, phys=phys_axis, virt=virt_axis, marks=marks, links=links,
                    findings=findings, data=data, left=left, width=width, counts=counts)
