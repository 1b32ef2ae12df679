"""kallsyms_image encodes the 6.1 scripts/kallsyms.c format.

The encoder is checked through the engine's decoder (vmemdbg/kallsyms.py), which is itself
checked on real 6.1 kernels against the -dbg System.map and drgn's own kallsyms loader
(tests/test_realkernel_fixtures.py).
"""

from __future__ import annotations

from pathlib import Path

from vmemdbg.kallsyms import decode_kallsyms
from vmemdbg.sim.kallsyms_image import KSym, encode
from vmemdbg.vmcoreinfo import VmcoreInfo

LABELS = ["kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms", "kallsyms_names",
          "kallsyms_token_table", "kallsyms_token_index"]


def test_roundtrip_with_big_names_and_kaslr():
    syms = [KSym("_text", "T", 0xFFFFFFFF81000000), KSym("_stext", "T", 0xFFFFFFFF81000000),
            KSym("x" * 200, "t", 0xFFFFFFFF81000040), KSym("init_top_pgt", "D", 0xFFFFFFFF81400000),
            KSym("fixed_percpu_data", "A", 0x0, absolute=True)]
    syms += [KSym(f"sym{i}", "d", 0xFFFFFFFF81500000 + 8 * i) for i in range(600)]
    blob = encode(syms, 0x19800000)
    base = 0xFFFFFFFF9B000000  # where the tables sit in the (relocated) kernel image
    info = VmcoreInfo("OSRELEASE=6.1.0-sim\n" + "".join(f"SYMBOL({n})={base + blob.labels[n]:x}\n" for n in LABELS)
                      + f"SYMBOL(_stext)={0xFFFFFFFF81000000 + 0x19800000:x}\n")
    out = decode_kallsyms(info, lambda va, n: blob.data[va - base : va - base + n])
    assert len(out) == len(syms)
    want = {(s.name, s.addr if s.absolute else s.addr + 0x19800000, s.type) for s in syms}
    assert {(name, a, t) for name, (a, t) in out.items()} == want
    relocated = [a for a, _ in out.values() if a > 1 << 63]
    assert relocated == sorted(relocated)  # scripts/kallsyms.c emits symbols in address order
    # a 201-byte entry ("t" + 200 x) uses the two-byte length form: 0xc9 0x01
    assert bytes((0xC9, 0x01)) + b"t" + b"x" * 200 in blob.data


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
