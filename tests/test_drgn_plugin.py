"""The drgn front end (vmemdbg/drgn_plugin.py) on the committed real-kernel fixtures.

drgn opens each fixture itself (no debug info: the engine decodes the dump's kallsyms); the
plugin's views must equal drgn's truth and its ``vmemdbg`` command must print what the CLI prints.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_dump, real_truth
from truthcmp import compare, engine_views

drgn = pytest.importorskip("drgn")
from drgn.commands import CommandError, DEFAULT_COMMAND_NAMESPACE, run_command  # noqa: E402

from vmemdbg import drgn_plugin  # noqa: E402
from vmemdbg.frontend import VIEWS as CLI_VIEWS  # noqa: E402
from vmemdbg.drgn_plugin import DrgnSymbols, kernel_from_prog  # noqa: E402

VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")

#: Every CLI view, plain and -v, plus --json and explain forms: (view, extra arguments).
COMMANDS = ([(v, []) for v in CLI_VIEWS] + [(v, ["-v"]) for v in CLI_VIEWS]
            + [("vmemmap", ["--json"]), ("sections", ["-v", "--json"]),
               ("explain", ["pfn:0x140000", "0xfffff1d840000040"]), ("explain", ["pfn:0x1000", "--json"])])


def _prog(case: str) -> "drgn.Program":
    prog = drgn.Program()
    prog.set_core_dump(str(real_dump(case)))
    return prog


def _cli(view: str, case: str, extra: list[str]) -> str:
    return subprocess.run([sys.executable, "-m", "vmemdbg", view, str(real_dump(case)), *extra],
                          capture_output=True, text=True, check=True).stdout


def test_entry_point_is_installed() -> None:
    """drgn finds plugins through this entry point (needs ``pip install -e .``)."""
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="drgn.plugins")}
    assert eps.get("vmemdbg") == "vmemdbg.drgn_plugin"


def test_api_views_equal_drgn_truth(real_case: str) -> None:
    truth = real_truth(real_case)
    prog = _prog(real_case)
    kernel = kernel_from_prog(prog)
    assert kernel._user_symbols is None, "without debug info the engine must use the dump's kallsyms"
    assert compare(engine_views(kernel, truth), truth) == []
    assert drgn_plugin.vmemmap(prog)["vmemmap_base"] == truth["summary"]["kernel"]["vmemmap_base"]
    runs = [{k: r[k] for k in ("start", "end", "level", "phys", "nid")} for r in drgn_plugin.vmemmap(prog)["runs"]]
    assert runs == [{k: r[k] for k in ("start", "end", "level", "phys", "nid")} for r in truth["vmemmap_pages"]["runs"]]
    secs = drgn_plugin.sections(prog)["sections"]
    assert [(s["nr"], s["flags"]) for s in secs] == [(s["nr"], s["flags"]) for s in truth["sections"]]
    assert drgn_plugin.summary(prog)["counts"] == truth["summary"]["counts"]
    first = truth["explain"][0]
    assert drgn_plugin.explain(prog, first["input"])["page_phys"] == first["page_phys"]


def test_kernel_is_cached_per_program() -> None:
    prog = _prog("1000m")
    kernel = kernel_from_prog(prog)
    assert kernel_from_prog(prog) is kernel
    assert prog.cache[drgn_plugin.CACHE_KEY] is kernel
    assert kernel_from_prog(_prog("1000m")) is not kernel


@pytest.mark.parametrize("view,extra", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_command_prints_what_the_cli_prints(view: str, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    prog = _prog("6g-2node-kaslr")
    run_command(prog, " ".join(["vmemdbg", view, *extra]))
    out = capsys.readouterr().out
    assert out == _cli(view, "6g-2node-kaslr", extra)
    assert out.strip()


def test_command_errors_are_one_line() -> None:
    prog = _prog("1000m")
    with pytest.raises(CommandError, match=r"^summary takes no ADDR \(got 0x1000\)$"):
        run_command(prog, "vmemdbg summary 0x1000")
    with pytest.raises(CommandError, match=r"^explain needs at least one ADDR$"):
        run_command(prog, "vmemdbg explain")
    with pytest.raises(CommandError, match=r"^0xdead000000000000 is not a pfn"):
        run_command(prog, "vmemdbg explain 0xdead000000000000")


def test_command_is_only_enabled_for_kernels() -> None:
    prog = drgn.Program()
    prog.set_core_dump(str(real_dump("1000m")))
    assert DEFAULT_COMMAND_NAMESPACE.lookup(prog, "vmemdbg")
    assert not drgn_plugin._is_kernel(drgn.Program(drgn.host_platform))


def test_drgn_cli_loads_the_plugin() -> None:
    """The real ``drgn`` CLI, no debug info: the command exists only if drgn loaded the entry point."""
    # the drgn installed beside this Python (where vmemdbg's entry point is), before any on PATH
    local = Path(sys.executable).with_name("drgn")
    exe = str(local) if local.exists() else (shutil.which("drgn") or str(local))
    if not Path(exe).exists():
        pytest.skip("drgn CLI not installed")
    code = 'from drgn.commands import run_command; run_command(prog, "vmemdbg vmemmap")'
    res = subprocess.run([exe, "-q", "--no-default-symbols", "-c", str(real_dump("1000m")), "-e", code],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == _cli("vmemmap", "1000m", [])
    assert "0xffd4000000000000  0xffd4000001000000  PMD" in res.stdout


@pytest.mark.skipif(not VMLINUX.exists(), reason="needs the -dbg vmlinux (not on CI)")
def test_with_debug_info_symbols_come_from_drgn() -> None:
    truth = real_truth("6g-2node-kaslr")
    prog = _prog("6g-2node-kaslr")
    try:
        prog.load_debug_info([str(VMLINUX)])
    except drgn.MissingDebugInfoError:
        pass  # modules are not in the minimal dump; vmlinux itself is loaded
    kernel = kernel_from_prog(prog)
    assert isinstance(kernel._user_symbols, DrgnSymbols)
    assert kernel.symbol("page_offset_base") == prog.symbol("page_offset_base").address
    assert compare(engine_views(kernel, truth), truth) == []
