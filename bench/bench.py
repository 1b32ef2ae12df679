#!/usr/bin/env python3
"""Benchmark: full audit of simulated 64 GiB .. 64 TiB machines, side by side with drgn's helpers.

For each machine in fixtures/machines/ (64g-2node, 1t-4node, 16t-8node, 64t-8node):

1. ``vmemdbg simulate`` writes the fixture vmcore and its debug-info ELF (not timed as audit);
2. **CLI**: ``vmemdbg audit FIXTURE`` in a fresh process (wall time, peak RSS from wait4);
3. **API**: a fresh Python process builds a Kernel and computes the same facts through the Python
   API (kernel.sections with usage and nids, kernel.census: vmemmap runs, audit, overhead;
   memblock), and, in a second run through a RecordingSource, counts read calls and bytes read;
4. **drgn**: a fresh process gathers the same facts with drgn 0.3's own helpers on the same fixture
   and debug info: for_each_present_section, section_decode_mem_map, decode_section_flags, the
   usage (subsection_map, pageblock_flags), page flags for the nid, follow_phys per 2 MiB of
   memmap and the nid of each backing frame.
   drgn's ELF core loader slows down steeply with the number of PT_LOADs (measured: ~10 µs per
   object read with 16k segments, ~2 ms with 259k), and a simulated fixture has one PT_LOAD per
   kept struct page (a million at 64 TiB) where a real 64 TiB vmcore has a few dozen. So drgn gets
   the fixture's memory as one physical segment (Program.add_memory_segment, served by vmemdbg's
   mmap reader) plus the same VMCOREINFO (set_linux_kernel_custom): the cost of a real dump.

The floor of bytes that must be read is the roots array + root pages + usage objects + vmemmap
page-table pages. Results go to a table on stdout and to JSON (--out). Run:

    python3 bench/bench.py                       # all sizes, ~1-2 minutes
    python3 bench/bench.py --sizes 64g,1t --repeat 1 --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {"64g": "64g-2node.toml", "1t": "1t-4node.toml", "16t": "16t-8node.toml", "64t": "64t-8node.toml"}

API_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.memory import RecordingSource
from vmemdbg import views
src = open_dump(sys.argv[1])
if sys.argv[2] == "count":
    src = RecordingSource(src)
k = Kernel(src)
secs = k.sections
census = k.census
mb = views.memblock(k)
wall = time.perf_counter() - t0
out = {"wall": wall, "sections": len(secs), "runs": len(census.runs), "audit": len(census.audit),
       "leaves": len(k.vmemmap.leaves), "memmap_bytes": census.overhead["total"]["memmap_bytes"]}
if sys.argv[2] == "count":
    out["read_calls"] = len(src.reads) + len(src.gathered)
    out["bytes_read"] = sum(n for _, n in src.reads) + 8 * sum(len(g) for g in src.gathered)
    out["gathered_words"] = sum(len(g) for g in src.gathered)
    roots_read = (secs.highest_present // k.sections_per_root + 1) * 8
    out["floor_bytes"] = (roots_read + secs.roots_present * 4096 + int((secs.usage != 0).sum()) * secs.usage_layout.stride
                          + 4096 * (len(k.vmemmap.leaves.tables) + 1))
print(json.dumps(out))
"""

DRGN_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
import drgn
from drgn.helpers.linux.mm import follow_phys, phys_to_page
from drgn.helpers.linux.mmzone import for_each_present_section, section_decode_mem_map, decode_section_flags
from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.errors import MemoryFault
src = ElfCoreSource(sys.argv[1])
def read_fn(address, count, offset, physical):
    try:
        return src.read_phys(address, count)
    except MemoryFault:
        raise drgn.FaultError("not in the dump", address) from None
prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                  drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
prog.add_memory_segment(0, 1 << 52, read_fn, True)
prog.set_linux_kernel_custom(src.vmcoreinfo(), False)
prog.load_debug_info([sys.argv[2]])
assert prog.main_module().debug_file_status == drgn.ModuleFileStatus.HAVE
t_load = time.perf_counter() - t0
shift = 64 - int(sys.argv[3])
mm = prog["init_mm"].address_of_()
sections = leaves = nid_sum = 0
for nr, ms in for_each_present_section(prog):
    sections += 1
    flags = decode_section_flags(ms)
    mem_map = section_decode_mem_map(ms, nr)
    usage = ms.usage
    sub = usage.subsection_map[0].value_()
    pb = [usage.pageblock_flags[i].value_() for i in range(4)]
    nid = mem_map.flags.value_() >> shift
    start = mem_map.value_()
    for off in range(0, 32768 * 64, 2 << 20):
        try:
            phys = follow_phys(mm, start + off).value_()
        except drgn.FaultError:
            continue
        leaves += 1
        nid_sum += phys_to_page(prog, phys).flags.value_() >> shift
print(json.dumps({"wall": time.perf_counter() - t0, "load": t_load, "sections": sections, "leaves": leaves}))
"""


def run_rusage(cmd: list[str], devnull: bool = False) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, the child's own peak RSS in MiB from wait4, stdout)."""
    t0 = time.perf_counter()
    out_f = subprocess.DEVNULL if devnull else subprocess.PIPE
    p = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.PIPE, cwd=ROOT)
    out = p.stdout.read().decode() if p.stdout else ""
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-300:]}")
    return wall, ru.ru_maxrss / 1024, out


def bench_size(name: str, workdir: Path, repeat: int, with_drgn: bool) -> dict:
    """All measurements for one machine size."""
    machine = ROOT / "fixtures" / "machines" / MACHINES[name]
    fixture, debug = workdir / f"{name}.elf", workdir / f"{name}.debug"
    wall, rss, _ = run_rusage([sys.executable, "-m", "vmemdbg", "simulate", str(machine), "-o", str(fixture),
                               "--debuginfo", str(debug)], devnull=True)
    res: dict = {"size": name, "machine": machine.name, "simulate": {"wall": wall, "rss_mib": rss},
                 "fixture_bytes": fixture.stat().st_size}
    cli = [run_rusage([sys.executable, "-m", "vmemdbg", "audit", str(fixture)], devnull=True) for _ in range(repeat)]
    res["cli"] = {"wall": min(c[0] for c in cli), "rss_mib": max(c[1] for c in cli)}
    api = []
    for _ in range(repeat):
        w, r, out = run_rusage([sys.executable, "-c", API_SNIPPET, str(fixture), "plain"])
        api.append((w, r, json.loads(out)))
    res["api"] = dict(api[0][2], wall=min(a[2]["wall"] for a in api), process_wall=min(a[0] for a in api),
                      rss_mib=max(a[1] for a in api))
    _, _, out = run_rusage([sys.executable, "-c", API_SNIPPET, str(fixture), "count"])
    counted = json.loads(out)
    res["reads"] = {k: counted[k] for k in ("read_calls", "bytes_read", "gathered_words", "floor_bytes")}
    res["reads"]["bytes_vs_floor"] = counted["bytes_read"] / counted["floor_bytes"]
    if with_drgn:
        nodes_shift = 10
        w, r, out = run_rusage([sys.executable, "-c", DRGN_SNIPPET, str(fixture), str(debug), str(nodes_shift)])
        d = json.loads(out)
        res["drgn"] = dict(d, process_wall=w, rss_mib=r)
        res["speedup_vs_drgn"] = d["wall"] / res["api"]["wall"]
        if d["sections"] != res["api"]["sections"]:
            raise RuntimeError(f"{name}: drgn saw {d['sections']} sections, vmemdbg {res['api']['sections']}")
    return res


def table(results: list[dict]) -> str:
    """Markdown table of the results."""
    head = ("| machine | sections | vmemmap leaves | CLI audit wall / RSS | API wall / RSS | read calls | bytes read (× floor) "
            "| drgn helpers wall / RSS | vmemdbg speed-up |")
    lines = [head, "|" + "---|" * 9]
    for r in results:
        a, c, rd = r["api"], r["cli"], r["reads"]
        d = r.get("drgn")
        lines.append(
            f"| {r['size']} ({r['machine']}) | {a['sections']:,} | {a['leaves']:,} | {c['wall']:.2f} s / {c['rss_mib']:.0f} MiB "
            f"| {a['wall']:.2f} s / {a['rss_mib']:.0f} MiB | {rd['read_calls']:,} | {rd['bytes_read'] / 2**20:.1f} MiB "
            f"({rd['bytes_vs_floor']:.2f}×) | " + (f"{d['wall']:.2f} s / {d['rss_mib']:.0f} MiB | {r['speedup_vs_drgn']:.1f}× |"
                                                  if d else "- | - |"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64g,1t,16t,64t", help="comma-separated subset of " + ",".join(MACHINES))
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (min wall, max RSS)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vmemdbg-bench"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--no-drgn", action="store_true", help="skip the drgn-helper side")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.sizes.split(","):
        if name not in MACHINES:
            ap.error(f"unknown size {name!r}")
        print(f"{name}: simulating and measuring ...", file=sys.stderr, flush=True)
        results.append(bench_size(name, args.workdir, args.repeat, not args.no_drgn))
    doc = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "python": sys.version.split()[0],
           "results": results}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
