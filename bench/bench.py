#!/usr/bin/env python3
"""Benchmark: the full audit on dumps shaped like real ones, side by side with drgn's own helpers.

For each simulated machine (64g-2node, 1t-4node, 16t-8node, 64t-8node in fixtures/machines/):

1. ``vmemdbg simulate --layout vmcore`` writes the dump as ``/proc/vmcore`` lays it out: one PT_LOAD
   per System RAM range, a sparse file as big as the RAM (64 TiB apparent for the 64 TiB machine;
   ext4 stops at 16 TiB per file, so the default work directory is tmpfs), plus its debug-info ELF;
2. **CLI**: ``vmemdbg audit --json DUMP`` in a fresh process: whole-process wall time and peak RSS
   of the child as the OS counts it (``wait4`` ``ru_maxrss``: anonymous and file pages);
3. **API**: a fresh process opens the dump and computes the same facts through the Python API,
   reporting its import time (start-up), the time to open the kernel, the pread calls and bytes
   the ELF reader made, and ``rchar`` of /proc/self/io around the work; the floor is what must be
   read: the roots array, the root pages, the usage objects and the vmemmap page-table pages;
4. **drgn**: a fresh process with drgn from PyPI reading **the same file natively**
   (``Program.set_core_dump`` + ``load_debug_info`` of the simulator's DWARF, no callbacks) gathers
   the same facts with its own helpers: for_each_present_section, decode_section_flags,
   section_decode_mem_map, the usage (subsection_map, pageblock_flags), the nid of each section's
   first page, follow_phys per 2 MiB of memmap and the nid of each backing frame.

It also measures the real QEMU dumps of the oracle if present (``--real DIR``: DIR/<case>/vmcore.elf
and vmcore.kdump, drgn with the distribution's vmlinux), kdump-compressed variants (``--kdump``,
see docs/scale.md), the gdb front end on a core file (``--gdb``), ``vmemdbg summary`` on a bundled
fixture, and drgn's start-up with and without the plugin. Results: a table on stdout and JSON
(``--out``). Every measurement is a child process run with fork + wait4 (:func:`run_child`).

    python3 bench/bench.py                                   # everything, ~10 minutes
    python3 bench/bench.py --sizes 64g,1t --repeat 1 --gdb '' --kdump '' --out /tmp/bench.json
    python3 bench/bench.py --write-docs        # README.md and docs/scale.md blocks from results.json
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {"64g": "64g-2node.toml", "1t": "1t-4node.toml", "16t": "16t-8node.toml", "64t": "64t-8node.toml"}
VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
REAL_CASES = ("1g-nokaslr", "6g-2node-kaslr", "1000m")
DEFAULT_OUT = ROOT / "bench" / "results.json"

RCHAR = r"""
def rchar():
    with open("/proc/self/io") as f:
        return int(next(l for l in f if l.startswith("rchar:")).split()[1])
"""

API_SNIPPET = RCHAR + r"""
import json, sys, time
t0 = time.perf_counter()
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.census import vmemmap_census
from vmemdbg.vmemmap import vmemmap_mapping
from vmemdbg import views
t_import = time.perf_counter() - t0
r0 = rchar()
src = open_dump(sys.argv[1])
k = Kernel(src)
t_open = time.perf_counter() - t0
secs = present_sections(k)
census = vmemmap_census(k)
mb = views.memblock(k)
wall = time.perf_counter() - t0
out = {"wall": wall, "import": t_import, "open": t_open, "rchar": rchar() - r0,
       "sections": len(secs), "runs": len(census.runs), "audit": len(census.audit),
       "leaves": len(vmemmap_mapping(k).leaves), "memmap_bytes": census.overhead["total"]["memmap_bytes"],
       "nid_source": census.counts["nid_source"],
       "preads": getattr(src, "preads", None), "bytes_read": getattr(src, "bytes_read", None)}
roots_read = (secs.highest_present // k.sections_per_root + 1) * 8
out["floor_bytes"] = (roots_read + secs.roots_present * 4096 + int((secs.usage != 0).sum()) * secs.usage_layout.stride
                      + 4096 * (len(vmemmap_mapping(k).leaves.tables) + 1))
print(json.dumps(out))
"""

DRGN_SNIPPET = RCHAR + r"""
import json, sys, time
t0 = time.perf_counter()
import drgn
from drgn.helpers.linux.mm import follow_phys, phys_to_page
from drgn.helpers.linux.mmzone import for_each_present_section, section_decode_mem_map, decode_section_flags
r0 = rchar()
# QEMU's kdump output names no architecture: give the platform, as vmemdbg's drgn source does
prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                  drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
t_load = time.perf_counter() - t0
shift = 64 - (prog["node_data"].type_.length - 1).bit_length()  # NODES_PGSHIFT = 64 - log2(MAX_NUMNODES)
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
print(json.dumps({"wall": time.perf_counter() - t0, "load": t_load, "rchar": rchar() - r0,
                  "sections": sections, "leaves": leaves}))
"""


#: A process that only opens the dump through drgn's libkdumpfile: the floor of any reader using it.
OPEN_SNIPPET = r"""
import sys, drgn
prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                  drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
prog.set_core_dump(sys.argv[1])
"""


def run_child(cmd: list[str], env: dict | None = None, timeout: float = 3600, keep_stdout: bool = True) -> dict:
    """fork + exec ``cmd`` with stdout to a pipe; wait4 for it.

    Returns wall seconds, the child's peak RSS in MiB (ru_maxrss: what the OS counted, file pages
    included) and its stdout. Raises on a non-zero exit."""
    r, w = os.pipe()
    er, ew = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(w, 1)
            os.dup2(ew, 2)
            os.chdir(ROOT)
            os.execvpe(cmd[0], cmd, env if env is not None else os.environ)
        finally:
            os._exit(127)
    os.close(w)
    os.close(ew)
    out, err = bytearray(), bytearray()
    counted = 0
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ, out)
    sel.register(er, selectors.EVENT_READ, err)
    while sel.get_map():
        for key, _ in sel.select(timeout):
            chunk = os.read(key.fd, 1 << 16)
            if chunk:
                if key.fd == r:
                    counted += len(chunk)
                if key.fd != r or keep_stdout:
                    key.data.extend(chunk)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status}): {err.decode(errors='replace').strip()[-400:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "stdout_bytes": counted,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def best(cmd: list[str], repeat: int, env: dict | None = None) -> dict:
    """``repeat`` runs: minimum wall and CPU time, maximum RSS, the last stdout."""
    runs = [run_child(cmd, env) for _ in range(repeat)]
    return {"wall": min(r["wall"] for r in runs), "cpu": min(r["cpu"] for r in runs),
            "rss_mib": max(r["rss_mib"] for r in runs), "stdout": runs[-1]["stdout"], "stderr": runs[-1]["stderr"]}


def audit_and_drgn(dump: Path, debug: Path, repeat: int, with_drgn: bool, label: str) -> dict:
    """CLI audit, API counters and (optionally) drgn's helpers on one dump file."""
    py = sys.executable
    res: dict = {"dump": str(dump), "label": label}
    cli = best([py, "-m", "vmemdbg", "audit", str(dump)], repeat)
    res["cli"] = {"wall": cli["wall"], "cpu": cli["cpu"], "rss_mib": cli["rss_mib"]}
    js = run_child([py, "-m", "vmemdbg", "audit", "--json", str(dump)], keep_stdout=False)
    res["cli_json"] = {"wall": js["wall"], "cpu": js["cpu"], "rss_mib": js["rss_mib"], "bytes": js["stdout_bytes"]}
    api = best([py, "-c", API_SNIPPET, str(dump)], repeat)
    res["api"] = dict(json.loads(api["stdout"]), process_wall=api["wall"], rss_mib=api["rss_mib"])
    if with_drgn and not str(dump).endswith(".elf"):  # read through libkdumpfile: what its open alone costs
        res["libkdumpfile_open"] = {k: v for k, v in best([py, "-c", OPEN_SNIPPET, str(dump)], repeat).items()
                                    if k in ("wall", "cpu", "rss_mib")}
    if with_drgn:
        d = run_child([py, "-c", DRGN_SNIPPET, str(dump), str(debug)])
        res["drgn"] = dict(json.loads(d["stdout"]), process_wall=d["wall"], cpu=d["cpu"], rss_mib=d["rss_mib"])
        res["speedup_vs_drgn"] = d["wall"] / cli["wall"]
        res["cpu_speedup_vs_drgn"] = d["cpu"] / cli["cpu"]
        if res["drgn"]["sections"] != res["api"]["sections"]:
            raise RuntimeError(f"{label}: drgn saw {res['drgn']['sections']} sections, vmemdbg {res['api']['sections']}")
    return res


def kdump_variant(elf: Path, out: Path) -> Path | None:
    """The kdump-compressed variant written by ``vmemdbg.sim.kdump`` (docs/scale.md), if available."""
    try:
        from vmemdbg.sim.kdump import compress
    except ImportError:
        return None
    compress(elf, out)
    return out


def bench_size(name: str, workdir: Path, args: argparse.Namespace) -> list[dict]:
    """Simulate one machine and measure its dump (and its compressed variant)."""
    machine = ROOT / "fixtures" / "machines" / MACHINES[name]
    dump, debug = workdir / f"{name}.elf", workdir / f"{name}.debug"
    sim = run_child([sys.executable, "-m", "vmemdbg", "simulate", str(machine), "-o", str(dump),
                     "--debuginfo", str(debug), "--layout", "vmcore"])
    st = dump.stat()
    out = []
    try:
        res = audit_and_drgn(dump, debug, args.repeat, not args.no_drgn, name)
        res.update(machine=machine.name, simulate={"wall": sim["wall"], "rss_mib": sim["rss_mib"]},
                   apparent_bytes=st.st_size, allocated_bytes=st.st_blocks * 512)
        out.append(res)
        if args.gdb and name in args.gdb.split(","):
            res["gdb"] = gdb_audit(dump)
        if args.kdump and name in args.kdump.split(","):
            kd = workdir / f"{name}.kdump"
            t0 = time.perf_counter()
            if kdump_variant(dump, kd) is not None:
                made = time.perf_counter() - t0
                r = audit_and_drgn(kd, debug, args.repeat, not args.no_drgn, f"{name} kdump")
                r.update(machine=machine.name, made_in=made, apparent_bytes=kd.stat().st_size)
                out.append(r)
                kd.unlink()
    finally:
        if not args.keep:
            dump.unlink(missing_ok=True)
    return out


def gdb_audit(core: Path) -> dict:
    """``vmemdbg audit`` inside gdb on a core file (no vmlinux): wall and peak RSS of gdb."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return {}
    # the documented load line: what ``python -m vmemdbg.gdb`` prints for this interpreter's install
    load = subprocess.run([sys.executable, "-m", "vmemdbg.gdb"], capture_output=True, text=True, check=True).stdout.strip()
    r = run_child([gdb, "-q", "-batch", "-ex", load, "-ex", f"core-file {core}", "-ex", "vmemdbg audit"])
    return {"wall": r["wall"], "cpu": r["cpu"], "rss_mib": r["rss_mib"],
            "progress_lines": r["stderr"].count("vmemdbg: ")}


def bench_real(real: Path, workdir: Path, repeat: int, with_drgn: bool) -> list[dict]:
    """The oracle's real QEMU dumps (ELF and kdump-compressed), drgn with the distribution vmlinux.

    A kdump file in makedumpfile's flattened format (what QEMU writes to a pipe) is first
    reassembled with ``makedumpfile -R``, which neither drgn nor vmemdbg read directly."""
    out = []
    for case in REAL_CASES:
        for fname in ("vmcore.elf", "vmcore.kdump"):
            dump = real / case / fname
            if not dump.exists():
                continue
            label = f"{case}/{fname}"
            with open(dump, "rb") as f:
                flattened = f.read(12) == b"makedumpfile"
            if flattened:
                plain = workdir / f"{case}.kdump"
                plain.unlink(missing_ok=True)  # makedumpfile -R does not overwrite
                with open(dump, "rb") as src:
                    pid = os.fork()
                    if pid == 0:
                        os.dup2(src.fileno(), 0)
                        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
                        os.execvp("makedumpfile", ["makedumpfile", "-R", str(plain)])
                    os.waitpid(pid, 0)
                dump, label = plain, label + " (reassembled)"
            r = audit_and_drgn(dump, VMLINUX, repeat, with_drgn and VMLINUX.exists(), label)
            r["apparent_bytes"] = dump.stat().st_size
            out.append(r)
            if flattened:
                dump.unlink()
    return out


def startup(repeat: int) -> dict:
    """``vmemdbg summary`` on a bundled fixture, and drgn's start-up with and without the plugin."""
    fixture = ROOT / "fixtures" / "real" / "6g-2node-kaslr" / "vmcore.elf"
    s = best([sys.executable, "-m", "vmemdbg", "summary", str(fixture)], max(repeat, 3))
    res = {"summary_fixture": str(fixture.relative_to(ROOT)), "summary": s["wall"], "summary_cpu": s["cpu"]}
    drgn = Path(sys.executable).with_name("drgn")
    if drgn.exists():
        cmd = [str(drgn), "-q", "-c", str(fixture), "--no-default-symbols", "-e", "pass"]
        env_off = dict(os.environ, DRGN_DISABLE_PLUGINS="vmemdbg")
        off, on = [], []
        for _ in range(max(repeat, 5)):  # interleaved, so load changes hit both alike
            off.append(run_child(cmd, env_off))
            on.append(run_child(cmd))
        for key, runs in (("drgn_without_plugin", off), ("drgn_with_plugin", on)):
            res[key] = min(r["wall"] for r in runs)
            res[key + "_cpu"] = min(r["cpu"] for r in runs)
        res["plugin_cost"] = res["drgn_with_plugin"] - res["drgn_without_plugin"]
        res["plugin_cost_cpu"] = res["drgn_with_plugin_cpu"] - res["drgn_without_plugin_cpu"]
    return res


def _fmt_drgn(r: dict) -> str:
    d = r.get("drgn")
    if not d:
        return "- | - |"
    read = f"{d['rchar'] / 2**20:.1f} MiB" if r.get("api", {}).get("bytes_read") is not None else "-"
    return (f"{d['process_wall']:.2f} s ({d['cpu']:.2f} s) / {d['rss_mib']:.0f} MiB / {read} "
            f"| {r['speedup_vs_drgn']:.1f}× ({r['cpu_speedup_vs_drgn']:.1f}×) |")


def table(results: list[dict]) -> str:
    """Markdown table of the results."""
    head = ("| dump | sections | `vmemdbg audit` wall (CPU) / peak RSS | start-up: import + open | bytes read (× floor) "
            "| nodes from ranges / struct page | drgn helpers wall (CPU) / RSS / read | speed-up wall (CPU) |")
    lines = [head, "|" + "---|" * 8]
    for r in results:
        a, c = r["api"], r["cli"]
        ns = a.get("nid_source") or {}
        read = a.get("bytes_read")
        readtxt = (f"{read / 2**20:.1f} MiB ({read / a['floor_bytes']:.2f}×)" if read is not None
                   else "- (libkdumpfile maps the file)")
        lines.append(
            f"| {r['label']} | {a['sections']:,} | {c['wall']:.2f} s ({c['cpu']:.2f} s) / {c['rss_mib']:.0f} MiB "
            f"| {a['import']:.2f} + {a['open'] - a['import']:.2f} s | {readtxt} "
            f"| {ns.get('node_ranges', '-')} / {ns.get('struct_page', '-')} | " + _fmt_drgn(r))
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(doc: dict) -> list[str]:
    """The issue's targets, each with the measured figure and whether it is met."""
    by = {r["label"]: r for r in doc["results"]}
    out = []
    big = by.get("64t")
    if big:
        c, a = big["cli"], big["api"]
        lines = [f"64 TiB ELF: full audit {c['wall']:.2f} s wall ({c['cpu']:.2f} s CPU) for the whole CLI process "
                 f"(≤ 2 s: {_verdict(c['wall'] <= 2)}); peak RSS {c['rss_mib']:.0f} MiB (≤ 300 MB: "
                 f"{_verdict(c['rss_mib'] * 2**20 <= 300e6)}); bytes read {a['bytes_read'] / a['floor_bytes']:.2f}× the floor "
                 f"(≤ 2×: {_verdict(a['bytes_read'] <= 2 * a['floor_bytes'])})"]
        mid = by.get("16t")
        if mid:
            lines.append(f"time linear in present sections (16 → 64 TiB: {a['sections'] / mid['api']['sections']:.1f}× the "
                         f"sections, {c['wall'] / mid['cli']['wall']:.1f}× the wall time, start-up included)")
        if big.get("drgn"):
            lines.append(f"{big['speedup_vs_drgn']:.1f}× drgn's helpers ({big['drgn']['process_wall']:.2f} s) in wall time "
                         f"({big['cpu_speedup_vs_drgn']:.1f}× in CPU time; ≥ 20×: {_verdict(big['speedup_vs_drgn'] >= 20)})")
        out.append("; ".join(lines) + ".")
    kd = by.get("16t kdump")
    if kd and kd.get("drgn"):
        line = (f"16 TiB kdump-compressed: {kd['speedup_vs_drgn']:.1f}× drgn's helpers in wall time "
                f"({kd['cpu_speedup_vs_drgn']:.1f}× in CPU time; ≥ 10×: {_verdict(kd['speedup_vs_drgn'] >= 10)})")
        op = kd.get("libkdumpfile_open")
        if op:
            line += (f"; a process that only opens the file through libkdumpfile takes {op['wall']:.2f} s "
                     f"({op['rss_mib']:.0f} MiB), so no reader using it can be more than "
                     f"{kd['drgn']['process_wall'] / op['wall']:.1f}× faster than drgn's {kd['drgn']['process_wall']:.2f} s "
                     "(docs/scale.md)")
        out.append(line + ".")
    gdb = (by.get("16t") or {}).get("gdb")
    if gdb:
        out.append(f"16 TiB in gdb on the ELF core (no vmlinux): {gdb['wall']:.1f} s wall, {gdb['rss_mib']:.0f} MiB "
                   f"(≤ 30 s: {_verdict(gdb['wall'] <= 30)}).")
    st = doc.get("startup") or {}
    if "summary" in st:
        out.append(f"`vmemdbg summary` on `{st['summary_fixture']}`: {st['summary']:.2f} s wall, {st['summary_cpu']:.2f} s "
                   f"CPU, the whole process (≤ 0.3 s: {_verdict(st['summary'] <= 0.3)}).")
    if "plugin_cost" in st:
        out.append(f"drgn start-up with the plugin installed vs disabled: {st['plugin_cost'] * 1e3:+.1f} ms wall "
                   f"(≤ 50 ms: {_verdict(st['plugin_cost'] <= 0.05)}).")
    return out


def _replace_block(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in ``path``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    old = path.read_text()
    if start not in old or end not in old:
        raise SystemExit(f"{path}: no {start} ... {end} block")
    head, rest = old.split(start, 1)
    path.write_text(head + start + "\n" + text.strip("\n") + "\n" + end + rest.split(end, 1)[1])


def write_docs(doc: dict) -> None:
    """Rewrite the generated blocks of README.md (results table and targets) and docs/scale.md
    (the targets) from a results document."""
    load = ", ".join(f"{x:.2f}" for x in doc.get("load_average_at_start", []))
    when = (f"Measured {doc['date']} on {doc['cpus']} CPUs, Python {doc['python']} (load average at start: {load}; "
            "the whole process from fork to `wait4`, best of --repeat runs for vmemdbg, one drgn run).")
    verdicts = "\n".join(f"* {t}" for t in targets(doc))
    _replace_block(ROOT / "README.md", "results", table(doc["results"]) + "\n\n" + when + " Against the targets:\n\n" + verdicts)
    _replace_block(ROOT / "docs" / "scale.md", "targets", when + "\n\n" + verdicts)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64g,1t,16t,64t", help="comma-separated subset of " + ",".join(MACHINES))
    ap.add_argument("--repeat", type=int, default=3, help="runs per vmemdbg measurement (min wall, max RSS)")
    ap.add_argument("--workdir", type=Path, default=Path("/dev/shm/vmemdbg-bench"),
                    help="where the sparse dumps go (needs a filesystem taking 64 TiB sparse files: tmpfs, xfs)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="results JSON; when it is the default, README.md and docs/scale.md are regenerated too")
    ap.add_argument("--no-drgn", action="store_true", help="skip the drgn-helper side")
    ap.add_argument("--kdump", default="1t,16t", help="sizes whose kdump-compressed variant is measured ('' for none)")
    ap.add_argument("--gdb", default="16t", help="sizes measured in gdb too ('' for none)")
    ap.add_argument("--real", type=Path, default=Path("/work/dumps/base-6.1"), help="directory of the oracle's real dumps")
    ap.add_argument("--keep", action="store_true", help="keep the simulated dumps")
    ap.add_argument("--no-startup", action="store_true", help="skip the summary / drgn start-up measurements")
    ap.add_argument("--write-docs", action="store_true",
                    help="only rewrite the generated blocks of README.md and docs/scale.md from --out")
    args = ap.parse_args(argv)
    if args.write_docs:
        write_docs(json.loads(args.out.read_text()))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    # measured as installed: pip byte-compiles a package when it installs it, so start-up here
    # must not include compiling the sources (PYTHONDONTWRITEBYTECODE would make every run do it)
    compileall.compile_dir(str(ROOT / "vmemdbg"), quiet=1)
    results: list[dict] = []
    doc = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "python": sys.version.split()[0],
           "load_average_at_start": os.getloadavg(), "results": results}

    def save() -> None:  # after every measurement, so a failure later keeps what was measured
        args.out.write_text(json.dumps(doc, indent=1) + "\n")

    for name in [s for s in args.sizes.split(",") if s]:
        if name not in MACHINES:
            ap.error(f"unknown size {name!r}")
        print(f"{name}: simulating and measuring ...", file=sys.stderr, flush=True)
        results += bench_size(name, args.workdir, args)
        save()
    if args.real.is_dir():
        print("real dumps ...", file=sys.stderr, flush=True)
        results += bench_real(args.real, args.workdir, args.repeat, not args.no_drgn)
        save()
    start = {}
    if not args.no_startup:
        print("start-up ...", file=sys.stderr, flush=True)
        start = doc["startup"] = startup(args.repeat)
        save()
    if args.out == DEFAULT_OUT:  # the committed results: regenerate the README and docs/scale.md blocks
        write_docs(doc)
    print(table(results))
    for r in results:
        if r.get("gdb"):
            print(f"gdb audit on {r['label']}: {r['gdb']['wall']:.1f} s, {r['gdb']['rss_mib']:.0f} MiB")
    print(json.dumps(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
