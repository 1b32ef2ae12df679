"""Corpus runner: damaged copies of the committed real and simulated fixtures through the CLI, each
run bounded and classified.

    python3 tests/fuzz/runner.py --count 10000 --seed 1 --jobs 2 [--exec] [--save DIR] [-o results.jsonl]

Each mutated dump (:mod:`mutators`) is run through ``audit --json`` plus one other command in
rotation (every view, text and JSON, ``explain`` and ``extract``) in a child process with a 10 s
wall-clock limit and an address-space limit of the runner's own size + 1 GiB (RLIMIT_AS); its peak
RSS comes from ``wait4``. By default the child is a fork of this runner, which has vmemdbg, numpy
and the clean fixtures' decoded kallsyms already loaded (``--exec`` runs ``python -m vmemdbg``
instead, for confirming single cases). The decoded-kallsyms memo only answers for byte-identical
kallsyms tables and the same VMCOREINFO symbols, so every dump whose tables were damaged is
decoded for real.

Outcome classes (worst command of a dump wins): ``result`` (exit 0 and, for JSON, every value
allowed by :mod:`checker`), ``error`` (exit 2, one line), ``invalid`` (exit 0 with an impossible
value), ``internal`` (exit 3), ``traceback`` (a traceback or more than one line on stderr),
``memory`` (peak RSS over 1 GiB or MemoryError), ``hang`` (killed at the time limit), ``crash``
(killed by a signal or any other exit status).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from anatomy import Anatomy, analyse  # noqa: E402
from checker import violations  # noqa: E402
from mutators import mutate  # noqa: E402

import vmemdbg.kernel  # noqa: E402
from vmemdbg import cli  # noqa: E402

REAL_CASES = ("1g-nokaslr", "6g-2node-kaslr", "1000m")
SIM_MACHINES = ("kaslr-3node-5level", "offnode-tiny-node1")
GIB = 1 << 30
ORDER = ["result", "error", "invalid", "internal", "traceback", "memory", "hang", "crash"]
#: The second command of each run, in rotation (DUMP and OUT are substituted).
ROTATION = [["summary", "DUMP", "--json"], ["sections", "DUMP", "--json", "-v"], ["vmemmap", "DUMP", "--json"],
            ["memblock", "DUMP", "--json"], ["e820", "DUMP", "--json"], ["explain", "DUMP", "EXPLAIN", "--json"],
            ["extract", "DUMP", "-o", "OUT"], ["audit", "DUMP", "-v"], ["vmemmap", "DUMP"], ["sections", "DUMP", "-v"],
            ["memblock", "DUMP"], ["explain", "DUMP", "EXPLAIN", "-v"]]


def memo_kallsyms() -> Callable[[], None]:
    """Decode each distinct kallsyms once per runner (see the module docstring).

    The decoder is deterministic: given the same VMCOREINFO symbols and the same bytes at the same
    addresses it makes the same reads and returns the same table. So a decode is recorded as its
    read sequence and a digest of what those reads returned; a later dump gets the recorded answer
    only if replaying that sequence on it returns identical bytes.
    """
    real = vmemdbg.kernel.Kallsyms
    cache: dict[tuple, list[tuple[list[tuple[int, int]], bytes, object]]] = {}

    def decode(info, read, *args, **kwargs):  # type: ignore[no-untyped-def]
        key = tuple(sorted((k, v) for k, v in info.entries.items()
                           if k.startswith("SYMBOL(kallsyms_") or k == "SYMBOL(_stext)"))
        for reads, digest, out in cache.get(key, []):
            h = hashlib.sha1()
            for va, n in reads:
                try:
                    h.update(read(va, n))
                except Exception as e:  # a fault is part of what the decoder saw
                    h.update(f"fault {type(e).__name__}".encode())
            if h.digest() == digest:
                return out
        seq: list[tuple[int, int]] = []
        h = hashlib.sha1()

        def recording(va: int, n: int) -> bytes:
            seq.append((va, n))
            try:
                b = read(va, n)
            except Exception as e:
                h.update(f"fault {type(e).__name__}".encode())
                raise
            h.update(b)
            return b

        out = real(info, recording, *args, **kwargs)
        cache.setdefault(key, []).append((seq, h.digest(), out))
        return out

    vmemdbg.kernel.Kallsyms = decode  # type: ignore[misc,assignment]

    def restore() -> None:
        vmemdbg.kernel.Kallsyms = real  # type: ignore[misc]

    return restore


@dataclass
class Case:
    index: int
    base: str
    family: str
    label: str
    path: str
    argvs: list[list[str]]
    started: float = 0.0
    pid: int = 0
    outdir: str = ""
    commands: list[dict] = field(default_factory=list)
    outcome: str = ""
    seconds: float = 0.0
    maxrss_kib: int = 0
    proc: subprocess.Popen | None = None


def classify(argv: list[str], rc: int | None, out: str, err: str) -> dict:
    """Class of one command's result."""
    lines = err.strip().splitlines()
    res = {"argv": argv[:1] + argv[2:], "rc": rc, "stderr": lines[0][:300] if lines else ""}
    if rc is None:
        res["class"] = "crash"
    elif "Traceback" in err or len(lines) > 1:
        res["class"] = "traceback"
    elif "MemoryError" in err:
        res["class"] = "memory"
    elif rc == 3:
        res["class"] = "internal"
    elif rc == 2 and len(lines) == 1 and lines[0].startswith("vmemdbg: error: "):
        res["class"] = "error"
    elif rc == 0:
        res["class"] = "result"
        if "--json" in argv:
            try:
                bad = violations(json.loads(out))
            except (ValueError, KeyError, TypeError) as e:
                bad = [f"unparsable or incomplete JSON: {type(e).__name__}: {e}"]
            if bad:
                res["class"] = "invalid"
                res["violations"] = bad[:5]
    else:
        res["class"] = "crash"
    return res


def _child(case: Case, mem_limit: int) -> None:
    """In the forked child: run each command with fds 1 and 2 redirected to files."""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        for j, argv in enumerate(case.argvs):
            for fd, suffix in ((1, "out"), (2, "err")):
                f = os.open(f"{case.outdir}/{j}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
                os.close(f)
            # the parent's sys.stdout may not be fd 1 (pytest's capture): write to the files
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the child process
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - idem
            try:
                rc = cli.main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 2
            sys.stdout.flush()
            sys.stderr.flush()
            with open(f"{case.outdir}/{j}.rc", "w") as f2:
                f2.write(str(rc))
    except BaseException as e:  # anything escaping main() is a crash of this case
        try:
            with open(f"{case.outdir}/crash", "w") as f3:
                f3.write(f"{type(e).__name__}: {e}")
        finally:
            os._exit(99)
    os._exit(0)


def start(case: Case, mem_limit: int, exec_mode: bool) -> None:
    case.outdir = tempfile.mkdtemp(prefix=f"case{case.index}-", dir=os.path.dirname(case.path))
    case.started = time.monotonic()
    if exec_mode:
        script = ("import resource, subprocess, sys\n"
                  f"resource.setrlimit(resource.RLIMIT_AS, ({mem_limit}, {mem_limit}))\n"
                  f"argvs = {case.argvs!r}\n"
                  "for j, a in enumerate(argvs):\n"
                  f"    with open('{case.outdir}/%d.out' % j, 'w') as o, open('{case.outdir}/%d.err' % j, 'w') as e:\n"
                  "        rc = subprocess.call([sys.executable, '-m', 'vmemdbg', *a], stdout=o, stderr=e)\n"
                  f"    open('{case.outdir}/%d.rc' % j, 'w').write(str(rc))\n")
        case.proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(ROOT), start_new_session=True)
        case.pid = case.proc.pid  # the Popen is kept so that subprocess never reaps it behind wait4
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        _child(case, mem_limit)
    case.pid = pid


def finish(case: Case, status: int | None, rusage: resource.struct_rusage | None, timed_out: bool) -> None:
    case.seconds = time.monotonic() - case.started
    case.maxrss_kib = rusage.ru_maxrss if rusage else 0
    for j, argv in enumerate(case.argvs):
        def rd(suffix: str, j: int = j) -> str | None:
            try:
                with open(f"{case.outdir}/{j}.{suffix}", errors="replace") as f:
                    return f.read()
            except OSError:
                return None
        rc_text = rd("rc")
        if rc_text is None:
            break
        case.commands.append(classify(argv, int(rc_text), rd("out") or "", rd("err") or ""))
    classes = [c["class"] for c in case.commands]
    if status is not None and (os.WIFSIGNALED(status) or os.WEXITSTATUS(status)):
        why = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}")
        try:
            with open(f"{case.outdir}/crash") as f:
                why += ": " + f.read()
        except OSError:
            pass
        case.commands.append({"argv": ["(child)"], "rc": None, "stderr": why, "class": "crash"})
    if timed_out:
        classes.append("hang")
    elif (status is not None and (os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0)) or \
            len(case.commands) < len(case.argvs):
        classes.append("crash")
    if case.maxrss_kib * 1024 > GIB:
        classes.append("memory")
    case.outcome = max(classes, key=ORDER.index) if classes else "crash"
    shutil.rmtree(case.outdir, ignore_errors=True)


def simulated_fixtures(tmp: Path) -> list[Path]:
    from vmemdbg.sim import simulate

    out = []
    for m in SIM_MACHINES:
        dst = tmp / m / "vmcore.elf"
        dst.parent.mkdir()
        simulate(ROOT / "fixtures" / "machines" / f"{m}.toml", dst)
        out.append(dst)
    return out


def bases(tmp: Path) -> list[Anatomy]:
    """The clean dumps to mutate: the committed real fixtures and simulated machines."""
    out = [analyse(ROOT / "fixtures" / "real" / c / "vmcore.elf", c) for c in REAL_CASES]
    try:
        sims = simulated_fixtures(tmp)
    except ImportError:
        sims = []
    out += [analyse(p, p.parent.name) for p in sims]
    return out


def run(count: int, seed: int, jobs: int, timeout: float, exec_mode: bool, save: Path | None,
        results: Path | None, progress: bool = True, tmp: Path | None = None, only: list[int] | None = None) -> dict:
    """Run ``count`` mutated dumps; return the summary (counts by class, worst time and RSS, failures)."""
    own = tmp is None
    tmp = Path(tempfile.mkdtemp(prefix="vmemdbg-fuzz-")) if own else tmp
    try:
        anatomies = bases(tmp)
        restore = memo_kallsyms()
        for a in anatomies:  # warm the memo with the clean tables
            _ = vmemdbg.kernel.Kernel(vmemdbg.dump.open_dump(_write(tmp / f"{a.name}.clean", a.data))).symbols
        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) for ln in f if ln.startswith("VmSize:")) * 1024
        mem_limit = vm + GIB
        summary = {"dumps": 0, "commands": 0, "outcomes": {k: 0 for k in ORDER}, "by_family": {},
                   "max_seconds": 0.0, "max_rss_mib": 0.0, "failures": [], "seed": seed, "bases": [a.name for a in anatomies]}
        out = open(results, "w") if results else None  # noqa: SIM115 - closed after the loop
        running: list[Case] = []
        todo = list(only) if only else list(range(count))
        t0 = time.monotonic()
        while todo or running:
            while todo and len(running) < jobs:
                nxt = todo.pop(0)
                rng = random.Random(f"{seed}:{nxt}")
                a = rng.choice(anatomies)
                fam, data, label = mutate(rng, a)
                path = _write(tmp / f"case{nxt}" / "vmcore", data)  # one file per case: never rewritten while mapped
                second = [w.replace("DUMP", str(path)).replace("OUT", str(path) + ".small")
                          .replace("EXPLAIN", rng.choice(a.explain_addrs)) for w in ROTATION[nxt % len(ROTATION)]]
                case = Case(nxt, a.name, fam, label, str(path), [["audit", str(path), "--json"], second])
                start(case, mem_limit, exec_mode)
                running.append(case)
            time.sleep(0.002)
            for case in list(running):
                pid, status, ru = os.wait4(case.pid, os.WNOHANG)
                timed_out = False
                if pid == 0:
                    if time.monotonic() - case.started < timeout:
                        continue
                    os.killpg(case.pid, signal.SIGKILL)
                    pid, status, ru = os.wait4(case.pid, 0)
                    timed_out = True
                finish(case, status, ru, timed_out)
                running.remove(case)
                summary["dumps"] += 1
                summary["commands"] += len(case.commands)
                summary["outcomes"][case.outcome] += 1
                fam = summary["by_family"].setdefault(case.family, {})
                fam[case.outcome] = fam.get(case.outcome, 0) + 1
                summary["max_seconds"] = max(summary["max_seconds"], round(case.seconds, 2))
                summary["max_rss_mib"] = max(summary["max_rss_mib"], round(case.maxrss_kib / 1024, 1))
                rec = {"index": case.index, "base": case.base, "family": case.family, "label": case.label,
                       "outcome": case.outcome, "seconds": round(case.seconds, 3), "maxrss_mib": round(case.maxrss_kib / 1024, 1),
                       "commands": case.commands}
                if out:
                    out.write(json.dumps(rec) + "\n")
                if case.outcome not in ("result", "error"):
                    summary["failures"].append(rec)
                    if save:
                        save.mkdir(parents=True, exist_ok=True)
                        shutil.copy(case.path, save / f"case{case.index}-{case.outcome}.elf")
                shutil.rmtree(os.path.dirname(case.path), ignore_errors=True)
                if progress and summary["dumps"] % 200 == 0:
                    print(f"{summary['dumps']} dumps, {time.monotonic() - t0:.0f} s: {summary['outcomes']}", file=sys.stderr)
        summary["wall_seconds"] = round(time.monotonic() - t0, 1)
        if out:
            out.close()
        return summary
    finally:
        if "restore" in locals():
            restore()
        if own:
            shutil.rmtree(tmp, ignore_errors=True)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--exec", action="store_true", help="run python -m vmemdbg instead of forking")
    p.add_argument("--save", type=Path, help="copy every dump whose outcome is not result/error here")
    p.add_argument("-o", "--results", type=Path, help="one JSON line per dump")
    p.add_argument("--summary", type=Path, help="write the summary JSON here")
    p.add_argument("--only", type=int, nargs="+", metavar="INDEX", help="run only these case numbers (to reproduce)")
    a = p.parse_args()
    s = run(a.count, a.seed, a.jobs, a.timeout, a.exec, a.save, a.results, only=a.only)
    brief = {k: v for k, v in s.items() if k != "failures"}
    print(json.dumps(brief, indent=1))
    for f in s["failures"][:50]:
        print(f"{f['outcome']:9} #{f['index']} {f['base']} {f['family']}: {f['label']} -> "
              f"{[(c['argv'][0], c['class'], c.get('violations', c['stderr'])) for c in f['commands'] if c['class'] not in ('result', 'error')]}")
    if a.summary:
        a.summary.write_text(json.dumps(s, indent=1))
    return 0 if all(s["outcomes"][k] == 0 for k in ORDER[2:]) else 1


if __name__ == "__main__":
    sys.exit(main())
