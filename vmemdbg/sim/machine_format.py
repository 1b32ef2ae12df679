"""The machine description format (docs/machine-format.md): reading and validating the TOML.

The model it builds is :mod:`vmemdbg.sim.machine`. Every validation failure raises
:class:`~vmemdbg.sim.machine.MachineError` whose message starts with the name of the offending
field, e.g. ``node[1].ranges[0]: range 0x... is not page aligned``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from typing import Any

from ..abi import (
    DEFAULT_BASES,
    E820_ACPI,
    E820_NVS,
    E820_PMEM,
    E820_PRAM,
    E820_RAM,
    E820_RESERVED_KERN,
    E820_SOFT_RESERVED,
    KERNEL_IMAGE_SIZE,
    MAX_PHYSMEM_BITS,
    PAGE_SIZE,
    PHYSICAL_START,
    PMD_SIZE,
    PUD_SIZE,
    SECTION_SIZE_BITS,
)
from ..versions import BOOT_RULES, KernelVersion
from .machine import (
    E820_TYPES,
    PROFILES,
    E820Entry,
    Event,
    ExtraAlloc,
    Layout,
    Machine,
    MachineError,
    Node,
    Profile,
    Reservation,
)

#: Short e820 type names the format accepts besides the kernel's own (E820_TYPES).
_E820_ALIASES = {"ram": E820_RAM, "acpi": E820_ACPI, "nvs": E820_NVS, "pmem": E820_PMEM, "pram": E820_PRAM,
                 "soft_reserved": E820_SOFT_RESERVED, "reserved_kern": E820_RESERVED_KERN,
                 "ram_kern": E820_RESERVED_KERN}
_RANGE_RE = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s*-\s*(0x[0-9a-fA-F]+|\d+)\s*(.*)$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)i?B?\s*$", re.I)


def parse_size(text: str | int, fieldname: str) -> int:
    """Parse 123, "0x1000", "512M", "64G" or "8T" into bytes."""
    if isinstance(text, bool):
        raise MachineError(f"{fieldname}: expected a size, got {text!r}")
    if isinstance(text, int):
        return text
    if isinstance(text, str):
        t = text.strip()
        if t.lower().startswith("0x"):
            try:
                return int(t, 16)
            except ValueError:
                pass
        m = _SIZE_RE.match(t)
        if m:
            return int(m.group(1)) << (10 * " KMGTP".index(m.group(2).upper() or " "))
    raise MachineError(f"{fieldname}: cannot parse size {text!r}")


def _parse_int(value: Any, fieldname: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MachineError(f"{fieldname}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(value, 0)
    except ValueError:
        raise MachineError(f"{fieldname}: cannot parse integer {value!r}") from None


def _parse_range(text: Any, fieldname: str) -> tuple[int, int, str]:
    """Parse "START-END rest" with END inclusive (dmesg style); returns [start, end+1), rest."""
    if not isinstance(text, str):
        raise MachineError(f"{fieldname}: expected a string 'START-END', got {text!r}")
    m = _RANGE_RE.match(text)
    if not m:
        raise MachineError(f"{fieldname}: cannot parse range {text!r} (want 'START-END', END inclusive)")
    start, end = int(m.group(1), 0), int(m.group(2), 0) + 1
    if end <= start:
        raise MachineError(f"{fieldname}: empty or reversed range {text!r}")
    return start, end, m.group(3).strip()


def _check_keys(table: dict[str, Any], allowed: set[str], fieldname: str) -> None:
    extra = set(table) - allowed
    if extra:
        raise MachineError(f"{fieldname}: unknown key(s) {', '.join(sorted(extra))}")


def _parse_profile(data: dict[str, Any]) -> tuple[Profile, int]:
    _check_keys(data, {"profile", "paging_levels"} | {f.name for f in dataclasses.fields(Profile)},
                "kernel")
    name = data.get("profile", "debian-6.1")
    if name not in PROFILES:
        raise MachineError(f"kernel.profile: unknown profile {name!r} (known: {', '.join(PROFILES)})")
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(Profile):
        if f.name in data:
            v = data[f.name]
            if isinstance(f.default, bool):
                if not isinstance(v, bool):
                    raise MachineError(f"kernel.{f.name}: expected true/false, got {v!r}")
            elif isinstance(f.default, int):
                v = _parse_int(v, f"kernel.{f.name}")
            elif not isinstance(v, str):
                raise MachineError(f"kernel.{f.name}: expected a string, got {v!r}")
            overrides[f.name] = v
    base = PROFILES[name]
    if "release" in overrides:
        rel = KernelVersion.parse(overrides["release"])
        series = f"{rel.major}.{rel.minor}"
        if series not in BOOT_RULES:
            raise MachineError(f"kernel.release: {overrides['release']!r} (series {series}) has no simulator "
                               f"profile; supported: {', '.join(BOOT_RULES)}")
        want = overrides.get("version", base.version)
        if series != want:
            raise MachineError(f"kernel.release: {overrides['release']!r} is a {series} kernel but profile "
                               f"{name!r} replays {want}; pick a {series} profile "
                               f"({', '.join(n for n, p in PROFILES.items() if p.version == series) or 'none'})")
    prof = dataclasses.replace(base, **overrides)
    levels = _parse_int(data.get("paging_levels", 4), "kernel.paging_levels")
    if levels not in (4, 5):
        raise MachineError(f"kernel.paging_levels: must be 4 or 5, got {levels}")
    if prof.version not in BOOT_RULES:
        raise MachineError(f"kernel.version: no simulator profile for {prof.version!r}; "
                           f"supported: {', '.join(BOOT_RULES)}")
    if prof.section_size_bits != SECTION_SIZE_BITS:
        raise MachineError(f"kernel.section_size_bits: x86-64 uses {SECTION_SIZE_BITS}, got {prof.section_size_bits}")
    if prof.mem_section_size not in (16, 32):
        raise MachineError(f"kernel.mem_section_size: must be 16 or 32, got {prof.mem_section_size}")
    if prof.struct_page_size % 8 or not 56 <= prof.struct_page_size <= 128:
        raise MachineError(f"kernel.struct_page_size: unsupported size {prof.struct_page_size}")
    if not 0 <= prof.nodes_shift <= 10:
        raise MachineError(f"kernel.nodes_shift: must be 0..10, got {prof.nodes_shift}")
    offs = [prof.off_nr_zones, prof.off_node_start_pfn, prof.off_node_present_pages,
            prof.off_node_spanned_pages, prof.off_node_id]
    if offs != sorted(offs) or offs[-1] + 4 > prof.pglist_data_size:
        raise MachineError("kernel.pglist_data_size: field offsets must ascend and fit the struct")
    return prof, levels


def load_machine(path: str | os.PathLike[str]) -> Machine:
    """Read and validate a machine TOML file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise MachineError(f"toml: {e}") from None
    return machine_from_dict(data, default_name=os.path.splitext(os.path.basename(path))[0])


def machine_from_dict(data: dict[str, Any], default_name: str = "machine") -> Machine:
    """Build and validate a :class:`Machine` from parsed TOML data, table by table."""
    _check_keys(data, {"name", "description", "kernel", "cpu", "layout", "e820", "node",
                       "reserve", "alloc", "boot", "inject", "event"}, "machine")
    prof, levels = _parse_profile(data.get("kernel", {}))
    max_phys = 1 << MAX_PHYSMEM_BITS[levels]
    gbpages, pse = _parse_cpu(data.get("cpu", {}))
    e820 = _parse_e820(data.get("e820"), levels, max_phys)
    ram = [(e.start, e.end) for e in e820 if e.type in (E820_RAM, E820_RESERVED_KERN)]
    if not ram:
        raise MachineError("e820: no usable RAM")
    nodes = _parse_nodes(data.get("node", []), prof, ram, max_phys)
    layout = _parse_layout(data.get("layout", {}), levels, ram)
    reservations = [Reservation(layout.image_phys, layout.image_phys + layout.image_size,
                                "kernel image (_text.._brk_end)", "early")]
    reservations += _parse_reservations(data.get("reserve", []), max_phys)
    return Machine(name=str(data.get("name", default_name)), profile=prof, paging_levels=levels, gbpages=gbpages,
                   pse=pse, e820=tuple(e820), nodes=tuple(sorted(nodes, key=lambda n: n.nid)),
                   reservations=tuple(reservations), allocs=_parse_allocs(data.get("alloc", [])), layout=layout,
                   crashkernel=_parse_boot(data.get("boot", {})), pmd_alloc_fail=_parse_inject(data.get("inject", {})),
                   description=str(data.get("description", "")),
                   events=_parse_events(data.get("event", []), prof, nodes, max_phys))


def _parse_cpu(cpu: dict[str, Any]) -> tuple[bool, bool]:
    """[cpu]: gbpages and pse (both default true)."""
    _check_keys(cpu, {"gbpages", "pse"}, "cpu")
    gbpages = cpu.get("gbpages", True)
    pse = cpu.get("pse", True)
    for k, v in (("gbpages", gbpages), ("pse", pse)):
        if not isinstance(v, bool):
            raise MachineError(f"cpu.{k}: expected true/false, got {v!r}")
    return gbpages, pse


def _parse_e820(e820_raw: Any, levels: int, max_phys: int) -> list[E820Entry]:
    """e820 = ["START-END type", ...]: sorted, non-overlapping, below MAX_PHYSMEM_BITS."""
    if not e820_raw:
        raise MachineError("e820: at least one entry is required")
    e820: list[E820Entry] = []
    for i, item in enumerate(e820_raw):
        fname = f"e820[{i}]"
        start, end, tname = _parse_range(item, fname)
        if tname in E820_TYPES:
            t = E820_TYPES[tname]
        elif tname.lower() in _E820_ALIASES:
            t = _E820_ALIASES[tname.lower()]
        else:
            raise MachineError(f"{fname}: unknown e820 type {tname!r}")
        if end > max_phys:
            raise MachineError(f"{fname}: range ends at {end:#x}, past MAX_PHYSMEM_BITS "
                               f"({max_phys:#x} with {levels}-level paging)")
        e820.append(E820Entry(start, end, t))
    e820.sort(key=lambda e: e.start)
    for a, b in zip(e820, e820[1:]):
        if b.start < a.end:
            raise MachineError(f"e820: entries [{a.start:#x}-{a.end - 1:#x}] and "
                               f"[{b.start:#x}-{b.end - 1:#x}] overlap")
    return e820


def _parse_node(i: int, nd: dict[str, Any], prof: Profile, ram: list[tuple[int, int]], max_phys: int) -> Node:
    """One [[node]]: id, page-aligned ranges holding usable RAM, hotplug flag."""
    fname = f"node[{i}]"
    _check_keys(nd, {"id", "ranges", "hotplug"}, fname)
    if "id" not in nd:
        raise MachineError(f"{fname}.id: missing")
    nid = _parse_int(nd["id"], f"{fname}.id")
    if not 0 <= nid < prof.max_numnodes:
        raise MachineError(f"{fname}.id: {nid} outside 0..{prof.max_numnodes - 1} (NODES_SHIFT)")
    ranges = []
    for j, r in enumerate(nd.get("ranges", [])):
        rname = f"{fname}.ranges[{j}]"
        s, e, rest = _parse_range(r, rname)
        if rest:
            raise MachineError(f"{rname}: unexpected text {rest!r}")
        if s % PAGE_SIZE or e % PAGE_SIZE:
            raise MachineError(f"{rname}: range {s:#x}-{e - 1:#x} is not page aligned")
        if e > max_phys:
            raise MachineError(f"{rname}: range ends at {e:#x}, past MAX_PHYSMEM_BITS ({max_phys:#x})")
        ranges.append((s, e))
    if not ranges:
        raise MachineError(f"{fname}.ranges: node {nid} has no ranges")
    if not any(max(s, rs) < min(e, re_) for s, e in ranges for rs, re_ in ram):
        raise MachineError(f"{fname}.ranges: node {nid} has no usable e820 memory")
    hp = nd.get("hotplug", False)
    if not isinstance(hp, bool):
        raise MachineError(f"{fname}.hotplug: expected true/false")
    return Node(nid, tuple(sorted(ranges)), hp)


def _parse_nodes(raw: list[dict[str, Any]], prof: Profile, ram: list[tuple[int, int]], max_phys: int) -> list[Node]:
    """[[node]] tables (SRAT memory affinity): distinct ids, disjoint ranges covering all RAM
    (numa_meminfo_cover_memory); none means dummy_numa_init's single node 0."""
    nodes: list[Node] = []
    seen: set[int] = set()
    for i, nd in enumerate(raw):
        node = _parse_node(i, nd, prof, ram, max_phys)
        if node.nid in seen:
            raise MachineError(f"node[{i}].id: node {node.nid} listed twice")
        seen.add(node.nid)
        nodes.append(node)
    if not nodes:
        # No SRAT: dummy_numa_init puts all memory on node 0.
        nodes.append(Node(0, ((0, max(e for _, e in ram)),)))
    allr = sorted((s, e, n.nid) for n in nodes for s, e in n.ranges)
    for a, b in zip(allr, allr[1:]):
        if b[0] < a[1]:
            raise MachineError(f"node: ranges of node {a[2]} [{a[0]:#x}-{a[1] - 1:#x}] and "
                               f"node {b[2]} [{b[0]:#x}-{b[1] - 1:#x}] overlap")
    for s, e in ram:
        covered = sum(max(0, min(e, b) - max(s, a)) for a, b, _ in allr)
        if covered < e - s:
            raise MachineError(f"node: e820 RAM [{s:#x}-{e - 1:#x}] is not covered by node ranges "
                               "(numa_meminfo_cover_memory would reject the SRAT)")
    return nodes


def _parse_layout(lay: dict[str, Any], levels: int, ram: list[tuple[int, int]]) -> Layout:
    """[layout]: region bases (1 GiB aligned), KASLR, the kernel image range and offset."""
    _check_keys(lay, {"page_offset_base", "vmalloc_base", "vmemmap_base", "kaslr", "kernel_offset",
                      "image", "phys_base"}, "layout")
    bases = dict(DEFAULT_BASES[levels])
    for k in bases:
        if k in lay:
            bases[k] = _parse_int(lay[k], f"layout.{k}")
            if bases[k] % PUD_SIZE:
                raise MachineError(f"layout.{k}: {bases[k]:#x} is not 1 GiB aligned")
    kaslr = lay.get("kaslr", any(bases[k] != DEFAULT_BASES[levels][k] for k in bases))
    if not isinstance(kaslr, bool):
        raise MachineError("layout.kaslr: expected true/false")
    if "image" not in lay:
        raise MachineError("layout.image: the kernel image range 'START-END' is required")
    img_s, img_e, _ = _parse_range(lay["image"], "layout.image")
    if img_s % PMD_SIZE:
        raise MachineError(f"layout.image: start {img_s:#x} is not 2 MiB aligned")
    if img_e - img_s < 8 << 20:
        raise MachineError("layout.image: the image must span at least 8 MiB")
    if img_e > max(e for _, e in ram) or not any(s <= img_s and img_e <= e for s, e in ram):
        raise MachineError(f"layout.image: [{img_s:#x}-{img_e - 1:#x}] is not inside usable RAM")
    koff = _parse_int(lay.get("kernel_offset", 0), "layout.kernel_offset")
    if koff % PMD_SIZE or not 0 <= koff < KERNEL_IMAGE_SIZE - (img_e - img_s) - PHYSICAL_START:
        raise MachineError(f"layout.kernel_offset: {koff:#x} must be 2 MiB aligned inside the 1 GiB image window")
    layout = Layout(bases["page_offset_base"], bases["vmalloc_base"], bases["vmemmap_base"], kaslr,
                    koff, img_s, img_e - img_s)
    if "phys_base" in lay and _parse_int(lay["phys_base"], "layout.phys_base") != layout.phys_base:
        raise MachineError(f"layout.phys_base: inconsistent with image and kernel_offset "
                           f"(expected {layout.phys_base})")
    return layout


def _parse_reservations(raw: list[dict[str, Any]], max_phys: int) -> list[Reservation]:
    """[[reserve]] tables: early or ACPI-phase memblock_reserve ranges."""
    out = []
    for i, r in enumerate(raw):
        fname = f"reserve[{i}]"
        _check_keys(r, {"range", "name", "phase"}, fname)
        s, e, _ = _parse_range(r.get("range"), f"{fname}.range")
        if e > max_phys:
            raise MachineError(f"{fname}.range: ends past MAX_PHYSMEM_BITS ({max_phys:#x})")
        phase = r.get("phase", "early")
        if phase not in ("early", "acpi"):
            raise MachineError(f"{fname}.phase: must be 'early' or 'acpi', got {phase!r}")
        out.append(Reservation(s, e, str(r.get("name", fname)), phase))
    return out


def _parse_allocs(raw: list[dict[str, Any]]) -> tuple[ExtraAlloc, ...]:
    """[[alloc]] tables: allocations of boot code the simulator does not model."""
    allocs = []
    for i, a in enumerate(raw):
        fname = f"alloc[{i}]"
        _check_keys(a, {"size", "align", "nid", "min", "max", "caller", "kind", "phase"}, fname)
        if "size" not in a:
            raise MachineError(f"{fname}.size: missing")
        size = parse_size(a["size"], f"{fname}.size")
        align = parse_size(a.get("align", 64), f"{fname}.align")
        if align & (align - 1) or size <= 0:
            raise MachineError(f"{fname}.align: must be a power of two (and size > 0)")
        kind = a.get("kind", "try_nid")
        phase = a.get("phase", "after_numa")
        if kind not in ("try_nid", "phys_range"):
            raise MachineError(f"{fname}.kind: must be 'try_nid' or 'phys_range'")
        if phase not in ("before_numa", "after_numa"):
            raise MachineError(f"{fname}.phase: must be 'before_numa' or 'after_numa'")
        allocs.append(ExtraAlloc(size, align, _parse_int(a.get("nid", -1), f"{fname}.nid"),
                                 parse_size(a.get("min", 0), f"{fname}.min"),
                                 parse_size(a.get("max", 0), f"{fname}.max"),
                                 str(a.get("caller", "boot")), kind, phase))
    return tuple(allocs)


def _parse_boot(boot: dict[str, Any]) -> tuple[int, bool] | None:
    """[boot]: crashkernel=SIZE[,high]."""
    _check_keys(boot, {"crashkernel"}, "boot")
    if "crashkernel" not in boot:
        return None
    ck = boot["crashkernel"]
    if not isinstance(ck, str):
        raise MachineError("boot.crashkernel: expected a string like '512M' or '1G,high'")
    sz, _, high = ck.partition(",")
    if high not in ("", "high"):
        raise MachineError(f"boot.crashkernel: unsupported suffix {high!r}")
    return parse_size(sz, "boot.crashkernel"), high == "high"


def _parse_inject(inj: dict[str, Any]) -> frozenset[int]:
    """[inject]: sections whose vmemmap PMD allocation fails (numbers or 'START-END' ranges)."""
    _check_keys(inj, {"pmd_alloc_fail"}, "inject")
    fail: set[int] = set()
    for i, r in enumerate(inj.get("pmd_alloc_fail", [])):
        if isinstance(r, int):
            fail.add(r)
        else:
            s, e, _ = _parse_range(r, f"inject.pmd_alloc_fail[{i}]")
            fail.update(range(s, e))
    return frozenset(fail)


def _parse_events(raw: list[dict[str, Any]], prof: Profile, nodes: list[Node], max_phys: int) -> tuple[Event, ...]:
    """[[event]] tables (docs/machine-format.md "Events after boot")."""
    out = []
    sec = 1 << prof.section_size_bits
    nids = {n.nid for n in nodes}
    for i, ev in enumerate(raw):
        fname = f"event[{i}]"
        kind = ev.get("kind")
        if kind in ("hot-add", "online", "offline"):
            _check_keys(ev, {"kind", "range", "node", "memmap_on_memory", "online"} if kind == "hot-add"
                        else {"kind", "range"}, fname)
            s, e, _ = _parse_range(ev.get("range"), f"{fname}.range")
            if s % sec or e % sec:
                raise MachineError(f"{fname}.range: {s:#x}-{e - 1:#x} is not whole {sec >> 20} MiB sections")
            if e > max_phys:
                raise MachineError(f"{fname}.range: ends past MAX_PHYSMEM_BITS ({max_phys:#x})")
            node = _parse_int(ev.get("node", 0), f"{fname}.node")
            if kind == "hot-add" and node not in nids:
                raise MachineError(f"{fname}.node: node {node} has no memory at boot (not modelled)")
            flags = {}
            for k in ("memmap_on_memory", "online"):
                if k in ev:
                    if not isinstance(ev[k], bool):
                        raise MachineError(f"{fname}.{k}: expected true/false")
                    flags[k] = ev[k]
            out.append(Event(kind, s, e, node, **flags))
        elif kind == "hugetlb":
            _check_keys(ev, {"kind", "size", "pages", "node", "free_vmemmap"}, fname)
            size = parse_size(ev.get("size", "2M"), f"{fname}.size")
            if size not in (2 << 20, 1 << 30):
                raise MachineError(f"{fname}.size: x86-64 huge pages are 2M or 1G, got {size:#x}")
            pages = _parse_int(ev.get("pages", 1), f"{fname}.pages")
            node = _parse_int(ev.get("node", 0), f"{fname}.node")
            if pages < 1 or node not in nids:
                raise MachineError(f"{fname}: need pages >= 1 on a node with memory")
            fv = ev.get("free_vmemmap", True)
            if not isinstance(fv, bool):
                raise MachineError(f"{fname}.free_vmemmap: expected true/false")
            out.append(Event("hugetlb", node=node, size=size, pages=pages, free_vmemmap=fv))
        else:
            raise MachineError(f"{fname}.kind: must be hot-add, online, offline or hugetlb, got {kind!r}")
    return tuple(out)
