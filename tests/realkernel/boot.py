#!/usr/bin/env python3
"""Boot a real Debian kernel under QEMU/TCG and take full guest-memory dumps.

For every case this script:

1. builds (once) a tiny busybox initramfs whose /init loads ``qemu_fw_cfg`` so
   that ``-device vmcoreinfo`` receives the guest's VMCOREINFO, prints the
   marker line ``VMEMDBG-READY`` on the serial console and then sleeps;
2. boots the kernel with ``-accel tcg`` and the case's machine/memory/CPU
   options, the serial console going to ``serial.log`` and a QMP socket;
3. waits for the marker, runs ``dump-guest-memory`` (paging=false, ELF; plus
   ``kdump-zlib`` for the case that asks for it), waits for completion and
   quits QEMU.

Output: ``OUT/<case>/{vmcore.elf, serial.log, qemu-cmdline.txt[, vmcore.kdump]}``.

Python 3.11 stdlib; the dump's VMCOREINFO is checked with vmemdbg's own ELF reader (pyelftools).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import gzip
import io
import json
import lzma
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RELEASE = "6.1.0-56-cloud-amd64"
MARKER = "VMEMDBG-READY"
#: Printed by /init once memory blocks added after boot (QMP hot-add) are all online.
HOTPLUG_MARKER = "VMEMDBG-HOTPLUGGED"
COMMON_CMDLINE = "console=ttyS0 memblock=debug loglevel=8 ignore_loglevel panic=-1"


@dataclasses.dataclass(frozen=True)
class Case:
    """One boot configuration."""

    name: str
    qemu_args: tuple[str, ...]
    cmdline: str
    kdump: bool = False
    description: str = ""
    #: QMP commands (name, arguments) run once the guest is ready; the guest's /init then onlines
    #: the new memory blocks and prints HOTPLUG_MARKER before the dump is taken.
    hotplug: tuple[tuple[str, dict], ...] = ()


def _dimm(n: int, size_mib: int, node: int | None = None) -> tuple[tuple[str, dict], ...]:
    """QMP commands that hot-add one pc-dimm of ``size_mib`` MiB (on NUMA ``node``)."""
    dev: dict = {"driver": "pc-dimm", "id": f"dimm{n}", "memdev": f"hp{n}"}
    if node is not None:
        dev["node"] = node
    return (("object-add", {"qom-type": "memory-backend-ram", "id": f"hp{n}", "size": size_mib << 20}),
            ("device_add", dev))


#: Machines with room for DIMMs: ACPI memory hotplug needs slots and maxmem.
_HOTPLUG_RAM = ("-m", "1G,slots=2,maxmem=4G")
_TWO_NODES = ("-smp", "2",
              "-object", "memory-backend-ram,id=m0,size=512M", "-numa", "node,nodeid=0,cpus=0,memdev=m0",
              "-object", "memory-backend-ram,id=m1,size=512M", "-numa", "node,nodeid=1,cpus=1,memdev=m1")


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            name="1g-nokaslr",
            qemu_args=("-machine", "pc", "-m", "1G", "-cpu", "qemu64"),
            cmdline="nokaslr",
            description="i440fx, 1 GiB, one node, no KASLR, qemu64 CPU (no GB pages), 4-level",
        ),
        Case(
            name="6g-2node-kaslr",
            qemu_args=(
                "-machine", "q35", "-m", "6G", "-smp", "2", "-cpu", "max,la57=off",
                "-object", "memory-backend-ram,id=m0,size=3G",
                "-numa", "node,nodeid=0,cpus=0,memdev=m0",
                "-object", "memory-backend-ram,id=m1,size=3G",
                "-numa", "node,nodeid=1,cpus=1,memdev=m1",
            ),
            cmdline="",
            kdump=True,
            description="q35, 6 GiB over 2 NUMA nodes, KASLR on, 4-level; also a kdump-zlib dump",
        ),
        Case(
            name="1000m",
            qemu_args=("-machine", "q35", "-m", "1000M", "-cpu", "max"),
            cmdline="nokaslr",
            description="q35, 1000 MiB (RAM ends mid-section), no KASLR, -cpu max (LA57: 5-level)",
        ),
        Case(
            name="hotplug",
            qemu_args=("-machine", "q35", *_HOTPLUG_RAM, "-cpu", "max,la57=off", *_TWO_NODES),
            cmdline="nokaslr memhp_default_state=online",
            hotplug=_dimm(0, 256, node=1),
            description="q35, 2 nodes x 512 MiB, a 256 MiB pc-dimm hot-added on node 1 through QMP and "
                        "onlined; memmap from the buddy allocator; 4-level",
        ),
        Case(
            name="memmap-on-memory",
            qemu_args=("-machine", "q35", *_HOTPLUG_RAM, "-cpu", "max"),
            cmdline="nokaslr memhp_default_state=online memory_hotplug.memmap_on_memory=1",
            hotplug=_dimm(0, 128),
            description="q35, 1 GiB + one 128 MiB (single memory block) pc-dimm hot-added with "
                        "memmap_on_memory: self-hosted memmap; -cpu max: 5-level",
        ),
        Case(
            name="hvo",
            qemu_args=("-machine", "q35", "-m", "2560M", "-cpu", "max"),
            cmdline="nokaslr hugetlb_free_vmemmap=on hugepagesz=1G hugepages=1 hugepagesz=2M hugepages=16",
            description="q35, 2.5 GiB (all below 4 GiB, so one 1 GiB-aligned range is free), HugeTLB vmemmap optimisation with one 1 GiB and sixteen 2 MiB pages "
                        "reserved at boot; -cpu max: GB pages and 5-level",
        ),
    )
}


class BootError(RuntimeError):
    """Raised with a one-line explanation when a boot or dump fails."""


# --------------------------------------------------------------------------- initramfs


def _cpio_newc(entries: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """Serialise ``(name, mode, data, rdevmajor, rdevminor)`` entries as a newc cpio archive."""
    out = io.BytesIO()

    def pad4() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data, rmaj, rmin) in enumerate(
        entries + [("TRAILER!!!", 0, b"", 0, 0)], start=1
    ):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0)
        out.write(b"070701" + b"".join(b"%08x" % f for f in fields))
        out.write(nb)
        pad4()
        out.write(data)
        pad4()
    return out.getvalue()


def _read_module(path: Path) -> bytes:
    """Return the raw ELF bytes of a kernel module, decompressing .xz/.gz/.zst."""
    raw = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(raw)
    if path.suffix == ".gz":
        return gzip.decompress(raw)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return raw


def _module_closure(moddir: Path, name: str) -> list[Path]:
    """Module ``name`` and its dependencies from modules.dep, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        key, _, rest = line.partition(":")
        deps[key] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", Path(k).name).replace("-", "_"): k for k in deps}
    if name not in by_name:
        builtin = (moddir / "modules.builtin").read_text()
        if re.search(rf"/{name}\.ko\b", builtin):
            return []
        raise BootError(f"module {name} not found in {moddir}/modules.dep or modules.builtin")
    order: list[str] = []

    def visit(key: str) -> None:
        for d in deps.get(key, []):
            visit(d)
        if key not in order:
            order.append(key)

    visit(by_name[name])
    return [moddir / k for k in order]


INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
if [ -e /sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo ]; then
  echo "vmemdbg: fw_cfg etc/vmcoreinfo present"
else
  echo "vmemdbg: WARNING fw_cfg etc/vmcoreinfo missing"
fi
echo "vmemdbg: uname $(uname -r)"
echo "vmemdbg: $(grep -i -m1 la57 /proc/cpuinfo >/dev/null && echo cpu-has-la57 || echo cpu-no-la57)"
echo "vmemdbg: cmdline $(cat /proc/cmdline)"
M=/sys/devices/system/memory
report() {{
  echo "vmemdbg: block_size_bytes $(cat $M/block_size_bytes)"
  for d in $M/memory*; do
    nid=$(ls -d $d/node* 2>/dev/null | sed 's/.*node//')
    echo "vmemdbg: block ${{d##*memory}} phys_index $(cat $d/phys_index) state $(cat $d/state) nid $nid zones $(cat $d/valid_zones 2>/dev/null | tr ' ' ,)"
  done
  grep "System RAM" /proc/iomem | sed 's/^ */vmemdbg: iomem /'
  grep memmap /proc/vmstat | sed 's/^/vmemdbg: vmstat /'
  for h in /sys/kernel/mm/hugepages/hugepages-*; do
    [ -e $h ] && echo "vmemdbg: hugepages ${{h##*-}} $(cat $h/nr_hugepages)"
  done
}}
report
echo {MARKER}
n0=$(ls -d $M/memory* | wc -l)
while true; do
  sleep 1
  n=$(ls -d $M/memory* | wc -l)
  if [ "$n" -gt "$n0" ]; then
    sleep 2
    for d in $M/memory*; do
      [ "$(cat $d/state)" = offline ] && echo online > $d/state
    done
    report
    echo {HOTPLUG_MARKER}
    n0=$(ls -d $M/memory* | wc -l)
  fi
done
"""


def build_initramfs(dest: Path, release: str, root: Path = Path("/"), modules: tuple[str, ...] = ("qemu_fw_cfg",),
                    init: str = INIT_SCRIPT) -> Path:
    """Write a gzip'ed newc initramfs with busybox, ``init`` as /init and ``modules`` (+deps,
    loaded in order by /init) to ``dest``.

    Modules come from ``root``/lib/modules/``release`` (``root`` is a private unpack made by
    setup.sh for kernels of other suites).
    """
    busybox = shutil.which("busybox") or "/bin/busybox"
    bb = Path(busybox).read_bytes()
    if b"ELF" not in bb[:4] or b"ld-linux" in bb[:4096]:
        raise BootError(f"{busybox} does not look like a static busybox (install busybox-static)")
    moddir = root / "lib" / "modules" / release
    mods: list[Path] = []
    for name in modules:
        mods += [m for m in _module_closure(moddir, name) if m not in mods]
    entries: list[tuple[str, int, bytes, int, int]] = [
        (d, 0o040755, b"", 0, 0)
        for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")
    ]
    entries.append(("dev/console", 0o020600, b"", 5, 1))
    entries.append(("bin/busybox", 0o100755, bb, 0, 0))
    entries.append(("bin/sh", 0o120777, b"busybox", 0, 0))
    order = []
    for m in mods:
        fname = re.sub(r"\.ko(\.\w+)?$", ".ko", m.name)
        entries.append((f"lib/modules/{fname}", 0o100644, _read_module(m), 0, 0))
        order.append(fname)
    entries.append(("lib/modules/order", 0o100644, ("\n".join(order) + "\n").encode(), 0, 0))
    entries.append(("init", 0o100755, init.encode(), 0, 0))
    dest.write_bytes(gzip.compress(_cpio_newc(entries), 6))
    return dest


# --------------------------------------------------------------------------- QMP


class QMP:
    """Minimal synchronous QMP client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise BootError(f"cannot connect to QMP socket {path}") from None
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self.events: list[dict] = []
        self._recv()  # greeting
        self.cmd("qmp_capabilities")

    def _recv(self) -> dict:
        line = self.file.readline()
        if not line:
            raise BootError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name: str, **args: object) -> object:
        """Execute a command, collect interleaved events, return its result."""
        msg: dict[str, object] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            resp = self._recv()
            if "event" in resp:
                self.events.append(resp)
                continue
            if "error" in resp:
                raise BootError(f"QMP {name} failed: {resp['error'].get('desc')}")
            return resp.get("return")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def dump(qmp: QMP, path: Path, fmt: str, timeout: float) -> float:
    """Run dump-guest-memory (paging=false) into ``path`` and wait; return seconds taken."""
    if path.exists():
        path.unlink()
    t0 = time.monotonic()
    args: dict[str, object] = {"paging": False, "protocol": f"file:{path}", "detach": True}
    if fmt != "elf":
        args["format"] = fmt
    qmp.cmd("dump-guest-memory", **args)
    while True:
        st = qmp.cmd("query-dump")
        assert isinstance(st, dict)
        if st["status"] == "completed":
            return time.monotonic() - t0
        if st["status"] == "failed":
            raise BootError(f"dump-guest-memory {fmt} to {path} failed")
        if time.monotonic() - t0 > timeout:
            raise BootError(f"dump-guest-memory {fmt} timed out after {timeout:.0f}s")
        time.sleep(1.0)


# --------------------------------------------------------------------------- boot


def qemu_command(case: Case, kernel: Path, initrd: Path, serial: Path, qmp_sock: Path) -> list[str]:
    """The full qemu-system-x86_64 argv for ``case``."""
    cmdline = " ".join(x for x in (COMMON_CMDLINE, case.cmdline) if x)
    return [
        "qemu-system-x86_64",
        "-accel", "tcg",
        *case.qemu_args,
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", cmdline,
        "-display", "none",
        "-nic", "none",
        "-serial", f"file:{serial}",
        "-monitor", "none",
        "-qmp", f"unix:{qmp_sock},server=on,wait=off",
        "-device", "vmcoreinfo",
        "-no-reboot",
    ]


def log(msg: str) -> None:
    """Timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_marker(case: Case, proc: subprocess.Popen, serial: Path, stderr_path: Path, marker: str,
                t0: float, timeout: float) -> None:
    """Wait until ``marker`` is a line of the serial log (error on exit, panic or timeout)."""
    while True:
        if proc.poll() is not None:
            raise BootError(f"{case.name}: qemu exited with {proc.returncode} before {marker} "
                            f"(see {serial}, {stderr_path})")
        text = serial.read_text(errors="replace") if serial.exists() else ""
        if re.search(rf"^{marker}\s*$", text, re.M):
            return
        if "Kernel panic" in text:
            raise BootError(f"{case.name}: kernel panic, see {serial}")
        if time.monotonic() - t0 > timeout:
            raise BootError(f"{case.name}: no {marker} after {timeout:.0f}s, see {serial}")
        time.sleep(0.5)


def run_case(case: Case, out: Path, kernel: Path, initrd: Path, timeout: float) -> dict:
    """Boot ``case``, dump it into ``out/case.name`` and return timing information."""
    cdir = out / case.name
    cdir.mkdir(parents=True, exist_ok=True)
    serial = cdir / "serial.log"
    if serial.exists():
        serial.unlink()
    with tempfile.TemporaryDirectory(prefix="vmemdbg-qmp-") as td:
        sock = Path(td) / "qmp.sock"
        argv = qemu_command(case, kernel, initrd, serial, sock)
        (cdir / "qemu-cmdline.txt").write_text(shlex.join(argv) + "\n")
        log(f"{case.name}: starting qemu")
        t0 = time.monotonic()
        stderr_path = cdir / "qemu-stderr.txt"
        with open(stderr_path, "wb") as errf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
        try:
            deadline = time.monotonic() + 60
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BootError(f"{case.name}: qemu failed to start (see {stderr_path})")
                time.sleep(0.1)
            try:
                qmp = QMP(sock)
            except BootError:
                if proc.poll() is not None:
                    raise BootError(f"{case.name}: qemu exited with {proc.returncode} "
                                    f"(see {stderr_path})") from None
                raise
            wait_marker(case, proc, serial, stderr_path, MARKER, t0, timeout)
            boot_s = time.monotonic() - t0
            res = {"case": case.name, "boot_seconds": round(boot_s, 1)}
            if case.hotplug:
                log(f"{case.name}: ready after {boot_s:.0f}s; hot-adding")
                for name, qargs in case.hotplug:
                    qmp.cmd(name, **qargs)
                wait_marker(case, proc, serial, stderr_path, HOTPLUG_MARKER, t0, timeout)
                res["hotplug_seconds"] = round(time.monotonic() - t0 - boot_s, 1)
            log(f"{case.name}: ready after {time.monotonic() - t0:.0f}s; dumping")
            qmp.cmd("stop")
            res["elf_dump_seconds"] = round(dump(qmp, cdir / "vmcore.elf", "elf", timeout), 1)
            if case.kdump:
                res["kdump_dump_seconds"] = round(
                    dump(qmp, cdir / "vmcore.kdump", "kdump-zlib", timeout), 1
                )
            try:
                qmp.cmd("quit")
            except BootError:
                pass
            qmp.close()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = serial.read_text(errors="replace")
    res["vmcoreinfo_fw_cfg"] = "fw_cfg etc/vmcoreinfo present" in text
    res["cpu_la57"] = "cpu-has-la57" in text
    vmci = read_vmcoreinfo(cdir / "vmcore.elf")
    res["vmcoreinfo_note"] = bool(vmci)
    if not vmci:
        raise BootError(f"{case.name}: no VMCOREINFO note in {cdir / 'vmcore.elf'}")
    for key in ("OSRELEASE", "KERNELOFFSET", "NUMBER(phys_base)", "NUMBER(pgtable_l5_enabled)",
                "SYMBOL(mem_section)", "LENGTH(mem_section)", "SIZE(mem_section)"):
        res.setdefault("vmcoreinfo", {})[key] = vmci.get(key)
    for f in cdir.glob("vmcore.*"):
        f.chmod(0o644)
    for f in sorted(cdir.iterdir()):
        res.setdefault("files", {})[f.name] = f.stat().st_size
    (cdir / "boot-info.json").write_text(json.dumps(res, indent=1) + "\n")
    log(f"{case.name}: done {json.dumps(res)}")
    return res


def read_vmcoreinfo(path: Path) -> dict[str, str]:
    """The VMCOREINFO note of an ELF core as a dict (empty if none), via vmemdbg's pyelftools reader."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from vmemdbg.elfcore import ElfCoreSource
    from vmemdbg.errors import DumpError
    from vmemdbg.vmcoreinfo import VmcoreInfo

    try:
        src = ElfCoreSource(path)
    except DumpError as e:
        raise BootError(str(e)) from None
    try:
        text = src.vmcoreinfo()
    finally:
        src.close()
    return VmcoreInfo(text).entries if text else {}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/work/dumps"), help="output root directory")
    ap.add_argument("--case", action="append", choices=sorted(CASES),
                    help="case to run (repeatable; default: all)")
    ap.add_argument("--release", default=RELEASE, help="kernel release (default %(default)s)")
    ap.add_argument("--kernel", type=Path, help="bzImage (default ROOT/boot/vmlinuz-RELEASE or, for split 7.x "
                                                "packages, ROOT/usr/lib/modules/RELEASE/vmlinuz[.unsigned])")
    ap.add_argument("--root", type=Path, default=Path("/"),
                    help="where the kernel packages are unpacked (setup.sh: /var/tmp/vmemdbg-kernels/RELEASE)")
    ap.add_argument("--jobs", type=int, default=1, help="boots to run in parallel")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per boot and per dump")
    args = ap.parse_args(argv)
    kernel = args.kernel or next(
        (k for k in (args.root / "boot" / f"vmlinuz-{args.release}",
                     args.root / "usr/lib/modules" / args.release / "vmlinuz",
                     args.root / "usr/lib/modules" / args.release / "vmlinuz.unsigned") if k.is_file()),
        args.root / "boot" / f"vmlinuz-{args.release}")
    cases = [CASES[n] for n in (args.case or list(CASES))]
    try:
        if not kernel.is_file():
            raise BootError(f"kernel {kernel} not found (run setup.sh)")
        if not shutil.which("qemu-system-x86_64"):
            raise BootError("qemu-system-x86_64 not found (run setup.sh)")
        args.out.mkdir(parents=True, exist_ok=True)
        initrd = build_initramfs(args.out / "initramfs.cpio.gz", args.release, args.root)
        log(f"initramfs {initrd} ({initrd.stat().st_size} bytes)")
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [ex.submit(run_case, c, args.out, kernel, initrd, args.timeout) for c in cases]
            results = [f.result() for f in futs]
    except (BootError, OSError, subprocess.SubprocessError) as e:
        print(f"boot.py: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
