#!/usr/bin/env python3
"""vmemdbg on a live kernel, inside a QEMU guest, compared with a dump of the same guest.

1. Stages a guest root file system and writes it as a read-only ext4 disk image (``mkfs.ext4 -d``,
   no mount needed): the host's Python interpreter (stdlib, ``libpython``), the ``ldd`` closure of
   its shared libraries and of every extension module, ``pip install --target`` of numpy,
   pyelftools, drgn and this checkout of vmemdbg (not editable, so drgn finds the plugin's entry
   point), static busybox and the kernel's ``-dbg`` vmlinux.
2. Builds a busybox initramfs (boot.py's cpio writer) with ``virtio_pci``, ``virtio_blk`` and
   ``qemu_fw_cfg``; its /init mounts the disk and chroots into it.
3. Boots the guest (QEMU TCG, q35, 1 GiB over two NUMA nodes, KASLR on, ``-device vmcoreinfo``).
   Inside, against ``/proc/kcore``: ``vmemdbg audit`` and every view with ``--json`` (the CLI, which
   reads through drgn's ``set_kernel``), then ``drgn -k -s vmlinux`` running the plugin's Python API
   and ``vmemdbg`` command, an interactive ``%vmemdbg`` session under a pseudo-terminal, and the
   Python API once more without debug info (kallsyms decoded from live memory). The outputs are
   written as a tar archive to a second (raw) disk, then the guest prints boot.py's ``VMEMDBG-READY``.
4. boot.py's ``run_case`` stops the guest at that marker and takes a ``dump-guest-memory`` ELF
   dump. The same views run on the dump and :mod:`livecmp` compares them: every field that cannot
   change between the two moments must be equal. The dump's own views are checked against drgn's truth (drgn_truth.py with the -dbg vmlinux), so
   the chain is: live views == dump views == drgn's helpers on the dump.
5. ``--fixture DIR`` extracts a minimal dump (``vmemdbg extract``) and writes it with the live JSON
   outputs and the truth, so that tests/test_live_kernel.py recomputes the dump side offline.

    python3 tests/realkernel/live.py --out /work/dumps/live [--fixture fixtures/live/6.1-1g-2node-kaslr] \
        [-o tests/realkernel/live.transcript.txt]

Exit status 1 if a guest command failed or any stable field differs (the fixture is then not written).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import boot  # noqa: E402
import livecmp  # noqa: E402
import truthcmp  # noqa: E402

SITE = "/opt/vmemdbg-live/site"
GUEST_DIR = "/live"
#: The guest: two NUMA nodes so that nodes and node-of-frame are exercised, KASLR on so that drgn's
#: and the engine's relocation are.
CASE = boot.Case(
    name="live-1g-2node-kaslr",
    qemu_args=("-machine", "q35", "-m", "1G", "-smp", "2", "-cpu", "max,la57=off",
               *(arg for n in (0, 1) for arg in ("-object", f"memory-backend-ram,id=m{n},size=512M",
                                                  "-numa", f"node,nodeid={n},cpus={n},memdev=m{n}"))),
    cmdline="",
    description="q35, 1 GiB over 2 NUMA nodes, KASLR on, 4-level; vmemdbg and drgn run inside",
)
#: Modules the initramfs loads (with their modules.dep closure).
MODULES = ("virtio_pci", "virtio_blk", "qemu_fw_cfg")
#: Stdlib parts the guest does not need.
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
               "config-3.11-x86_64-linux-gnu", "pydoc_data"}

INITRAMFS_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
[ -e /sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo ] && echo "vmemdbg: fw_cfg etc/vmcoreinfo present"
i=0
while [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; do
  i=$((i+1)); [ $i -gt 100 ] && {{ echo "vmemdbg-live: no /dev/vda + /dev/vdb"; break; }}; sleep 0.1
done
mkdir -p /newroot
mount -t ext4 -o ro /dev/vda /newroot || echo "vmemdbg-live: cannot mount /dev/vda"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o size=128m tmpfs /newroot/tmp
chroot /newroot /bin/sh {guest}/guest.sh
echo {marker}
while true; do sleep 3600; done
"""

GUEST_SH = """#!/bin/sh
export PATH=/bin PYTHONPATH={site} PYTHONNOUSERSITE=1 HOME=/tmp TERM=dumb
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
PY={python}
V={vmlinux}
O=/tmp/out
mkdir -p $O
run() {{
  n=$1; shift
  t0=$(date +%s)
  "$@" >$O/$n.out 2>$O/$n.err
  rc=$?
  echo $rc >$O/$n.rc
  echo "vmemdbg-live: $n rc=$rc $(( $(date +%s) - t0 ))s"
}}
echo "vmemdbg-live: uname $(uname -r), $(ls -l /proc/kcore)"
echo "vmemdbg-live: python $($PY -c 'import sys, numpy, drgn, vmemdbg; print(sys.version.split()[0], "numpy", numpy.__version__, "drgn", drgn.__version__)')"
run cli-audit $PY -m vmemdbg audit /proc/kcore
{cli_runs}
run drgn-api $PY -m drgn -k -q --main-symbols -s $V {guest}/drgn_api.py $O/drgn
run drgn-repl $PY {guest}/drgn_repl.py $PY -m drgn -k -q --main-symbols -s $V
run drgn-nodebug $PY -m drgn -k -q --no-default-symbols {guest}/drgn_api.py $O/drgn-nodebug
tar -cf /dev/vdb -C $O .
sync
"""

#: Addresses explained on both sides: pfn 0, node 0's 0x1000, node 1's first pfn, the last RAM
#: page, a physical address.
EXPLAIN = ("pfn:0x0", "pfn:0x1000", "pfn:0x20000", "pfn:0x3ffdf", "phys:0x2000000")

DRGN_API = """\"\"\"Run by ``drgn -k`` in the guest: the plugin's Python API and its ``vmemdbg`` command.\"\"\"
import contextlib, io, json, sys
from drgn.commands import run_command
from vmemdbg import drgn_plugin
from vmemdbg.vmemmap import vmemmap_mapping

out = sys.argv[1]
kernel = drgn_plugin.kernel_from_prog(prog)
doc = {{
    "debug_info": kernel._user_symbols is not None,
    "summary": drgn_plugin.summary(prog),
    "sections": drgn_plugin.sections(prog),
    "vmemmap": drgn_plugin.vmemmap(prog),
    "explain": [drgn_plugin.explain(prog, a) for a in {explain!r}],
    "table_pages": sorted(vmemmap_mapping(kernel).leaves.tables),
}}
with open(out + "-api.json", "w") as f:
    json.dump(doc, f)
for cmd in ("audit --json", "audit"):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run_command(prog, "vmemdbg " + cmd)
    with open(out + "-cmd-" + cmd.replace(" --", "-") + ".out", "w") as f:
        f.write(buf.getvalue())
print("debug_info", doc["debug_info"], "runs", len(doc["vmemmap"]["runs"]),
      "present", doc["summary"]["counts"]["present"])
"""

#: Drives an interactive drgn session under a pseudo-terminal (``%`` commands need a tty).
DRGN_REPL = """\"\"\"Run drgn interactively under a pty and type %vmemdbg commands into it.\"\"\"
import os, pty, select, sys, time

LINES = ["%vmemdbg summary", "%vmemdbg vmemmap", "%vmemdbg explain pfn:0x20000",
         "from vmemdbg.drgn_plugin import vmemmap",
         "[hex(r['phys']) for r in vmemmap(prog)['runs']]",
         "exit()"]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
buf = b""


def until_prompt(start, timeout=1800):
    global buf
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if buf.endswith(b">>> ") and len(buf) > start:
            return True
        r, _, _ = select.select([fd], [], [], 5)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return False
            if not data:
                return False
            buf += data
    return False


mark = 0
for line in LINES:
    if not until_prompt(mark):
        break
    mark = len(buf)  # the next prompt comes after this one
    os.write(fd, line.encode() + b"\\n")
until_prompt(mark, 60)
_, status = os.waitpid(pid, 0)
sys.stdout.write(buf.decode(errors="replace").replace("\\r\\n", "\\n"))
sys.exit(os.waitstatus_to_exitcode(status))
"""


# --------------------------------------------------------------------------- guest root


def _ldd(paths: list[Path]) -> set[Path]:
    """Shared libraries (outside the staged tree) that ``paths`` need, per ``ldd``."""
    libs: set[Path] = set()
    for p in paths:
        out = subprocess.run(["ldd", str(p)], capture_output=True, text=True).stdout
        for m in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", out):
            libs.add(Path(m.group(1)))
    return libs


def _is_elf(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    shutil.copymode(src, dst)


def stage_root(stage: Path, release: str, vmlinux: Path) -> None:
    """Fill ``stage`` with everything the guest runs."""
    if stage.exists():
        shutil.rmtree(stage)
    for d in ("bin", "dev", "proc", "sys", "tmp", GUEST_DIR[1:]):
        (stage / d).mkdir(parents=True)
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    _copy_file(busybox, stage / "bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    for a in applets.split():
        if not (stage / "bin" / a).exists():
            (stage / "bin" / a).symlink_to("busybox")

    # the interpreter at the same path as on the host, so its prefix and stdlib are found as usual
    prefix = Path(sys.base_prefix)
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = prefix / "bin" / ver
    _copy_file(python, stage / python.relative_to("/"))
    for so in (prefix / "lib").glob(f"lib{ver}*.so*"):
        _copy_file(so.resolve(), stage / so.relative_to("/"))
    stdlib = prefix / "lib" / ver
    shutil.copytree(stdlib, stage / stdlib.relative_to("/"), symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == stdlib and n in STDLIB_SKIP])

    site = stage / SITE[1:]
    pkgs = [f"numpy=={importlib.metadata.version('numpy')}",
            f"pyelftools=={importlib.metadata.version('pyelftools')}",
            f"drgn=={importlib.metadata.version('drgn')}"]
    boot.log(f"pip install --target {site}: {' '.join(pkgs)} + {ROOT}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-script-location",
                    "--target", str(site), *pkgs], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-warn-script-location",
                    "--target", str(site), str(ROOT)], check=True)

    elves = [p for p in stage.rglob("*") if p.is_file() and not p.is_symlink()
             and (p.suffix == ".so" or ".so." in p.name or p.parent.name == "bin") and _is_elf(p)]
    for lib in sorted(_ldd(elves)):
        if str(lib).startswith(str(stage)):
            continue
        dst = stage / lib.relative_to("/")
        if not dst.exists():
            _copy_file(lib.resolve(), dst)

    vdst = stage / f"usr/lib/debug/boot/vmlinux-{release}"
    vdst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(vmlinux, vdst)
    except OSError:
        shutil.copyfile(vmlinux, vdst)

    cli_runs = [f"run {name} $PY -m vmemdbg {argv[0]} /proc/kcore "
                + " ".join([*(EXPLAIN if argv[0] == "explain" else ()), *argv[1:]])
                for name, argv in livecmp.CLI_COMMANDS.items()]
    guest = {"site": SITE, "python": "/" + str(python.relative_to("/")), "vmlinux": f"/{vdst.relative_to(stage)}",
             "guest": GUEST_DIR, "cli_runs": "\n".join(cli_runs)}
    (stage / GUEST_DIR[1:] / "guest.sh").write_text(GUEST_SH.format(**guest))
    (stage / GUEST_DIR[1:] / "drgn_api.py").write_text(DRGN_API.format(explain=list(EXPLAIN)))
    (stage / GUEST_DIR[1:] / "drgn_repl.py").write_text(DRGN_REPL)


def make_disk(stage: Path, image: Path) -> None:
    """A read-only ext4 image holding ``stage`` (``mkfs.ext4 -d``: no mount, no loop device)."""
    used = int(subprocess.run(["du", "-sbx", str(stage)], capture_output=True, text=True, check=True)
               .stdout.split()[0])
    size = (used * 5 // 4 + (96 << 20)) & ~0xFFFFF
    if image.exists():
        image.unlink()
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "vmemdbg-live", "-O", "^has_journal", "-d", str(stage),
                    str(image)], check=True)


def guest_case(rootimg: Path, outimg: Path) -> boot.Case:
    """:data:`CASE` with the root disk (read-only) and the output disk attached."""
    return dataclasses.replace(CASE, qemu_args=CASE.qemu_args + (
        "-drive", f"file={rootimg},if=virtio,format=raw,readonly=on",
        "-drive", f"file={outimg},if=virtio,format=raw"))


def read_outputs(outimg: Path) -> dict[str, bytes]:
    """The files the guest wrote as a tar archive onto the raw output disk."""
    files: dict[str, bytes] = {}
    with tarfile.open(outimg, "r:") as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                files[m.name.removeprefix("./")] = f.read()
    return files


# --------------------------------------------------------------------------- report


def dump_vs_truth(dump: Path, truth: dict) -> list[str]:
    """Every view of ``dump`` compared with drgn's truth (as make_fixtures.py does)."""
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel

    return truthcmp.compare(truthcmp.engine_views(Kernel(open_dump(dump)), truth), truth)


def _section(title: str, body: str) -> str:
    return f"\n### {title}\n{body.rstrip()}\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/work/dumps/live"), help="work directory (dump, images)")
    ap.add_argument("--release", default=boot.RELEASE, help="kernel release (default %(default)s)")
    ap.add_argument("--fixture", type=Path, help="write the live JSON outputs + an extracted dump here")
    ap.add_argument("-o", "--transcript", type=Path, help="write the transcript here too")
    ap.add_argument("--timeout", type=float, default=2400.0, help="seconds for the guest and for the dump")
    ap.add_argument("--reanalyse", action="store_true",
                    help="do not boot: compare the outputs and dump of the last run in --out again")
    args = ap.parse_args(argv)
    kernel = Path(f"/boot/vmlinuz-{args.release}")
    vmlinux = Path(f"/usr/lib/debug/boot/vmlinux-{args.release}")
    out: Path = args.out
    try:
        for p in (kernel, vmlinux):
            if not p.is_file():
                raise boot.BootError(f"{p} not found (run setup.sh)")
        out.mkdir(parents=True, exist_ok=True)
        outimg = out / "outputs.img"
        if args.reanalyse:
            res = json.loads((out / CASE.name / "boot-info.json").read_text())
        else:
            rootimg = out / "root.img"
            stage_root(out / "stage", args.release, vmlinux)
            make_disk(out / "stage", rootimg)
            shutil.rmtree(out / "stage")
            boot.log(f"root disk {rootimg} ({rootimg.stat().st_size >> 20} MiB)")
            initrd = boot.build_initramfs(out / "initramfs.cpio.gz", args.release, modules=MODULES,
                                          init=INITRAMFS_INIT.format(guest=GUEST_DIR, marker=boot.MARKER))
            with open(outimg, "wb") as f:
                f.truncate(0)
                f.truncate(64 << 20)
            res = boot.run_case(guest_case(rootimg, outimg), out, kernel, initrd, args.timeout)
        files = read_outputs(outimg)
    except (boot.BootError, OSError, subprocess.SubprocessError, tarfile.TarError) as e:
        print(f"live.py: error: {e}", file=sys.stderr)
        return 1
    cdir = out / CASE.name
    (cdir / "guest").mkdir(exist_ok=True)
    for name, data in files.items():
        (cdir / "guest" / name).write_bytes(data)

    transcript = io.StringIO()
    w = transcript.write
    w("# vmemdbg on a live kernel (QEMU TCG guest), compared with a dump taken right after\n")
    w(f"# {CASE.description}\n# kernel {args.release}; {res['boot_seconds']} s from QEMU start to the guest's "
      f"{boot.MARKER} (all commands run), then the ELF dump ({res['elf_dump_seconds']} s)\n")
    serial = (cdir / "serial.log").read_text(errors="replace")
    w(_section("guest console (vmemdbg-live lines)",
               "\n".join(ln for ln in serial.splitlines() if ln.startswith("vmemdbg-live:"))))
    failed = sorted(n[:-3] for n, d in files.items() if n.endswith(".rc") and d.strip() != b"0")
    for name in sorted(n for n in files if n.endswith(".err") and files[n].strip()):
        w(_section(f"guest stderr: {name}", files[name].decode(errors="replace")))
    w(_section("guest: vmemdbg audit /proc/kcore", files.get("cli-audit.out", b"").decode()))
    w(_section("guest: drgn -k -s vmlinux, interactive %vmemdbg (pty)", files.get("drgn-repl.out", b"").decode()))
    w(_section("guest: drgn -k, run_command(prog, 'vmemdbg audit')", files.get("drgn-cmd-audit.out", b"").decode()))

    if failed:
        return _finish(transcript.getvalue(), args.transcript, [f"guest commands failed: {', '.join(failed)}"])
    live = livecmp.live_documents(files)
    result = livecmp.compare_all(live, livecmp.dump_documents(cdir / "vmcore.elf", live))
    w(_section("live vs dump (ELF dump of the same guest taken at the marker)", livecmp.format_result(result)))
    truth_path = cdir / "truth.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("drgn_truth.py")), "-q",
                           str(cdir / "vmcore.elf"), str(vmlinux), "-o", str(truth_path)])
    if proc.returncode:
        return _finish(transcript.getvalue(), args.transcript, [f"drgn_truth.py failed on {cdir / 'vmcore.elf'}"])
    truth = json.loads(truth_path.read_text())
    truth_diffs = dump_vs_truth(cdir / "vmcore.elf", truth)
    w(_section("the dump vs drgn's truth (drgn_truth.py with the -dbg vmlinux on the full dump, truthcmp.py)",
               "\n".join(truth_diffs) or "no difference"))
    problems = result["problems"] + [f"dump vs drgn truth: {d}" for d in truth_diffs]
    if args.fixture and not problems:
        small = args.fixture / "vmcore.elf"
        args.fixture.mkdir(parents=True, exist_ok=True)
        keep = [a for e in (*EXPLAIN, *(x["input"] for x in truth["explain"])) for a in ("--keep", e)]
        subprocess.run([sys.executable, "-m", "vmemdbg", "extract", str(cdir / "vmcore.elf"), "-o", str(small),
                        *keep], check=True, capture_output=True)
        same = (livecmp.compare_all(live, livecmp.dump_documents(small, live)) == result
                and dump_vs_truth(small, truth) == [])
        w(_section("same comparison on the extracted dump (vmemdbg extract)",
                   f"{small.name}, {small.stat().st_size} bytes: {'identical result' if same else 'DIFFERENT result'}"))
        if same:
            livecmp.write_fixture(args.fixture, files, result, serial)
            shutil.copyfile(truth_path, args.fixture / "truth.json")
        else:
            problems.append("the extracted dump does not give the full dump's result (fixture not written)")
    return _finish(transcript.getvalue(), args.transcript, problems)


def _finish(text: str, path: Path | None, problems: list[str]) -> int:
    """Print (and save) the transcript; exit status 1 with one line if anything went wrong."""
    print(text)
    if path:
        path.write_text(text)
    if problems:
        print(f"live.py: error: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
              file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
