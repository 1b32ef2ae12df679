"""``vmemdbg check DUMP``: the dump against what its kernel should have built.

:func:`check` derives the machine (:mod:`.describe`), replays its boot (:func:`.boot.boot`), and
compares expected with actual:

* sections: present / online / early, the nid of the memmap, the usage pointer;
* every vmemmap leaf: level, writability, backing frame, backing node;
* the page-table pages on the path to every leaf;
* memmap overhead per node.

Each difference is either explained by a mechanism that legitimately changes the boot state
(hot-add after boot, memmap_on_memory, HVO remap, offlining) or flagged unexplained. Physical
placement (frames, usage pointers, table pages, roots array) is compared only on nodes whose
NODE_DATA the replay puts exactly where the dump has it: everything sparse_init allocates on a
node is placed below its NODE_DATA, so that address proves the derived reservations right. The
output names the nodes where it is not.  Mechanisms the replay models itself — a leaf from
memblock because the sparse buffer was exhausted, an off-node fallback — are expected, not
differences, and are listed as notes when they occur.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..abi import (
    PAGE_PRESENT,
    PAGE_PSE,
    PTE_PFN_MASK,
    SECTION_HAS_MEM_MAP,
    SECTION_IS_EARLY,
    SECTION_IS_ONLINE,
    SECTION_MARKED_PRESENT,
)
from ..census import vmemmap_census
from ..errors import VmemdbgError
from ..jsonout import SCHEMA
from ..mmzone import present_sections
from ..vmemmap import vmemmap_mapping
from .boot import BootState, boot
from .describe import Description, describe
from .machine import Machine, MachineError
from .machine_format import machine_from_dict
from .memblock import MemblockPanic
from .pagetable_build import index

if TYPE_CHECKING:
    from ..kernel import Kernel

PMD = 1 << 21
#: mechanism names (docs/check.md)
HOTPLUG = "hot-added after boot"
ALTMAP = "memmap_on_memory (altmap)"
HVO = "HVO remap"
OFFLINE = "offlined after boot"
BUFFER = "sparse buffer exhausted"
OFFNODE = "off-node fallback"


@dataclass
class Leaf:
    """One expected vmemmap leaf."""

    va: int
    shift: int
    phys: int
    node: int          # node sparse_init_nid populated it for
    source: str        # "buffer" or "memblock"


def _diff(kind: str, text: str, *, explained: bool = False, mechanism: str | None = None,
          va: tuple[int, int] | None = None, phys: tuple[int, int] | None = None,
          section: int | None = None) -> dict:
    return {"kind": kind, "explained": explained, "mechanism": mechanism, "text": text,
            "va": list(va) if va else None, "phys": list(phys) if phys else None, "section": section}


class _Nodes:
    """Node of a physical address by the dump's pgdat spans."""

    def __init__(self, kernel: "Kernel") -> None:
        spans = sorted((n["start_pfn"] << 12, (n["start_pfn"] + n["spanned_pages"]) << 12, n["nid"])
                       for n in kernel.nodes)
        self.starts = [s for s, _, _ in spans]
        self.spans = spans

    def of(self, phys: int) -> int:
        i = bisect.bisect_right(self.starts, phys) - 1
        if i >= 0 and phys < self.spans[i][1]:
            return self.spans[i][2]
        return -1


def expected_leaves(st: BootState) -> list[Leaf]:
    """Every vmemmap leaf the replay installed, ascending VA."""
    vm = st.vmemmap.state
    nfb = vm.not_from_buffer
    node_of_va = _group_node(st)
    out = [Leaf(va, 21, ph, node_of_va(va), "memblock" if va in nfb else "buffer")
           for va, ph in zip(vm.pmd_va, vm.pmd_phys)]
    out += [Leaf(va, 12, ph, node_of_va(va), "memblock" if va in nfb else "buffer") for va, ph in vm.pte.items()]
    out.sort(key=lambda lf: lf.va)
    return out


def _group_node(st: BootState) -> Callable[[int], int]:
    """vmemmap VA → the nid of the sparse_init_nid group that populated it."""
    p = st.machine.profile
    vbase = st.machine.layout.vmemmap_base
    per_sec = p.pages_per_section * p.struct_page_size
    nids = st.sparse.early_nid

    def f(va: int) -> int:
        nr = (va - vbase) // per_sec
        return int(nids[nr]) if 0 <= nr < len(nids) else -1
    return f


def _sim_path(st: BootState, va: int) -> list[tuple[str, int]]:
    """(level, table phys) of every table the replay's walk to ``va`` reads below the top."""
    pt = st.pagetables
    table = pt.top
    out = []
    for level in pt.names:
        e = pt.get(table, index(pt.levels, level, va))
        if level != "pgd":
            out.append((level, table))
        if not e & PAGE_PRESENT or e & PAGE_PSE or level == "pte":
            break
        table = e & PTE_PFN_MASK
    return out


def check(kernel: "Kernel") -> dict:
    """Describe, replay and compare; the ``check`` document (docs/json.md)."""
    d = describe(kernel)
    machine, st = _replay(d)
    nodes = _Nodes(kernel)
    diffs: list[dict] = []
    notes: list[str] = []

    placement = _placement(d, st)
    determined = _determined_by(placement)
    if all(v["determined"] for v in placement.values()):
        diffs += _roots(kernel, st)

    lv = vmemmap_mapping(kernel).leaves
    dump = _DumpLeaves(lv.va.tolist(), lv.shift.tolist(), lv.phys.tolist(), lv.writable.tolist(),
                       _provenance(kernel, lv.va.tolist()))
    exp = expected_leaves(st)
    covered = np.zeros(len(dump.va), bool)
    per_table, mismatched = _compare_leaves(kernel, st, exp, dump, nodes, covered, determined, notes)

    # a table page whose every leaf is wrong: one difference for the table page
    table_diffs, swallowed = _table_pages(kernel, st, exp, per_table, mismatched, determined)
    diffs += table_diffs
    leaf_bad_va: set[int] = set()          # expected leaves that did not match (by VA)
    bad_nodes: set[int] = set()
    for k, df in sorted(mismatched.items()):
        if not df["explained"]:
            leaf_bad_va.add(exp[k].va)
            bad_nodes.add(exp[k].node)
        if k not in swallowed:
            diffs.append(df)

    diffs += _extra_leaves(kernel, d, dump, covered, nodes, notes)
    diffs += _sections(kernel, st, d, leaf_bad_va, determined)
    overhead = _overhead(kernel, st, exp, nodes, diffs, bad_nodes)
    diffs += overhead.pop("_diffs")

    unexplained = [x for x in diffs if not x["explained"]]
    return {"schema": SCHEMA, "command": "check", "consistent": not unexplained,
            "differences": diffs,
            "counts": {"differences": len(diffs), "unexplained": len(unexplained),
                       "expected_leaves": len(exp), "dump_leaves": len(dump.va),
                       "sections": len(present_sections(kernel)), "expected_tables": len(st.vmemmap.state.tables)},
            "placement": {str(k): v for k, v in placement.items()},
            "overhead": overhead, "notes": list(dict.fromkeys(notes)),
            "describe": d.as_dict(), "release": kernel.release, "rules": machine.profile.version}


@dataclass
class _DumpLeaves:
    """The dump's vmemmap leaves, column by column, ascending VA, with each one's census provenance."""

    va: list[int]
    shift: list[int]
    phys: list[int]
    rw: list[bool]
    prov: list[str]


def _replay(d: Description) -> tuple[Machine, BootState]:
    """The derived machine and its replayed boot; events after boot are left out."""
    try:
        # events after boot are not replayed: check compares them by mechanism (docs/check.md)
        machine = machine_from_dict({k: v for k, v in d.machine.items() if k != "event"}, default_name="described")
        st = boot(machine)
    except (MachineError, MemblockPanic) as err:
        raise VmemdbgError(f"the derived machine cannot be replayed: {err}") from None
    return machine, st


def _placement(d: Description, st: BootState) -> dict[int, dict[str, Any]]:
    """Per node, whether exact placement is determined: the replay put NODE_DATA where the dump has it."""
    placement: dict[int, dict[str, Any]] = {}
    for nid, nd in sorted(d.node_data.items()):
        sim_nd = st.node_data.get(nid)
        ok = sim_nd == nd
        placement[nid] = {"determined": ok,
                          "reason": (f"NODE_DATA({nid}) replayed at {nd:#x} as in the dump" if ok else
                                     f"the derived inputs put NODE_DATA({nid}) at "
                                     f"{sim_nd:#x} but the dump has {nd:#x}: frames, usage arrays and "
                                     "table pages of this node are not compared" if sim_nd is not None else
                                     f"the replay allocated no NODE_DATA({nid})")}
    return placement


def _determined_by(placement: dict[int, dict[str, Any]]) -> Callable[[int], bool]:
    """``determined(nid)``: is exact placement compared on node ``nid`` (False for unknown nodes)."""
    def determined(nid: int) -> bool:
        return placement.get(nid, {"determined": False})["determined"]
    return determined


def _roots(kernel: "Kernel", st: BootState) -> list[dict]:
    """The mem_section roots array (allocated by memory_present, mm/sparse.c) against the replay's."""
    po = kernel.page_offset_base
    if st.sparse.roots_phys + po != kernel.roots_addr:
        return [_diff("roots", f"mem_section roots array at {kernel.roots_addr:#x}, expected "
                               f"{st.sparse.roots_phys + po:#x}")]
    return []


def _compare_leaves(kernel: "Kernel", st: BootState, exp: list[Leaf], dump: _DumpLeaves, nodes: _Nodes,
                    covered: np.ndarray, determined: Callable[[int], bool],
                    notes: list[str]) -> tuple[dict[tuple[str, int], list[int]], dict[int, dict]]:
    """Match every expected leaf with the dump's leaves over its VA range.

    Marks the dump leaves it covers in ``covered`` and appends the replay's own mechanisms to
    ``notes``; returns the replay's table pages (→ indices of the expected leaves below them) and
    the difference of every expected leaf that did not match (by index).
    """
    per_table: dict[tuple[str, int], list[int]] = {}   # sim table → indices of expected leaves
    mismatched: dict[int, dict] = {}
    for k, e in enumerate(exp):
        i0 = bisect.bisect_left(dump.va, e.va)
        i1 = bisect.bisect_left(dump.va, e.va + (1 << e.shift))
        for level, table in _sim_path(st, e.va):
            per_table.setdefault((level, table), []).append(k)
        notes += _leaf_notes(e, nodes)
        covered[i0:i1] = True
        if i1 == i0:
            mismatched[k] = _diff("vmemmap_missing", f"no mapping for the {'PMD' if e.shift == 21 else 'PTE'} "
                                  f"leaf at {e.va:#x} (expected frame {e.phys:#x}, node {e.node})",
                                  va=(e.va, e.va + (1 << e.shift)), section=_sec(kernel, e.va))
            continue
        if i1 - i0 == 1 and dump.shift[i0] == e.shift and dump.va[i0] == e.va:
            df = _same_level(kernel, e, dump, i0, nodes, determined)
        else:
            df = _split_leaf(kernel, e, dump, i0, i1)
        if df is not None:
            mismatched[k] = df
    return per_table, mismatched


def _leaf_notes(e: Leaf, nodes: _Nodes) -> list[str]:
    """The notes for mechanisms the replay itself predicts for leaf ``e`` (buffer exhausted, off-node)."""
    out = []
    if e.source == "memblock":
        out.append(f"vmemmap {e.va:#x}: block from memblock, not the sparse buffer ({BUFFER}), "
                   "as the replay predicts")
    if e.node >= 0 and nodes.of(e.phys) not in (-1, e.node):
        out.append(f"vmemmap {e.va:#x}: node {e.node} memmap on node {nodes.of(e.phys)} ({OFFNODE}), "
                   "as the replay predicts")
    return out


def _same_level(kernel: "Kernel", e: Leaf, dump: _DumpLeaves, i0: int, nodes: _Nodes,
                determined: Callable[[int], bool]) -> dict | None:
    """Leaf ``e`` against the one dump leaf ``i0`` at its VA and level: protection, then frame."""
    size = 1 << e.shift
    ph, rw = dump.phys[i0], dump.rw[i0]
    if not rw:
        mech = HVO if dump.prov[i0] == "hvo" else None
        return _diff("vmemmap_prot", f"leaf at {e.va:#x} is read-only; vmemmap_populate "
                     "maps it PAGE_KERNEL (RW)", explained=mech is not None, mechanism=mech,
                     va=(e.va, e.va + size), phys=(ph, ph + size), section=_sec(kernel, e.va))
    if ph != e.phys:
        got = nodes.of(ph)
        if got != e.node and e.node >= 0:
            return _diff("vmemmap_offnode", f"leaf at {e.va:#x} (memmap of node {e.node}) is "
                         f"backed by {ph:#x} on node {got}; expected {e.phys:#x} on node "
                         f"{nodes.of(e.phys)}", va=(e.va, e.va + size), phys=(ph, ph + size),
                         section=_sec(kernel, e.va))
        if determined(e.node):
            return _diff("vmemmap_phys", f"leaf at {e.va:#x} is backed by {ph:#x}, expected "
                         f"{e.phys:#x} (node {e.node})", va=(e.va, e.va + size),
                         phys=(ph, ph + size), section=_sec(kernel, e.va))
    return None


def _split_leaf(kernel: "Kernel", e: Leaf, dump: _DumpLeaves, i0: int, i1: int) -> dict:
    """Leaf ``e`` mapped by dump leaves ``i0``..``i1 - 1`` at another level: PTEs where a PMD was expected."""
    size = 1 << e.shift
    ro = [not dump.rw[i] for i in range(i0, i1)]
    if (any(p == "hvo" for p in dump.prov[i0:i1])
            or (any(ro) and all(dump.shift[i] == 12 for i in range(i0, i1)))):
        return _diff("vmemmap_level", f"PMD at {e.va:#x} split into {i1 - i0} PTEs, "
                     f"{sum(ro)} read-only", explained=True, mechanism=HVO,
                     va=(e.va, e.va + size), phys=(e.phys, e.phys + size), section=_sec(kernel, e.va))
    return _diff("vmemmap_level", f"{i1 - i0} leaves at {e.va:#x} where one "
                 f"{'PMD' if e.shift == 21 else 'PTE'} was expected",
                 va=(e.va, e.va + size), phys=(e.phys, e.phys + size), section=_sec(kernel, e.va))


def _extra_leaves(kernel: "Kernel", d: Description, dump: _DumpLeaves, covered: np.ndarray, nodes: _Nodes,
                  notes: list[str]) -> list[dict]:
    """The dump's leaves the replay did not install, one difference per run (one section at most)."""
    hot = set(d.hotplug_sections)
    block_size, block_note = _memory_block_size(kernel)
    if hot:
        notes.append(block_note)
    diffs: list[dict] = []
    extra = np.flatnonzero(~covered).tolist()
    for run in _runs(extra, dump.va, dump.shift, kernel):
        i0, i1 = run[0], run[-1]
        va0, va1 = dump.va[i0], dump.va[i1] + (1 << dump.shift[i1])
        sec = _sec(kernel, va0)
        if sec in hot or dump.prov[i0] in ("hotplug", "self_hosted"):
            diffs.append(_hotplug_run(kernel, d, dump, run, sec, block_size, nodes))
        else:
            diffs.append(_diff("vmemmap_extra", f"{len(run)} leaves at {va0:#x}-{va1:#x} the boot did not "
                               f"install (first backed by {dump.phys[i0]:#x})", va=(va0, va1), section=sec))
    return diffs


def _hotplug_run(kernel: "Kernel", d: Description, dump: _DumpLeaves, run: list[int], sec: int,
                 block_size: int, nodes: _Nodes) -> dict:
    """A run of extra leaves mapping the memmap of hot-added section ``sec``.

    Explained as hot-add (``__add_pages`` → ``sparse_add_section``, mm/sparse.c), as
    memmap_on_memory when the altmap of the memory block backs it at the expected frames
    (``mhp_init_memmap_on_memory``, mm/memory_hotplug.c), or as an off-node fallback.
    """
    i0, i1 = run[0], run[-1]
    va0, va1 = dump.va[i0], dump.va[i1] + (1 << dump.shift[i1])
    ph0 = dump.phys[i0]
    lo = sec << (kernel.pfn_section_shift + 12)
    self_hosted = dump.prov[i0] == "self_hosted" or _in_hotplug_range(ph0, d, kernel)
    if self_hosted:  # the altmap: the block's memmap from the block's own first pages
        block = lo // block_size * block_size
        base_va = kernel.vmemmap_base + (block >> 12) * kernel.struct_page_size
        wrong = [i for i in run if dump.phys[i] != block + dump.va[i] - base_va]
        if wrong:
            i = wrong[0]
            size = 1 << dump.shift[i]
            return _diff("vmemmap_phys", f"memmap_on_memory leaf at {dump.va[i]:#x} is backed by "
                         f"{dump.phys[i]:#x}; the altmap of block {block:#x} puts it at "
                         f"{block + dump.va[i] - base_va:#x}", va=(dump.va[i], dump.va[i] + size),
                         phys=(dump.phys[i], dump.phys[i] + size), section=sec)
        mech = ALTMAP
    else:
        got = nodes.of(ph0)
        want = _section_nid(kernel, sec)
        mech = OFFNODE if got >= 0 and want >= 0 and got != want else HOTPLUG
    return _diff("vmemmap_extra", f"{len(run)} leaves at {va0:#x}-{va1:#x} map the memmap of "
                 f"hot-added section {sec} (pfn {lo >> 12:#x})"
                 + (", backed by the hot-added memory itself" if self_hosted else "")
                 + (f", on node {nodes.of(ph0)} (alloc_pages_node fell back)" if mech == OFFNODE else ""),
                 explained=True, mechanism=mech, va=(va0, va1), phys=(ph0, ph0 + (1 << dump.shift[i0])),
                 section=sec)


def _sec(kernel: "Kernel", va: int) -> int:
    return (va - kernel.vmemmap_base) // kernel.struct_page_size >> kernel.pfn_section_shift


def _runs(idx: list[int], va: list[int], shift: list[int], kernel: "Kernel") -> list[list[int]]:
    """VA-contiguous runs of leaf indices, one section at most each."""
    out: list[list[int]] = []
    for i in idx:
        if (out and out[-1][-1] == i - 1 and va[i - 1] + (1 << shift[i - 1]) == va[i]
                and _sec(kernel, va[i]) == _sec(kernel, va[out[-1][0]])):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _section_nid(kernel: "Kernel", nr: int) -> int:
    """The node in the struct pages of section ``nr``'s first pfn (-1 if unknown)."""
    i = present_sections(kernel).index_of(np.array([nr]))[0]
    return int(present_sections(kernel).nid[i]) if i >= 0 else -1


def _memory_block_size(kernel: "Kernel") -> tuple[int, str]:
    """memory_block_size_bytes(): x86's ``memory_block_size_probed`` (arch/x86/mm/init_64.c) when
    kallsyms has it, else one section (what probe_memory_block_size picks below 64 GiB)."""
    sec = 1 << (kernel.pfn_section_shift + 12)
    sym = kernel.symbol("memory_block_size_probed")
    if sym is not None:
        try:
            v = kernel.read_u64(sym)
        except VmemdbgError:
            v = 0
        if v and v % sec == 0 and v & (v - 1) == 0:
            return v, f"memory blocks of {v >> 20} MiB (memory_block_size_probed)"
    return sec, (f"memory block size assumed {sec >> 20} MiB (one section; memory_block_size_probed "
                 "is not in the dump): memmap_on_memory frames are compared against it")


def _in_hotplug_range(phys: int, d: Description, kernel: "Kernel") -> bool:
    """True if ``phys`` lies in a hot-added section (memmap_on_memory puts the memmap there)."""
    shift = kernel.pfn_section_shift + 12
    return (phys >> shift) in set(d.hotplug_sections)


def _provenance(kernel: "Kernel", d_va: list[int]) -> list[str]:
    """Per dump leaf, the census run's ``provenance`` ("boot" when the census has none)."""
    runs = vmemmap_census(kernel).runs
    starts = [r["start"] for r in runs]
    out = []
    for va in d_va:
        i = bisect.bisect_right(starts, va) - 1
        out.append(runs[i].get("provenance", "boot") if i >= 0 else "boot")
    return out


def _table_pages(kernel: "Kernel", st: BootState, exp: list[Leaf], per_table: dict, mismatched: dict,
                 determined: Callable[[int], bool]) -> tuple[list[dict], set[int]]:
    """Compare the table page at each level of each expected leaf's path with the dump's."""
    diffs: list[dict] = []
    swallowed: set[int] = set()
    dump_path: dict[int, dict[str, int]] = {}
    for k, e in enumerate(exp):
        try:
            tr = kernel.translate(e.va)
            dump_path[k] = {s.level: s.table for s in tr.path}
        except VmemdbgError:
            dump_path[k] = {}
    depth = {"pte": 0, "pmd": 1, "pud": 2, "p4d": 3}
    # lowest level first: a reused PMD table is reported once, not again for the PUD above it
    for (level, table), ks in sorted(per_table.items(), key=lambda x: (depth[x[0][0]], x[0][1])):
        owners = [exp[k].node for k in ks]
        node = max(set(owners), key=owners.count)
        got = {dump_path[k].get(level) for k in ks}
        va0 = exp[ks[0]].va
        va1 = exp[ks[-1]].va + (1 << exp[ks[-1]].shift)
        if got != {table} and determined(node):
            other = sorted(x for x in got if x is not None)
            diffs.append(_diff("table_page", f"vmemmap {level} table for {va0:#x}-{va1:#x} is at "
                               f"{', '.join(f'{x:#x}' for x in other) or 'no page'}, expected {table:#x}",
                               va=(va0, va1), phys=(table, table + 4096)))
            swallowed.update(k for k in ks if k in mismatched and not mismatched[k]["explained"])
            continue
        bad = [k for k in ks if k in mismatched and not mismatched[k]["explained"]]
        if len(ks) > 1 and len(bad) == len(ks) and not swallowed.intersection(ks) and level != "pte":
            diffs.append(_diff("table_page", f"vmemmap {level} table page {table:#x} ({va0:#x}-{va1:#x}) is "
                               f"still linked but none of its {len(ks)} entries is what the kernel wrote: "
                               "the page was freed and reused", va=(va0, va1), phys=(table, table + 4096)))
            swallowed.update(bad)
    return diffs, swallowed


def _sections(kernel: "Kernel", st: BootState, d: Description, leaf_bad_va: set[int],
              determined: Callable[[int], bool]) -> list[dict]:
    """present / online / early, nid and usage of every section."""
    secs = present_sections(kernel)
    po = kernel.page_offset_base
    diffs: list[dict] = []
    words = st.sparse.words
    sim_present = set(np.flatnonzero(words & np.uint64(SECTION_MARKED_PRESENT)).tolist())
    d_nr = secs.nr.tolist()
    d_early = secs.has(SECTION_IS_EARLY).tolist()
    d_online = secs.has(SECTION_IS_ONLINE).tolist()
    d_valid = secs.has(SECTION_HAS_MEM_MAP).tolist()
    d_usage = secs.usage.tolist()
    d_nid = secs.nid.tolist()
    per_sec = kernel.pages_per_section * kernel.struct_page_size
    shift = kernel.pfn_section_shift + 12
    for i, nr in enumerate(d_nr):
        rng = (nr << shift, (nr + 1) << shift)
        if nr not in sim_present:
            if not d_early[i] and d_valid[i]:
                diffs.append(_diff("section_extra", f"section {nr} [{rng[0]:#x}-{rng[1] - 1:#x}] present "
                                   f"(node {d_nid[i]}, {'online' if d_online[i] else 'offline'}), not early",
                                   explained=True, mechanism=HOTPLUG, phys=rng, section=nr))
            else:
                diffs.append(_diff("section_extra", f"section {nr} [{rng[0]:#x}-{rng[1] - 1:#x}] is present "
                                   "but the boot did not mark it", phys=rng, section=nr))
            continue
        if not d_early[i]:
            diffs.append(_diff("section_flags", f"section {nr} lost SECTION_IS_EARLY (removed and added again?)",
                               section=nr))
            continue
        if not d_online[i]:
            diffs.append(_diff("section_flags", f"section {nr} is offline", explained=True, mechanism=OFFLINE,
                               section=nr))
        exp_nid = int(st.sparse.early_nid[nr])
        va = kernel.vmemmap_base + nr * per_sec
        first_leaf_ok = not any(va <= x < va + per_sec or x <= va < x + PMD for x in leaf_bad_va)
        if first_leaf_ok and d_nid[i] != exp_nid:
            diffs.append(_diff("section_nid", f"section {nr}: struct pages carry node {d_nid[i]}, expected "
                               f"node {exp_nid}", section=nr))
        exp_usage = int(st.sparse.usage[nr])
        exp_usage = exp_usage + po if exp_usage else 0
        if d_usage[i] == 0 and exp_usage:
            diffs.append(_diff("usage", f"section {nr}: usage is NULL, expected {exp_usage:#x}", section=nr))
        elif determined(exp_nid) and d_usage[i] != exp_usage:
            diffs.append(_diff("usage", f"section {nr}: usage at {d_usage[i]:#x}, expected {exp_usage:#x}",
                               section=nr))
    for nr in sorted(sim_present - set(d_nr)):
        diffs.append(_diff("section_missing", f"section {nr} is not present; the boot marked it present "
                           f"(node {int(st.sparse.early_nid[nr])})", section=nr))
    return diffs


def _overhead(kernel: "Kernel", st: BootState, exp: list[Leaf], nodes: _Nodes, diffs: list[dict],
              bad_nodes: set[int]) -> dict:
    """memmap bytes per node, expected (boot) against actual (census)."""
    expected: dict[int, int] = {}
    for leaf in exp:
        n = nodes.of(leaf.phys)
        expected[n] = expected.get(n, 0) + (1 << leaf.shift)
    actual = {(n["nid"] if n["nid"] is not None else -1): n["memmap_bytes"]
              for n in vmemmap_census(kernel).overhead["nodes"]}
    explained_extra: dict[int, int] = {}
    for df in diffs:
        if df["kind"] == "vmemmap_extra" and df["explained"] and df["va"]:
            n = nodes.of(df["phys"][0]) if df["phys"] else -1
            explained_extra[n] = explained_extra.get(n, 0) + df["va"][1] - df["va"][0]
    rows, out_diffs = [], []
    for n in sorted(set(expected) | set(actual)):
        e, a, x = expected.get(n, 0), actual.get(n, 0), explained_extra.get(n, 0)
        rows.append({"nid": n if n >= 0 else None, "expected_bytes": e, "actual_bytes": a, "explained_bytes": x})
        touched = any(df["kind"].startswith(("vmemmap", "table")) for df in diffs
                      if df["phys"] and nodes.of(df["phys"][0]) == n)
        if a != e + x and n not in bad_nodes and not touched and not any(not df["explained"] for df in diffs):
            out_diffs.append(_diff("overhead", f"node {n}: {a} bytes of memmap, expected {e}"
                                   + (f" + {x} explained" if x else "")))
    return {"nodes": rows, "_diffs": out_diffs}


__all__ = ["check", "expected_leaves"]
