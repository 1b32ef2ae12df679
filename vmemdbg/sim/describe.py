"""``vmemdbg describe DUMP``: the machine description (docs/machine-format.md) a dump implies.

Every field says where it came from; what a dump cannot tell is assumed and listed as such
(docs/check.md has the table):

* e820: ``e820_table_firmware`` (what the firmware handed over, before the kernel's edits).
* nodes: each pgdat's span (``node_start_pfn``/``node_spanned_pages``); e820 RAM outside every
  span (page 0, which is never in memblock.memory) goes to the nearest node.
* layout: KERNELOFFSET, ``phys_base``, ``page_offset_base``, ``vmalloc_base``, ``vmemmap_base``;
  the image is ``[_text, _brk_end)``.
* kernel: the release picks the series' profile (vmemdbg/versions.py BOOT_RULES), refused when
  there is none; sizes come from VMCOREINFO (``SIZE(page)``, ``SIZE(mem_section)``,
  ``SIZE(pglist_data)``, the pglist_data offsets, ``LENGTH(node_data)``), the usage and flag
  layouts from the engine's reading of the sections.
* reservations: what sparse_init found reserved above each NODE_DATA — the frozen
  ``memblock.reserved`` (while it can be trusted) between the end of NODE_DATA(nid) and the top of
  the node's RAM, minus the objects sparse_init itself placed there.  alloc_node_data is the
  first top-down allocation of each node after the early reservations (arch/x86/mm/numa.c 6.1,
  mm/numa.c 6.12), so what lies above it was reserved before it.
* events after boot: sections present but not early were hot-added (``[[event]]`` kind hot-add).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..abi import (
    DEFAULT_BASES,
    PHYSICAL_START,
    SECTION_HAS_MEM_MAP,
    SECTION_IS_EARLY,
    SECTION_IS_ONLINE,
)
from ..e820 import read_e820_table
from ..errors import VmemdbgError
from ..intervals import merge_ranges
from ..memblock import read_memblock
from ..mmzone import present_sections
from ..versions import BOOT_RULES, KernelVersion
from ..vmemmap import vmemmap_mapping
from .machine import E820_TYPES, PROFILES

if TYPE_CHECKING:
    from ..kernel import Kernel

#: e820 type number → the name the machine format accepts (arch/x86/kernel/e820.c e820_print_type).
E820_NAMES = {number: name for name, number in E820_TYPES.items()}
#: Bytes of brk the Debian 6.1 and 6.12 builds had used when reserve_brk ran (both real boots:
#: the first memblock_reserve of setup_arch is [__brk_base, __brk_base + 0x11000)).
DEFAULT_BRK_USED = 0x11000


class DescribeError(VmemdbgError):
    """The dump lacks something without which no machine description can be made."""


@dataclass
class Description:
    """A machine description (the TOML document as a dict) and where each field came from."""

    machine: dict
    derived: list[tuple[str, str]] = field(default_factory=list)   # (field, source)
    assumed: list[tuple[str, str]] = field(default_factory=list)   # (field, what was assumed)
    #: nid → physical address of the dump's NODE_DATA (the anchor of exact placement)
    node_data: dict[int, int] = field(default_factory=dict)
    #: hot-added section numbers (present, not early)
    hotplug_sections: list[int] = field(default_factory=list)
    #: saved_command_line when the dump has it
    cmdline: str | None = None

    def as_dict(self) -> dict:
        """JSON form: the machine plus the derived/assumed lists."""
        return {"machine": self.machine,
                "derived": [{"field": f, "source": s} for f, s in self.derived],
                "assumed": [{"field": f, "assumption": a} for f, a in self.assumed],
                "node_data": {str(k): v for k, v in sorted(self.node_data.items())},
                "hotplug_sections": self.hotplug_sections, "cmdline": self.cmdline}


def _hex(v: int) -> str:
    return f"{v:#x}"


def _range(s: int, e: int) -> str:
    """[s, e) as the machine format's inclusive "START-END"."""
    return f"{s:#x}-{e - 1:#x}"


def _subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open ``spans`` minus ``holes``."""
    out = []
    for s, e in spans:
        cur = [(s, e)]
        for hs, he in holes:
            nxt = []
            for a, b in cur:
                if he <= a or hs >= b:
                    nxt.append((a, b))
                    continue
                if a < hs:
                    nxt.append((a, hs))
                if he < b:
                    nxt.append((he, b))
            cur = nxt
        out += cur
    return [(a, b) for a, b in out if b > a]


def _profile_for(kernel: "Kernel", d: Description) -> dict:
    """[kernel]: the release's series profile with the dump's own sizes."""
    release = kernel.release
    v = KernelVersion.parse(release)
    series = f"{v.major}.{v.minor}"
    if series not in BOOT_RULES:
        raise DescribeError(f"kernel {release!r} (series {series}) has no simulator profile; "
                            f"supported: {', '.join(BOOT_RULES)}")
    name = next(n for n, p in PROFILES.items() if p.version == series)
    info = kernel.info
    secs = present_sections(kernel)
    out: dict = {"profile": name, "release": release, "paging_levels": kernel.pgtable_levels,
                 "struct_page_size": kernel.struct_page_size, "mem_section_size": kernel.mem_section_size,
                 "usage_rcu_head": secs.usage_layout.struct_size == 24,
                 "zone_device": "TAINT_ZONE_DEVICE" in dict(secs.flag_layout.bits),
                 "nodes_shift": kernel.nodes_shift}
    d.derived.append(("kernel.profile", f"OSRELEASE {release} → series {series} ({name}; placement rules: "
                                        f"vmemdbg/versions.py BOOT_RULES[{series!r}])"))
    d.derived.append(("kernel.struct_page_size, mem_section_size, paging_levels, nodes_shift",
                      "VMCOREINFO SIZE(page), SIZE(mem_section), NUMBER(pgtable_l5_enabled), LENGTH(node_data)"))
    d.derived.append(("kernel.usage_rcu_head, zone_device", f"{secs.usage_reason}; {secs.flag_reason}"))
    pg = info.size("pglist_data")
    if pg:
        out["pglist_data_size"] = pg
        offs = {"off_nr_zones": "nr_zones", "off_node_start_pfn": "node_start_pfn",
                "off_node_present_pages": "node_present_pages", "off_node_spanned_pages": "node_spanned_pages",
                "off_node_id": "node_id"}
        for key, member in offs.items():
            o = info.offset(f"pglist_data.{member}")
            if o is not None:
                out[key] = o
        if "off_node_present_pages" not in out and "off_node_spanned_pages" in out:
            out["off_node_present_pages"] = out["off_node_spanned_pages"] - 8
        d.derived.append(("kernel.pglist_data_size", f"VMCOREINFO SIZE(pglist_data) = {pg}"))
    else:
        d.assumed.append(("kernel.pglist_data_size", f"no SIZE(pglist_data) in VMCOREINFO: the {name} "
                                                     f"value {PROFILES[name].pglist_data_size}"))
    return out


def _nodes(kernel: "Kernel", ram: list[tuple[int, int]], d: Description) -> list[dict]:
    """[[node]] from the pgdat spans; RAM outside every span goes to the nearest node."""
    spans = sorted((n["start_pfn"] << 12, (n["start_pfn"] + n["spanned_pages"]) << 12, n["nid"])
                   for n in kernel.nodes if n["spanned_pages"])
    if not spans:
        raise DescribeError("no node spans readable (node_data / pglist_data): cannot tell the NUMA layout")
    per: dict[int, list[tuple[int, int]]] = {}
    moved = []
    for s, e in ram:
        s, e = s & ~0xFFF, (e + 0xFFF) & ~0xFFF
        cur = s
        while cur < e:
            inside = [sp for sp in spans if sp[0] <= cur < sp[1]]
            if inside:
                _, b, nid = inside[0]
                end = min(e, b)
            else:
                nxt = [sp[0] for sp in spans if sp[0] > cur]
                end = min(e, min(nxt)) if nxt else e
                below = [sp for sp in spans if sp[1] <= cur]
                nid = (max(below, key=lambda sp: sp[1]) if below else min(spans))[2]
                moved.append((cur, end, nid))
            per.setdefault(nid, []).append((cur, end))
            cur = end
    nodes = []
    for nid in sorted(per):
        merged = merge_ranges(per[nid])
        nodes.append({"id": nid, "ranges": [_range(s, e) for s, e in merged]})
    d.derived.append(("node", "pgdat spans (node_data[nid]->node_start_pfn, node_spanned_pages) "
                              "cut to e820 RAM"))
    for s, e, nid in moved:
        d.assumed.append((f"node[{nid}]", f"e820 RAM {_range(s, e)} lies in no pgdat span "
                                          f"(not in memblock.memory): given to the nearest node {nid}"))
    d.assumed.append(("node.hotplug", "no SRAT hotpluggable flags (the dump keeps no SRAT)"))
    return nodes


def _sparse_objects(kernel: "Kernel") -> list[tuple[int, int]]:
    """Physical ranges sparse_init placed: roots array, root pages, usage arrays, memmap frames and
    vmemmap table pages of the boot sections."""
    po = kernel.page_offset_base
    secs = present_sections(kernel)
    out = [(kernel.roots_addr - po, kernel.roots_addr - po + 8 * kernel.nr_section_roots)]
    early = secs.has(SECTION_IS_EARLY)
    for a in np.unique(secs.addr[early] & ~np.uint64(0xFFF)).tolist():
        out.append((a - po, a - po + 4096))
    # usage arrays: one per sparse_init_nid group (a run of early sections with one nid), each
    # ``len(group) * stride`` bytes; placed from any member whose pointer survived
    stride = secs.usage_layout.stride
    idx = np.flatnonzero(early).tolist()
    nid = secs.nid.tolist()
    usage = secs.usage.tolist()
    groups: list[list[int]] = []
    for i in idx:
        if groups and nid[groups[-1][-1]] == nid[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    for g in groups:
        known = [(k, usage[i]) for k, i in enumerate(g) if usage[i]]
        if known:
            base = known[0][1] - known[0][0] * stride - po
            out.append((base, base + len(g) * stride))
    lv = vmemmap_mapping(kernel).leaves
    for p, sz in zip(lv.phys.tolist(), lv.size.tolist()):
        out.append((p, p + sz))
    out += [(t, t + 4096) for t in lv.tables]
    return out


def _reservations(kernel: "Kernel", nodes: list[dict], ram: list[tuple[int, int]], nd_size: int,
                  d: Description) -> list[dict]:
    """[[reserve]]: frozen memblock.reserved above each NODE_DATA, minus sparse_init's own objects."""
    mb = read_memblock(kernel)
    res = mb.get("reserved") or {}
    if res.get("trust") not in ("frozen", "live") or not res.get("regions"):
        d.assumed.append(("reserve", f"memblock.reserved cannot be trusted ({res.get('trust_reason', 'unreadable')}): "
                                     "no early reservations besides the kernel image; exact placement is "
                                     "not determined (check says so)"))
        return []
    regions = [(r["base"], r["base"] + r["size"]) for r in res["regions"] if r["size"]]
    known = _sparse_objects(kernel) + [(nd, nd + nd_size) for nd in d.node_data.values()]
    out = []
    for n in nodes:
        nid = n["id"]
        if nid not in d.node_data:
            continue
        nd = d.node_data[nid]
        spans = [(int(a, 16), int(b, 16) + 1) for a, b in (r.split("-") for r in n["ranges"])]
        tops = [min(b, e) for a, b in spans for s, e in ram if max(a, s) < min(b, e)]
        if not tops:
            continue
        top = max(tops)
        above = [(max(s, nd), min(e, top)) for s, e in regions if e > nd and s < top]
        for s, e in sorted(_subtract(above, known)):
            if any(max(s, a) < min(e, b) for a, b in spans):
                out.append({"range": _range(s, e), "name": f"reserved above NODE_DATA({nid})", "phase": "acpi"})
    d.derived.append(("reserve", f"memblock.reserved ({res['trust']}) between each NODE_DATA and the top of "
                                 "its node's RAM, less NODE_DATA, the roots array, root pages, usage arrays, "
                                 "memmap frames and vmemmap table pages; replayed after init_mem_mapping"))
    d.assumed.append(("reserve", "reservations below NODE_DATA are allocations made after sparse_init "
                                 "(boot-loader reservations there, other than the kernel image, are not recovered)"))
    return out


def describe(kernel: "Kernel") -> Description:
    """Derive the machine description of ``kernel``'s dump.

    The steps run in the order the fields appear in the machine file; each one records in
    ``d.derived`` / ``d.assumed`` where its fields came from.
    """
    d = Description({})
    m = d.machine
    m["name"] = f"described-{kernel.release}"
    m["description"] = "derived by vmemdbg describe"
    kernel_section = _profile_for(kernel, d)  # first: a kernel with no profile is refused before anything is read
    m["e820"], ram = _e820(kernel, d)
    m["kernel"] = kernel_section
    po = kernel.page_offset_base
    for n in kernel.nodes:
        d.node_data[n["nid"]] = n["pgdat"] - po
    m["cpu"] = _cpu(kernel, d)
    img_start, brk_end = _image(kernel, d)
    m["layout"] = _layout(kernel, img_start, brk_end, d)
    m["node"] = _nodes(kernel, ram, d)
    m["reserve"] = _reservations(kernel, m["node"], ram, _node_data_size(m), d)
    _boot(kernel, m, d)
    _hotplug(kernel, m, d)
    return d


def _e820(kernel: "Kernel", d: Description) -> tuple[list[str], list[tuple[int, int]]]:
    """[e820] from ``e820_table_firmware`` (else ``e820_table``), and the RAM ranges in it.

    RAM is E820_TYPE_RAM and E820_TYPE_RESERVED_KERN (types 1 and 128), what
    e820__memblock_setup (arch/x86/kernel/e820.c) adds to memblock.memory.
    """
    fw = read_e820_table(kernel, "e820_table_firmware")
    src = "e820_table_firmware"
    if not fw:
        fw = read_e820_table(kernel, "e820_table")
        src = "e820_table (the firmware copy is unreadable; the kernel's edits are replayed again)"
    if not fw:
        raise DescribeError("no e820 table readable (e820_table_firmware, e820_table): cannot tell the RAM layout")
    e820 = []
    for ent in fw:
        name = E820_NAMES.get(ent["type"])
        if name is None:
            d.assumed.append(("e820", f"entry {_range(ent['addr'], ent['addr'] + ent['size'])} has type "
                                      f"{ent['type']:#x}, left out"))
            continue
        e820.append(f"{_range(ent['addr'], ent['addr'] + ent['size'])} {name}")
    d.derived.append(("e820", src))
    ram = sorted((e["addr"], e["addr"] + e["size"]) for e in fw if e["type"] in (1, 128))
    return e820, ram


def _cpu(kernel: "Kernel", d: Description) -> dict:
    """[cpu]: PSE is proven by any PMD leaf in the vmemmap; GB pages cannot be told."""
    lv = vmemmap_mapping(kernel).leaves
    cpu = {"gbpages": True, "pse": bool(np.any(lv.shift == 21)) or not len(lv)}
    d.assumed.append(("cpu.gbpages", "true (changes only how many direct-map table pages init_mem_mapping "
                                     "takes above NODE_DATA, which the reservations above cover)"))
    d.derived.append(("cpu.pse", "vmemmap has PMD leaves" if cpu["pse"] else "vmemmap has no PMD leaf"))
    return cpu


def _image(kernel: "Kernel", d: Description) -> tuple[int, int]:
    """Physical ``[_text, _brk_end)`` of the kernel image, the end rounded up to a page.

    The end is what reserve_brk reserves (arch/x86/kernel/setup.c): the ``_brk_end`` variable,
    else ``__brk_base`` plus the brk the Debian builds use, else the end of the
    memblock.reserved region holding ``_text``.
    """
    text = kernel.symbol("_text")
    if text is None:
        raise DescribeError("_text not found (kallsyms/--symbols): cannot place the kernel image")
    img_start = kernel.kimg_to_phys(text)
    brk_end = None
    sym = kernel.symbol("_brk_end")
    if sym is not None:
        try:
            brk_end = kernel.kimg_to_phys(kernel.read_u64(sym))
        except VmemdbgError:
            brk_end = None
    if brk_end is not None:
        d.derived.append(("layout.image", "[_text, _brk_end) (the _brk_end variable)"))
    elif (brk_base := kernel.symbol("__brk_base")) is not None:
        brk_end = kernel.kimg_to_phys(brk_base) + DEFAULT_BRK_USED
        d.assumed.append(("layout.image", f"_brk_end is not in the dump: __brk_base + {DEFAULT_BRK_USED:#x} "
                                          "(the brk the Debian 6.1/6.12 builds use by reserve_brk)"))
    else:
        res = (read_memblock(kernel).get("reserved") or {}).get("regions") or []
        hold = [r["base"] + r["size"] for r in res if r["base"] <= img_start < r["base"] + r["size"]]
        if not hold:
            raise DescribeError("no _brk_end, __brk_base or memblock.reserved region holding _text: "
                                "cannot size the kernel image")
        brk_end = hold[0]
        d.assumed.append(("layout.image", "no _brk_end/__brk_base symbol: the image ends where the "
                                          "memblock.reserved region holding _text ends"))
    return img_start, (brk_end + 0xFFF) & ~0xFFF


def _layout(kernel: "Kernel", img_start: int, brk_end: int, d: Description) -> dict[str, Any]:
    """[layout]: the image, KASLR offset and the randomized region bases (VMCOREINFO and kallsyms)."""
    po = kernel.page_offset_base
    lay: dict[str, Any] = {"image": _range(img_start, brk_end), "kernel_offset": _hex(kernel.kaslr_offset),
           "page_offset_base": _hex(po), "vmemmap_base": _hex(kernel.vmemmap_base)}
    if kernel.vmalloc_base is not None:
        lay["vmalloc_base"] = _hex(kernel.vmalloc_base)
    levels = kernel.pgtable_levels
    defaults = tuple(DEFAULT_BASES[levels][k] for k in ("page_offset_base", "vmalloc_base", "vmemmap_base"))
    lay["kaslr"] = bool(kernel.kaslr_offset) or (po, kernel.vmalloc_base, kernel.vmemmap_base) != defaults
    lay["phys_base"] = _hex(kernel.phys_base)
    d.derived.append(("layout", "KERNELOFFSET, phys_base, page_offset_base, vmalloc_base, vmemmap_base "
                                "(VMCOREINFO and kallsyms)"))
    if img_start != kernel.phys_base + PHYSICAL_START + kernel.kaslr_offset:
        d.assumed.append(("layout.image", "_text is not at phys_base + 16 MiB + KERNELOFFSET"))
    return lay


def _node_data_size(m: dict) -> int:
    """Bytes alloc_node_data takes for NODE_DATA: sizeof(pglist_data) rounded up to the series'
    rounding (arch/x86/mm/numa.c 6.1, mm/numa.c 6.12)."""
    series = PROFILES[m["kernel"]["profile"]].version
    rnd = BOOT_RULES[series].node_data_round
    return -(-m["kernel"].get("pglist_data_size", PROFILES[m["kernel"]["profile"]].pglist_data_size) // rnd) * rnd


def _boot(kernel: "Kernel", m: dict, d: Description) -> None:
    """[boot] and the hugetlb ``[[event]]`` from ``saved_command_line`` (crashkernel=, hugepages=)."""
    cmdline = _cmdline(kernel)
    if cmdline is None:
        d.assumed.append(("boot", "saved_command_line is not in the dump: no crashkernel=, no "
                                  "movable_node, no memmap= (options that move early allocations)"))
    else:
        d.derived.append(("boot", f"saved_command_line {cmdline!r}"))
        d.cmdline = cmdline
        for opt in cmdline.split():
            if opt.startswith("crashkernel="):
                m["boot"] = {"crashkernel": opt.split("=", 1)[1]}
        huge = _hugetlb_events(cmdline, [n["id"] for n in m["node"]])
        if huge:
            m.setdefault("event", []).extend(huge)
            d.derived.append(("event", "hugetlb: hugepages=/hugepagesz=/hugetlb_free_vmemmap= of saved_command_line"))
            d.assumed.append(("event hugetlb", "pages spread round-robin over the nodes (hstate_next_node_to_alloc); "
                                               "their frames come from the page allocator, not replayed"))
    d.assumed.append(("alloc", "no other memblock allocations between init_mem_mapping and sparse_init "
                               "(none on the Debian kernels without crashkernel=)"))


def _hotplug(kernel: "Kernel", m: dict, d: Description) -> None:
    """The hot-add ``[[event]]``: sections present with a memmap but without SECTION_IS_EARLY, which
    only sparse_add_section (mm/sparse.c) makes.  Replaces any hugetlb events of ``_boot``."""
    secs = present_sections(kernel)
    hot = (~secs.has(SECTION_IS_EARLY)) & secs.has(SECTION_HAS_MEM_MAP)
    d.hotplug_sections = secs.nr[hot].tolist()
    if not d.hotplug_sections:
        return
    m["event"] = _hotplug_events(kernel, hot)
    known = {n["id"] for n in m["node"]}
    for ev in m["event"]:
        if ev["node"] not in known:
            near = _nearest_node(m["node"], int(ev["range"].split("-")[0], 16))
            d.assumed.append((f"event {ev['range']}", f"the node in its struct pages is unreadable "
                                                      f"({ev['node']}): node {near}, the nearest"))
            ev["node"] = near
    d.derived.append(("event", "hot-add: sections present with a memmap but without SECTION_IS_EARLY "
                               "(sparse_add_section); memmap_on_memory when the memmap lies in the section"))
    d.assumed.append(("event", "HVO of huge pages is not derived (the folios are not in the minimal dump); "
                               "check explains the remapped vmemmap by its read-only PTEs"))


def _nearest_node(nodes: list[dict], start: int) -> int:
    """The id of the [[node]] with a range starting nearest ``start``."""
    known = {n["id"] for n in nodes}
    return min(known, key=lambda nid: min(abs(int(r.split("-")[0], 16) - start)
                                          for r in next(n for n in nodes if n["id"] == nid)["ranges"]))


def _hotplug_events(kernel: "Kernel", hot: np.ndarray) -> list[dict]:
    """One hot-add [[event]] per run of consecutive hot-added sections (same node, online state and
    memmap placement); memmap_on_memory when the section's memmap lies in the section itself."""
    secs = present_sections(kernel)
    shift = kernel.pfn_section_shift + 12
    per_sec = kernel.pages_per_section * kernel.struct_page_size
    nrs = secs.nr[hot].tolist()
    online = secs.has(SECTION_IS_ONLINE)[hot].tolist()
    nids = secs.nid[hot].tolist()
    vas = np.array([kernel.vmemmap_base + nr * per_sec for nr in nrs], np.uint64)
    phys, ok = vmemmap_mapping(kernel).translate(vas)
    out: list[dict] = []
    for nr, on, nid, ph, good in zip(nrs, online, nids, phys.tolist(), ok.tolist()):
        self_hosted = bool(good) and ph >> shift == nr
        if (out and out[-1]["_end"] == nr and out[-1]["node"] == nid and out[-1]["online"] == on
                and out[-1]["memmap_on_memory"] == self_hosted):
            out[-1]["_end"] = nr + 1
            continue
        out.append({"_start": nr, "_end": nr + 1, "node": nid, "online": on, "memmap_on_memory": self_hosted})
    return [{"kind": "hot-add", "range": _range(e["_start"] << shift, e["_end"] << shift), "node": e["node"],
             "memmap_on_memory": e["memmap_on_memory"], "online": e["online"]} for e in out]


def _hugetlb_events(cmdline: str, nodes: list[int]) -> list[dict]:
    """hugetlb [[event]]s of ``hugepagesz=S hugepages=N`` pairs (mm/hugetlb.c hugepages_setup,
    hugepagesz_setup; default 2M) with ``hugetlb_free_vmemmap=on`` (mm/hugetlb_vmemmap.c)."""
    size, out = "2M", []
    free = any(o in ("hugetlb_free_vmemmap=on", "hugetlb_free_vmemmap=1", "hugetlb_free_vmemmap=y")
               for o in cmdline.split())
    for opt in cmdline.split():
        key, _, val = opt.partition("=")
        if key in ("hugepagesz", "default_hugepagesz") and val.upper() in ("2M", "1G"):
            size = val.upper()
        elif key == "hugepages" and val.isdigit() and int(val):
            n = int(val)
            for k, nid in enumerate(nodes):
                share = n // len(nodes) + (1 if k < n % len(nodes) else 0)
                if share:
                    out.append({"kind": "hugetlb", "size": size, "pages": share, "node": nid, "free_vmemmap": free})
    return out


def _cmdline(kernel: "Kernel") -> str | None:
    """saved_command_line, when the pointer and the string are in the dump."""
    sym = kernel.symbol("saved_command_line")
    if sym is None:
        return None
    try:
        ptr = kernel.read_u64(sym)
        raw = kernel.read(ptr, 4096 - (ptr & 0xFFF))
    except VmemdbgError:
        return None
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def to_toml(d: Description) -> str:
    """The description as a machine TOML file, with the derived/assumed notes as comments."""
    m = d.machine
    lines = [f"# vmemdbg describe: {m['description']}"]
    lines += [f"# derived  {f}: {s}" for f, s in d.derived]
    lines += [f"# ASSUMED  {f}: {a}" for f, a in d.assumed]
    if d.cmdline is not None:
        lines.append(f"# saved_command_line: {d.cmdline}")
    lines.append(f"name = {_q(m['name'])}")
    lines.append(f"description = {_q(m['description'])}")
    lines.append("e820 = [")
    lines += [f"  {_q(e)}," for e in m["e820"]]
    lines.append("]")
    for table in ("kernel", "cpu", "layout", "boot"):
        if table in m:
            lines.append(f"[{table}]")
            lines += [f"{k} = {_v(v)}" for k, v in m[table].items()]
    for arr, key in (("node", "node"), ("reserve", "reserve"), ("event", "event")):
        for item in m.get(arr, []):
            lines.append(f"[[{key}]]")
            lines += [f"{k} = {_v(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _v(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_v(x) for x in v) + "]"
    return _q(str(v))


__all__ = ["Description", "DescribeError", "describe", "to_toml"]
