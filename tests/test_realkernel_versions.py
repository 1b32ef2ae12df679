"""Kernels beside bookworm's 6.1: Debian bullseye's 5.10 and sid's 7.2, against drgn's truth.

Fixtures: minimal dumps (``vmemdbg extract``) of real 6 GiB two-node KASLR boots of
``5.10.0-32-cloud-amd64`` and ``7.2.13+deb14-cloud-amd64`` under QEMU (tests/realkernel/, packages
from the Debian archive through setup.sh's private apt configuration); truth.json is drgn 0.3's
on the full dump with the ``-dbg`` vmlinux. crash 8.0.2 cannot read 7.2, so drgn is the only
oracle there; for 5.10 crash's ``kmem -n`` is the second one.

* 7.2 needs no vmlinux: its VMCOREINFO exports the kallsyms tables without
  ``kallsyms_relative_base`` (a081b5789255, v7.0), decoded place-relative.
* 5.10's VMCOREINFO exports no kallsyms (5fd8fea935a1 came in 6.0): it gets the committed
  System.map subset (``nm`` of the -dbg vmlinux); without it every symbol-dependent view refuses
  in one line naming ``--symbols``.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import REAL, hexed, real_dump, real_truth, run_cli, shared_kernel
from truthcmp import compare, engine_views

from vmemdbg import views
from vmemdbg.dump import open_dump
from vmemdbg.errors import VmemdbgError
from vmemdbg.kallsyms import read_kallsyms
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.vmemmap import vmemmap_mapping
from vmemdbg.symbols import load_system_map
from vmemdbg.versions import KALLSYMS_ADDRESS_RULES, USAGE_RCU, USAGE_RCU_PB8

K510 = "bullseye-5.10/6g-2node-kaslr"
K72 = "sid-7.2/6g-2node-kaslr"
#: 5.10: also 1 GiB nokaslr on i440fx; 7.2: also 1000 MiB with 5-level paging (cases in boot.py)
CASES_510 = (K510, "bullseye-5.10/1g-nokaslr")
CASES_72 = (K72, "sid-7.2/1000m")
MAP510 = REAL / "System.map-5.10.0-32-cloud-amd64.subset"
MAP72 = REAL / "System.map-7.2.13+deb14-cloud-amd64.subset"


def _kernel(case: str, symbols=None) -> Kernel:
    """The fixture's session-wide kernel, or one of its own with ``symbols``."""
    return shared_kernel(case) if symbols is None else Kernel(open_dump(real_dump(case)), symbols=symbols)


_cli = run_cli


# -- 7.2: no vmlinux ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES_72)
def test_7_2_every_view_equals_drgn_without_vmlinux(case: str) -> None:
    truth = real_truth(case)
    kernel = _kernel(case)
    assert "SYMBOL(kallsyms_relative_base)" not in kernel.info.entries
    assert compare(engine_views(kernel, truth), truth) == []
    assert kernel.kallsyms_rule == KALLSYMS_ADDRESS_RULES["place-relative"].origin
    assert "a081b5789255" in views.summary(kernel)["symbols"]
    assert truth["summary"]["counts"]["present"] >= 8 and truth["vmemmap_pages"]["runs"] and truth["memblock"]


def test_7_2_cases_cover_two_nodes_kaslr_and_5_level() -> None:
    big, small = real_truth(K72)["summary"], real_truth("sid-7.2/1000m")["summary"]
    assert big["kernel"]["kaslr_offset"] and {n["nid"] for n in real_truth(K72)["nodes"]} == {0, 1}
    assert (big["kernel"]["pgtable_levels"], small["kernel"]["pgtable_levels"]) == (4, 5)


def test_7_2_kallsyms_equals_system_map() -> None:
    """Every symbol of the -dbg System.map subset, plus KERNELOFFSET, as decoded from the dump."""
    kernel = _kernel(K72)
    assert kernel.kaslr_offset != 0
    for name, addr in load_system_map(MAP72).items():
        assert kernel.symbols[name] == addr + kernel.kaslr_offset, name
    assert len(kernel.symbols) > 150_000


def test_7_2_layouts() -> None:
    """6.15+ flag enum (IS_VMEMMAP_PREINIT) and 8-bit pageblocks (6.16+): usage stride 24 + 64 = 88."""
    secs = present_sections(_kernel(K72))
    assert secs.flag_layout.name == "6.15"
    assert secs.usage_layout is USAGE_RCU_PB8 and secs.usage_layout.stride == 88
    assert real_truth(K72)["summary"]["sparse"]["usage_size"] == 88
    assert "88-byte stride" in secs.usage_reason


def test_7_2_memblock_cli_without_vmlinux() -> None:
    res = _cli("memblock", str(real_dump(K72)), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    tm = real_truth(K72)["memblock"]
    assert doc["system_state"] == tm["system_state"] and doc["memory"]["regions_addr"] == hexed(tm["memory"]["regions_addr"])


# -- 6.12 --------------------------------------------------------------------------------------


def test_6_12_every_view_equals_drgn_with_negative_phys_base() -> None:
    """bookworm's 6.12, no vmlinux; this KASLR boot put the image 42 MiB below its link offset."""
    case = "bookworm-6.12/6g-2node-kaslr"
    truth = real_truth(case)
    kernel = _kernel(case)
    assert kernel.phys_base == truth["summary"]["kernel"]["phys_base"] == -0x2A00000
    assert compare(engine_views(kernel, truth), truth) == []
    assert kernel.kallsyms_rule == KALLSYMS_ADDRESS_RULES["absolute-percpu"].origin
    assert present_sections(kernel).usage_layout is USAGE_RCU


# -- 5.10: with and without --symbols ------------------------------------------------------------


@pytest.mark.parametrize("case", CASES_510)
def test_5_10_every_view_equals_drgn_with_symbols(case: str) -> None:
    truth = real_truth(case)
    kernel = _kernel(case, load_system_map(MAP510))
    assert compare(engine_views(kernel, truth), truth) == []
    assert present_sections(kernel).usage_layout is USAGE_RCU  # the 2024 stable backport of the rcu_head
    assert present_sections(kernel).flag_layout.name == "5.3"


@pytest.mark.parametrize("case", CASES_510)
def test_5_10_without_symbols_only_vmalloc_base_is_missing(case: str) -> None:
    """Sections, vmemmap, explain, nodes: all equal drgn's truth with no symbols at all."""
    truth = real_truth(case)
    kernel = _kernel(case)
    mine = {"summary": views.summary(kernel), "sections": views.sections(kernel, with_migratetypes=True),
            "vmemmap": views.vmemmap(kernel), "table_pages": sorted(vmemmap_mapping(kernel).leaves.tables),
            "explain": [views.explain(kernel, e["input"]) for e in truth["explain"]],
            "memory_blocks": views.memory_blocks(kernel)}
    rest = {k: v for k, v in truth.items() if k not in ("memblock", "e820")}
    # no symbols, so no account of RAM: the zone of a block's edge pfns is not claimed
    assert mine["memory_blocks"]["zone_source"].startswith("unknown: no account of RAM")
    assert {b["zone"] for b in mine["memory_blocks"]["blocks"]} == {None}
    rest["memory_blocks"] = [{**b, "zone": None} for b in truth["memory_blocks"]]
    want = truth["summary"]["kernel"]["vmalloc_base"]
    assert compare(mine, rest) == [f"summary.kernel.vmalloc_base: vmemdbg None != drgn {want!r}"]


@pytest.mark.parametrize("view", ["memblock", "e820"])
def test_5_10_symbol_views_refuse_in_one_line(view: str) -> None:
    res = _cli(view, str(real_dump(K510)))
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1
    assert "5.10.0-32-cloud-amd64 is older than 6.0" in lines[0] and "--symbols" in lines[0]


def test_5_10_summary_and_audit_say_what_is_missing() -> None:
    doc = views.summary(_kernel(K510))
    assert doc["kernel"]["vmalloc_base"] is None
    assert any(n.startswith("vmalloc_base unknown") and "--symbols" in n for n in doc["notes"])
    assert ("vmalloc_base      -  (vmalloc_base unknown (VMCOREINFO has NUMBER(VMALLOC_START) only since 6.9): "
            "it needs the kernel symbol vmalloc_base: kernel 5.10.0-32-cloud-amd64 is older than 6.0") \
        in _cli("summary", str(real_dump(K510))).stdout
    audit = views.audit(_kernel(K510))
    assert "--symbols" in audit["e820"]["error"] and "--symbols" in audit["memblock"]["error"]
    assert audit["vmemmap"]["not_audited"] == [
        "hole_mapped: the kernel's account of RAM needs the kernel symbol iomem_resource: kernel 5.10.0-32-cloud-amd64 "
        "is older than 6.0, whose VMCOREINFO exports no kallsyms tables (5fd8fea935a1); pass --symbols VMLINUX|System.map"]
    res = _cli("audit", str(real_dump(K510)))
    assert res.returncode == 0
    assert "\ne820: e820 needs the kernel symbol e820_table: kernel 5.10.0-32-cloud-amd64 is older" in res.stdout
    assert ("audit: 0 anomalies, 0 notes by the checks that ran\n"
            "not audited: hole_mapped: the kernel's account of RAM needs") in res.stdout
    with_map = _cli("vmemmap", str(real_dump(K510)), "--symbols", str(MAP510))
    # with symbols the check runs, and names what "no findings" would have hidden: the memmap of the
    # legacy hole below 1 MiB (a note: early sections map the memmap of the whole section)
    assert "audit: 0 anomalies, 1 note\n  note    boot_section_hole" in with_map.stdout
    assert "section 0: 4 KiB of mapped memmap" in with_map.stdout and "not audited" not in with_map.stdout


def test_5_10_with_symbols_summary_equals_drgn() -> None:
    res = _cli("summary", str(real_dump(K510)), "--symbols", str(MAP510), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["kernel"]["vmalloc_base"] == hexed(real_truth(K510)["summary"]["kernel"]["vmalloc_base"])


@pytest.mark.parametrize("case", CASES_510)
def test_sections_equal_crash_kmem_n_on_5_10(case: str) -> None:
    """crash 8.0.2 reads 5.10 (not 7.2): its kmem -n is a second oracle there."""
    rows = (REAL / case / "crash-kmem-n.txt").read_text().splitlines()[1:]
    crash = [(int(nr), int(sec, 16), int(mm, 16), int(pfn)) for nr, sec, _, mm, _, pfn in (r.split() for r in rows)]
    mine = [(s["nr"], s["section"], s["mem_map"], s["start_pfn"]) for s in views.sections(_kernel(case))["sections"]]
    assert mine == crash and len(crash) >= 8


# -- symbol files ------------------------------------------------------------------------------


def test_debian_placeholder_system_map_is_named(tmp_path) -> None:
    """Debian's /boot/System.map-* is one line pointing at the -dbg package."""
    p = tmp_path / "System.map-5.10.0-32-cloud-amd64"
    p.write_text("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")
    res = _cli("memblock", str(real_dump(K510)), "--symbols", str(p))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "placeholder System.map" in res.stderr and "-dbg" in res.stderr


def test_unusable_and_foreign_symbol_files_are_refused(tmp_path) -> None:
    junk = tmp_path / "junk.map"
    junk.write_text("ffffffff81000000 T foo\n")
    res = _cli("summary", str(real_dump(K510)), "--symbols", str(junk))
    assert res.returncode == 2 and "unusable System.map" in res.stderr
    with pytest.raises(VmemdbgError, match="not this kernel's"):  # 7.2's map on the 5.10 dump
        _kernel(K510, load_system_map(MAP72))


# -- the decoder itself --------------------------------------------------------------------------

#: sha256 of the sorted "name addr type" lines decoded by the scalar decoder this one replaced
#: (commit 56c13ab), on the 6.1 fixtures: the vectorised decoder must give exactly the same table.
SCALAR_DECODER_DIGESTS = {
    "1g-nokaslr": (82125, "48ed727d510f273e9df561a62d922177d8388d62b7ae0e5b1459e2ba381eaf4a"),
    "1000m": (82125, "48ed727d510f273e9df561a62d922177d8388d62b7ae0e5b1459e2ba381eaf4a"),
    "6g-2node-kaslr": (82125, "f64395c31076eb838fb228da5f60023527a40b42f2de500d5d28d8dd55903b54"),
}


@pytest.mark.parametrize("case", sorted(SCALAR_DECODER_DIGESTS))
def test_vectorised_decoder_equals_the_scalar_one(case: str) -> None:
    k = _kernel(case)
    t = read_kallsyms(k.info, lambda va, n: k.read_phys(k.kimg_to_phys(va), n))
    first: dict[str, tuple[int, str]] = {}
    for name, addr, typ in zip(t.names, t.addrs, t.types):
        first.setdefault(name, (addr, typ))
    text = "".join(f"{n} {a:x} {ty}\n" for n, (a, ty) in sorted(first.items()))
    assert (len(first), hashlib.sha256(text.encode()).hexdigest()) == SCALAR_DECODER_DIGESTS[case]
    assert t.first_addresses() == {n: a for n, (a, _) in first.items()}
    assert t.rule is KALLSYMS_ADDRESS_RULES["absolute-percpu"]


def test_7_2_kallsyms_equals_drgn_own_loader() -> None:
    """drgn 0.3's vmlinux-less kallsyms loader (place-relative support, drgn PR #601) agrees for every 11th symbol."""
    drgn = pytest.importorskip("drgn")
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    prog = drgn.Program()
    prog.set_core_dump(str(real_dump(K72)))
    index = load_vmlinux_kallsyms(prog)
    mine = _kernel(K72).symbols
    for name, addr in list(mine.items())[::11]:
        assert addr in {s.address for s in index(prog, name, None, False)}, name


# -- version tables ----------------------------------------------------------------------------


def test_kallsyms_rules_follow_the_vmcoreinfo_keys() -> None:
    from vmemdbg.errors import LayoutError
    from vmemdbg.versions import kallsyms_address_rules

    tables = {f"kallsyms_{n}": 0xFFFFFFFF82000000 for n in ("names", "num_syms", "token_table", "token_index", "offsets")}
    with pytest.raises(LayoutError, match=r"only since 6\.0"):
        kallsyms_address_rules({}.get)
    assert [r.name for r in kallsyms_address_rules(tables.get)] == ["place-relative"]
    with_base = tables | {"kallsyms_relative_base": 0xFFFFFFFF81000000}
    assert [r.name for r in kallsyms_address_rules(with_base.get)] == ["absolute-percpu", "relative-base"]


def test_kallsyms_address_rules_arithmetic() -> None:
    import numpy as np

    off = np.array([-8, 0x10, 0x7FFFFFF0], dtype=np.int64)  # s32 entries, as int64
    va = 0xFFFFFFFF82000000
    place = KALLSYMS_ADDRESS_RULES["place-relative"].apply(off, base=None, offsets_va=va)
    assert place.tolist() == [va - 8, va + 4 + 0x10, (va + 8 + 0x7FFFFFF0) % (1 << 64)]  # u64 arithmetic wraps
    base = 0xFFFFFFFF81000000
    percpu = KALLSYMS_ADDRESS_RULES["absolute-percpu"].apply(off, base=base, offsets_va=va)
    assert percpu.tolist() == [base - 1 + 8, 0x10, 0x7FFFFFF0]
    rel = KALLSYMS_ADDRESS_RULES["relative-base"].apply(off, base=base, offsets_va=va)
    assert rel.tolist() == [(base + 0xFFFFFFF8) % (1 << 64), base + 0x10, (base + 0x7FFFFFF0) % (1 << 64)]


def test_usage_layout_with_8_bit_pageblocks() -> None:
    from vmemdbg.versions import KernelVersion, choose_usage_layout

    v72, v61 = KernelVersion.parse("7.2.13+deb14-cloud-amd64"), KernelVersion.parse("6.1.0")
    assert choose_usage_layout(v72, [88, 88, 88])[0] is USAGE_RCU_PB8
    assert choose_usage_layout(v72, [])[0] is USAGE_RCU_PB8
    assert choose_usage_layout(v61, [], 24, 8)[0] is USAGE_RCU_PB8  # debug info wins over the version
    assert choose_usage_layout(v72, [], 24, 4)[0] is USAGE_RCU
    assert (USAGE_RCU_PB8.usemap_words, USAGE_RCU.usemap_words) == (8, 4)


def test_system_states_follow_the_kernel_dwarf() -> None:
    """5.10's enum system_states (DWARF of the -dbg vmlinux) has no FREEING_INITMEM; 6.1's and 7.2's do."""
    from vmemdbg.versions import KernelVersion, system_state_names

    assert system_state_names(KernelVersion.parse("5.10.0-32-cloud-amd64"))[:3] == ["BOOTING", "SCHEDULING", "RUNNING"]
    assert system_state_names(KernelVersion.parse("5.16.0"))[2:4] == ["FREEING_INITMEM", "RUNNING"]
    for case in (K510, K72):  # drgn read the name from the DWARF enum
        tm = real_truth(case)["memblock"]["system_state"]
        assert tm == views.memblock(_kernel(case, load_system_map(MAP510) if case == K510 else None))["system_state"]


def test_corrupt_kallsyms_is_refused_not_guessed() -> None:
    """A names stream that never ends, or tables that decode to a wrong _stext, give a LayoutError."""
    from vmemdbg.errors import LayoutError
    from vmemdbg.vmcoreinfo import VmcoreInfo

    k = _kernel("1000m")
    real = lambda va, n: k.read_phys(k.kimg_to_phys(va), n)  # noqa: E731
    names, num = k.info.symbol("kallsyms_names"), k.info.symbol("kallsyms_num_syms")
    tables = {k.info.symbol(f"kallsyms_{t}") for t in ("token_table", "token_index", "offsets", "relative_base")}

    def endless(va: int, n: int) -> bytes:  # 4 million 100-byte names
        if va == num:
            return (4_000_000).to_bytes(4, "little")
        return (b"\x63" + b"A" * 99) * (n // 100 + 1) if va >= names and va not in tables else real(va, n)

    with pytest.raises(LayoutError, match="kallsyms_names runs past 64 MiB"):
        read_kallsyms(k.info, endless)
    garbage = lambda va, n: b"\x01A" * (n // 2 + 1) if va >= names and va not in tables else real(va, n)  # noqa: E731
    with pytest.raises(LayoutError, match="kallsyms"):
        read_kallsyms(k.info, garbage)
    shifted = VmcoreInfo(k.info.text.replace(f"SYMBOL(_stext)={k.info.symbol('_stext'):x}",
                                             f"SYMBOL(_stext)={k.info.symbol('_stext') + 0x1000:x}"))
    with pytest.raises(LayoutError, match="does not reproduce SYMBOL\\(_stext\\)"):
        read_kallsyms(shifted, real)
