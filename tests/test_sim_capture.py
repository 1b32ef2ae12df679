"""The simulator predicts the memblock calls of a real boot (memblock=debug capture) exactly.

fixtures/captures/6g-2node-kaslr.txt is trimmed from the serial log of Debian 6.1.0-56-cloud-amd64
booted under QEMU (q35, 6 GiB over 2 NUMA nodes, KASLR, memblock=debug); the machine file
fixtures/machines/real-6g-2node-kaslr.toml was written from its e820, SRAT and early reservations.
"""

from __future__ import annotations

import re
from pathlib import Path

from vmemdbg.sim import simulate

ROOT = Path(__file__).resolve().parent.parent
OFFS = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")


def _calls(lines: list[str]) -> list[str]:
    """memblock allocation/reserve/free lines and NODE_DATA, without %pS offsets."""
    keep = ("memblock_alloc", "memblock_phys_alloc", "memblock_reserve: ", "memblock_phys_free", "NODE_DATA(")
    return [OFFS.sub("", ln.strip()) for ln in lines if ln.strip().startswith(keep)]


def test_6g_2node_kaslr_sparse_init_exact(tmp_path):
    cap = _calls((ROOT / "fixtures" / "captures" / "6g-2node-kaslr.txt").read_text().splitlines())
    r = simulate(ROOT / "fixtures" / "machines" / "real-6g-2node-kaslr.toml", None)
    sim = _calls(r.trace)
    # from NODE_DATA(0) through the last sparse_init_nid allocation: every line identical
    start = next(i for i, ln in enumerate(cap) if ln.startswith("NODE_DATA(0)")) - 1
    end = max(i for i, ln in enumerate(cap) if "sparse_init_nid" in ln) + 2
    s0 = sim.index(cap[start])
    assert sim[s0:s0 + end - start] == cap[start:end]
    # and the init_mem_mapping probe and real-mode trampoline before it
    for ln in cap[:start]:
        if "init_mem_mapping" in ln or "reserve_real_mode" in ln:
            assert ln in sim
