"""Dumps shaped like real ones and the read path that serves them (issue: real scale).

* ``simulate --layout vmcore|qemu|kdump``: /proc/vmcore-shaped sparse ELF, QEMU-shaped ELF and the
  kdump-compressed variant; drgn (and makedumpfile, crash where installed) open them and agree.
* ``read_phys`` and ``gather_u64`` agree on every byte they can and cannot read.
* The node of a backing frame comes from the kernel's node ranges where they decide, otherwise from
  the struct page, and equals drgn's page_to_nid either way.
No timing here: speed lives in bench/.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli_json, real_dump, real_truth

from vmemdbg.census import vmemmap_census
from vmemdbg.dump import open_dump
from vmemdbg.elfcore import ELF64_PHDR, PT_LOAD, PT_NOTE, ElfCoreSource
from vmemdbg.elfwrite import elf_note
from vmemdbg.errors import MemoryFault
from vmemdbg.jsonout import decode
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.sim import simulate
from vmemdbg.sim.machine_format import load_machine
from vmemdbg.vmemmap import vmemmap_mapping

drgn = pytest.importorskip("drgn")
from drgn.helpers.linux.mm import follow_phys, phys_to_page  # noqa: E402
from drgn.helpers.linux.mmzone import for_each_present_section, section_decode_mem_map  # noqa: E402

MACHINE = ROOT / "fixtures" / "machines" / "q35-2node-8g.toml"
VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
FULL_1G = Path("/work/dumps/base-6.1/1g-nokaslr/vmcore.elf")


def audit_json(path: Path) -> dict:
    """``vmemdbg audit --json`` of a dump, through the CLI (in this process), addresses as integers."""
    return decode(cli_json("audit", path))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The q35 two-node machine written in the pages, vmcore, qemu and kdump layouts."""
    d = tmp_path_factory.mktemp("layouts")
    out = {"debug": d / "q35.debug"}
    for layout in ("pages", "vmcore", "qemu", "kdump"):
        out[layout] = d / f"q35.{layout}"
        r = simulate(MACHINE, out[layout], debuginfo=out["debug"], layout=layout)
    out["sim"] = r
    return out


def test_vmcore_layout_is_one_load_per_ram_range(layouts: dict) -> None:
    """One PT_LOAD per e820 usable range (the first page excepted), p_filesz == p_memsz, kdump
    p_vaddr, plus the kernel-text PT_LOAD; the file is sparse and unused memory reads as zero."""
    usable = [e for e in load_machine(MACHINE).e820 if e.type == 1]
    path = layouts["vmcore"]
    with open(path, "rb") as f:
        raw = f.read(4096)
    phnum = struct.unpack_from("<H", raw, 56)[0]
    ph = np.frombuffer(raw, dtype=ELF64_PHDR, count=phnum, offset=64)
    assert list(ph["p_type"]) == [PT_NOTE] + [PT_LOAD] * (phnum - 1)
    ram = ph[2:]
    assert [(int(p), int(p + s)) for p, s in zip(ram["p_paddr"], ram["p_memsz"])] == \
        [(max(e.start, 0x1000), e.end & ~0xFFF) for e in usable]
    assert np.all(ram["p_filesz"] == ram["p_memsz"])
    po = layouts["sim"].bases["page_offset_base"]
    assert np.all(ram["p_vaddr"] == ram["p_paddr"] + np.uint64(po))
    assert int(ph[1]["p_vaddr"]) >> 31 == 0x1FFFFFFFF  # kernel text at __START_KERNEL_map
    st = path.stat()
    assert st.st_size >= 8 << 30 - 1 and st.st_blocks * 512 < st.st_size // 100
    src = ElfCoreSource(path)
    assert src.read_phys(6 << 30, 4096) == bytes(4096)  # never written: zero, not a fault
    with pytest.raises(MemoryFault):
        src.read_phys(0x80000000, 8)  # the PCI hole is not RAM


def test_layouts_audit_alike(layouts: dict) -> None:
    """Every layout holds the same machine: the full audit is identical."""
    ref = audit_json(layouts["pages"])
    for layout in ("vmcore", "qemu", "kdump"):
        assert audit_json(layouts[layout]) == ref, layout
    q = ElfCoreSource(layouts["qemu"])
    assert not q.kdump_style


@pytest.mark.parametrize("layout", ["vmcore", "kdump"])
def test_drgn_reads_the_layout_natively(layouts: dict, layout: str) -> None:
    """drgn opens the file itself (set_core_dump, no callbacks) and its helpers agree with the
    engine: sections, mem_map, every vmemmap leaf's backing frame and that frame's node."""
    prog = drgn.Program()
    prog.set_core_dump(str(layouts[layout]))
    prog.load_debug_info([str(layouts["debug"])])
    k = Kernel(open_dump(layouts[layout]))
    secs = present_sections(k)
    got = [(nr, section_decode_mem_map(ms, nr).value_()) for nr, ms in for_each_present_section(prog)]
    assert [n for n, _ in got] == secs.nr.tolist()
    mm = prog["init_mm"].address_of_()
    shift = 64 - (prog["node_data"].type_.length - 1).bit_length()
    census = vmemmap_census(k)
    assert census.counts["nid_source"] == {"node_ranges": len(vmemmap_mapping(k).leaves), "struct_page": 0}
    for run in census.runs:
        phys = follow_phys(mm, run["start"]).value_()
        assert phys == run["phys"]
        assert phys_to_page(prog, phys).flags.value_() >> shift == run["nid"]


def test_kdump_variant_format(layouts: dict) -> None:
    """The kdump variant: makedumpfile's header, free memory left out, pages compressed."""
    raw = layouts["kdump"].read_bytes()
    assert raw[:8] == b"KDUMP   " and struct.unpack_from("<i", raw, 8)[0] == 6
    block_size, sub_blocks, bitmap_blocks = struct.unpack_from("<iiI", raw, 428)
    dump_level = struct.unpack_from("<i", raw, block_size + 8)[0]
    assert (block_size, dump_level) == (4096, 16)
    half = bitmap_blocks * block_size // 2
    b1 = np.unpackbits(np.frombuffer(raw, np.uint8, half, block_size * (1 + sub_blocks)), bitorder="little")
    b2 = np.unpackbits(np.frombuffer(raw, np.uint8, half, block_size * (1 + sub_blocks) + half), bitorder="little")
    usable = [e for e in load_machine(MACHINE).e820 if e.type == 1]
    assert int(b1.sum()) == sum((e.end >> 12) - (max(e.start, 0x1000) + 0xFFF >> 12) for e in usable)
    assert 0 < int(b2.sum()) < int(b1.sum()) // 1000 and not np.any(b2 & ~b1)
    assert len(raw) < 2 << 20


@pytest.mark.skipif(shutil.which("makedumpfile") is None, reason="makedumpfile is not installed")
def test_makedumpfile_accepts_the_simulated_dump(tmp_path: Path) -> None:
    """makedumpfile -c -d 31 turns a small simulated /proc/vmcore-shaped dump into a kdump file
    whose audit equals the ELF's (VMCOREINFO names init_uts_ns and nodemask_t for it)."""
    elf, out = tmp_path / "1000m.elf", tmp_path / "1000m.kdump"
    simulate(ROOT / "fixtures" / "machines" / "real-1000m.toml", elf, layout="vmcore")
    subprocess.run(["makedumpfile", "-c", "-d", "31", str(elf), str(out)], capture_output=True, check=True,
                   timeout=300)
    assert audit_json(out) == audit_json(elf)


@pytest.mark.skipif(shutil.which("crash") is None or not VMLINUX.exists() or not FULL_1G.exists(),
                    reason="needs crash, the -dbg vmlinux and the full 1 GiB real dump")
def test_crash_reads_the_kdump_writer(tmp_path: Path) -> None:
    """crash (with the distribution vmlinux) reads the writer's kdump form of a real dump exactly
    as the ELF: kmem -n and sys. (crash refuses the simulator's debug ELF as a vmlinux.)"""
    from vmemdbg.sim.kdump import compress

    kd = tmp_path / "1g.kdump"
    compress(FULL_1G, kd, dump_level=0)
    cmds = tmp_path / "cmds"
    cmds.write_text("kmem -n\nsys\nquit\n")

    def crash(dump: Path) -> list[str]:
        res = subprocess.run(["crash", "-s", str(VMLINUX), str(dump), "-i", str(cmds)], capture_output=True,
                             text=True, timeout=600)
        return [line for line in res.stdout.splitlines() if "DUMPFILE" not in line]

    ref = crash(FULL_1G)
    assert any("NODE" in line for line in ref)
    assert crash(kd) == ref


# -- the read path ----------------------------------------------------------------------------------

def _hostile_core(path: Path) -> dict[str, tuple[int, int]]:
    """An ELF core whose PT_LOADs exercise every read rule; returns name -> (paddr, memsz)."""
    rng = np.random.default_rng(8)
    data = rng.integers(1, 255, 0x9000, dtype=np.uint8).tobytes()
    segs = {  # name: (paddr, memsz, filesz, offset relative to the data start, or absolute if big)
        "tail": (0x0000, 0x3000, 0x2000, 0x0000),        # [0x2000, 0x3000) reads as zero
        "adjacent": (0x3000, 0x1000, 0x1000, 0x2000),    # words straddle tail|adjacent
        "next": (0x4000, 0x1000, 0x1000, 0x3000),        # and adjacent|next
        "huge_off": (0x10000, 0x1000, 0x1000, 1 << 63),  # p_offset >= 2^63: unreadable
        "wrap_off": (0x20000, 0x1000, 0x1000, (1 << 64) - 0x800),  # offset + size wraps: unreadable
        "past_eof": (0x30000, 0x2000, 0x2000, 0x8000),   # half inside the file, half past EOF
        "odd": (0x40001, 0x100, 0x100, 0x4003),          # unaligned in memory and in the file
    }
    note = elf_note(b"VMCOREINFO", 0, b"OSRELEASE=6.1.0\n")
    n = len(segs) + 1
    data_off = 0x1000
    ph = np.zeros(n, dtype=ELF64_PHDR)
    ph[0] = (PT_NOTE, 0, 64 + n * 56, 0, 0, len(note), len(note), 4)
    for i, (p, m, f, o) in enumerate(segs.values(), 1):
        ph[i] = (PT_LOAD, 7, o + data_off if o < 1 << 32 else o, p, p, f, m, 0)
    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, n, 0, 0, 0)
    blob = hdr + ph.tobytes() + note
    path.write_bytes(blob.ljust(data_off, b"\0") + data)
    return {k: (v[0], v[1]) for k, v in segs.items()}


def test_read_paths_agree_on_every_byte(tmp_path: Path) -> None:
    """gather_u64 and read_phys give the same value, or both refuse, at every byte address."""
    path = tmp_path / "hostile.elf"
    segs = _hostile_core(path)
    src = ElfCoreSource(path)
    edges = sorted({x for p, m in segs.values() for x in (p, p + m)} | {0x2000, 0x31000})
    near = np.unique(np.concatenate([np.arange(max(x - 24, 0), x + 24) for x in edges]
                                    + [np.arange(0, 0x42000, 61)])).astype(np.uint64)
    vals, ok = src.gather_u64(near)
    got = {a: (bool(o), int(v)) for a, o, v in zip(near.tolist(), ok.tolist(), vals.tolist())}
    for a in near.tolist():
        try:
            want = (True, int.from_bytes(src.read_phys(a, 8), "little"))
        except MemoryFault:
            want = (False, 0)
        assert (got[a][0], got[a][1] if got[a][0] else 0) == want, hex(a)
    # independent expectations, from the bytes of the file
    file = path.read_bytes()
    word = lambda off: int.from_bytes(file[off:off + 8], "little")  # noqa: E731
    vals, ok = src.gather_u64(np.array([0x100, 0x2000, 0x2FFC, 0x40001, 0x30000, 0x30FF8, 0x30FF9, 0x31000,
                                        0x10000, 0x20000, 0x5000], dtype=np.uint64))
    assert ok.tolist() == [True] * 6 + [False] * 5
    assert vals[:6].tolist() == [word(0x1100), 0, int.from_bytes(bytes(4) + file[0x3000:0x3004], "little"),
                                 word(0x5003), word(0x9000), word(0x9FF8)]


def test_gather_reads_pages_not_the_file(tmp_path: Path) -> None:
    """Scattered gathers read the pages holding the words, in bounded preads, not the whole file."""
    src = ElfCoreSource(real_dump("6g-2node-kaslr"))
    before = src.bytes_read
    addrs = np.array([0x1000 + 8 * i for i in range(16)] + [0x100000000 + 0x200000 * i for i in range(64)],
                     dtype=np.uint64)
    src.gather_u64(addrs)
    assert src.bytes_read - before <= 65 * 4096


# -- node of a frame --------------------------------------------------------------------------------

def test_node_ranges_decide_and_agree_with_drgn() -> None:
    """6 GiB two-node boot: every backing frame's node from the pglist_data spans, equal to drgn's
    page_to_nid; with the spans made to overlap (interleaved nodes) the struct pages decide, same
    answer; pfn 0, outside node 0's span (it starts at pfn 1), is read from its struct page."""
    truth = real_truth("6g-2node-kaslr")
    want = [(r["start"], r["nid"]) for r in truth["vmemmap_pages"]["runs"]]
    k = Kernel(open_dump(real_dump("6g-2node-kaslr")))
    assert [(n["nid"], n["start_pfn"], n["spanned_pages"]) for n in k.nodes] == \
        [(n["nid"], n["start_pfn"], n["spanned_pages"]) for n in truth["nodes"]]
    assert [(r["start"], r["nid"]) for r in vmemmap_census(k).runs] == want
    assert vmemmap_census(k).counts["nid_source"] == {"node_ranges": len(vmemmap_mapping(k).leaves), "struct_page": 0}
    before = dict(vmemmap_mapping(k).nid_sources)
    assert vmemmap_mapping(k).pfn_nids(np.array([0], np.uint64)).tolist() == [truth["sections"][0]["nid"]]
    assert vmemmap_mapping(k).nid_sources["struct_page"] == before["struct_page"] + 1

    k2 = Kernel(open_dump(real_dump("6g-2node-kaslr")))
    k2.__dict__["nodes"] = [dict(n, start_pfn=0, spanned_pages=1 << 22) for n in k2.nodes]  # interleaved
    assert [(r["start"], r["nid"]) for r in vmemmap_census(k2).runs] == want
    assert vmemmap_census(k2).counts["nid_source"] == {"node_ranges": 0, "struct_page": len(vmemmap_mapping(k2).leaves)}


def test_drgn_plugin_import_is_light() -> None:
    """drgn imports the plugin at every start: that must not import numpy or the engine."""
    code = ("import sys, vmemdbg.drgn_plugin; "
            "print(sorted(m for m in ('numpy', 'vmemdbg.kernel', 'vmemdbg.views', 'elftools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, DRGN_DISABLE_PLUGINS="*")).stdout
    assert out.strip() == "[]"


def test_generic_gather_equals_word_reads(layouts: dict) -> None:
    """Sources without their own gather (drgn for kdump files, gdb) read page runs; every word
    equals read_phys(addr, 8) of the same source, readable or not (free memory is left out of the
    kdump variant, so some words fault)."""
    src = open_dump(layouts["kdump"])
    k = Kernel(src)
    usage = [int(u) - k.page_offset_base for u in present_sections(k).usage.tolist() if u]
    addrs = np.array(sorted({u + d for u in usage for d in (0, 8, 4090)} | {0x7ff8, 6 << 30, (6 << 30) + 4093}),
                     dtype=np.uint64)
    vals, ok = src.gather_u64(addrs)
    want = []
    for a in addrs.tolist():
        try:
            want.append(int.from_bytes(src.read_phys(a, 8), "little"))
        except MemoryFault:
            want.append(None)
    assert [int(v) if o else None for v, o in zip(vals.tolist(), ok.tolist())] == want
    assert None in want and any(w is not None for w in want)
