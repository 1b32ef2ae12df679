"""kallsyms_image encodes the 6.1 scripts/kallsyms.c format.

The decoder (a transcription of kernel/kallsyms.c) is first checked against a real 6.1 kernel's
tables when a real dump is available, then used to verify the encoder; the engine's decoder must
read the encoded tables too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmemdbg.sim.kallsyms_image import KallsymsBlob, KSym, decode, encode

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real" / "1g-nokaslr" / "vmcore.elf"
LABELS = ["kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms", "kallsyms_names",
          "kallsyms_token_table", "kallsyms_token_index"]


def test_roundtrip_with_big_names_and_kaslr():
    syms = [KSym("_text", "T", 0xFFFFFFFF81000000), KSym("_stext", "T", 0xFFFFFFFF81000000),
            KSym("x" * 200, "t", 0xFFFFFFFF81000040), KSym("init_top_pgt", "D", 0xFFFFFFFF81400000),
            KSym("fixed_percpu_data", "A", 0x0, absolute=True)]
    syms += [KSym(f"sym{i}", "d", 0xFFFFFFFF81500000 + 8 * i) for i in range(600)]
    blob = encode(syms, 0x19800000)
    out = decode(blob, 0x19800000)
    assert len(out) == len(syms)
    want = {(s.type, s.name, s.addr if s.absolute else s.addr + 0x19800000) for s in syms}
    assert set(out) == want
    assert [a for _, _, a in out if a > 1 << 63] == sorted(a for _, _, a in out if a > 1 << 63)
    # a 201-byte entry ("t" + 200 x) uses the two-byte length form: 0xc9 0x01
    assert bytes((0xC9, 0x01)) + b"t" + b"x" * 200 in blob.data


def test_decoder_reads_a_real_61_kernel():
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel

    src = open_dump(str(REAL))
    try:
        k = Kernel(src)
        addr = {n: k.info.symbol(n) for n in LABELS}
        lo, hi = min(addr.values()), max(addr.values()) + 4096
        data = k.read_phys(k.kimg_to_phys(lo), hi - lo)
        blob = KallsymsBlob(data, {n: a - lo for n, a in addr.items()}, 0, 0)
        syms = {name: (t, a) for t, name, a in decode(blob, k.info.kernel_offset)}
        assert syms["_stext"][1] == k.info.symbol("_stext")
        assert syms["init_top_pgt"][1] == k.info.symbol("init_top_pgt")
        assert syms["vmemmap_populate"][0] in "Tt"
        assert len(syms) > 50000
    finally:
        src.close()


def test_engine_decoder_reads_the_fixture(tmp_path):
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel
    from vmemdbg.sim import simulate

    machine = Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "kaslr-3node-5level.toml"
    r = simulate(machine, tmp_path / "core.elf")
    src = open_dump(str(r.fixture))
    try:
        syms = Kernel(src).symbols
        ko = r.machine.layout.kernel_offset
        for name in ("_stext", "init_top_pgt", "mem_section", "vmemmap_base", "page_offset_base",
                     "memblock", "memblock_memory", "node_data", "e820_table", "vmemmap_populate"):
            assert syms[name] == r.debuginfo.addr(name) + ko, name
    finally:
        src.close()
