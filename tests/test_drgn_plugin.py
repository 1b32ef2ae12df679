"""The drgn front end (vmemdbg/drgn_plugin.py) on the committed real-kernel fixtures.

drgn opens each fixture itself (no debug info: the engine decodes the dump's kallsyms); the
plugin's views must equal drgn's truth and its ``vmemdbg`` command must print what the CLI prints.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_dump, real_truth, run_cli
from truthcmp import compare, engine_views

drgn = pytest.importorskip("drgn")
from drgn.commands import (CommandError, CommandNotFoundError, DEFAULT_COMMAND_NAMESPACE,  # noqa: E402
                           run_command)

from vmemdbg import drgn_plugin  # noqa: E402
from vmemdbg.commands import DEBUGGER_COMMANDS  # noqa: E402
from vmemdbg.commands import help_text  # noqa: E402
from vmemdbg.drgn_plugin import DrgnSymbols, kernel_from_prog  # noqa: E402
from vmemdbg.errors import VmemdbgError  # noqa: E402

#: The views that take no ADDR or FILE.
CLI_VIEWS = [n for n in DEBUGGER_COMMANDS if n not in ("explain", "map")]

VMLINUX = Path("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
FULL_DUMP = Path("/work/dumps/base-6.1/6g-2node-kaslr/vmcore.elf")
MACHINES = Path(__file__).resolve().parent.parent / "fixtures" / "machines"

#: Every CLI view, plain and -v, plus --json and explain forms: (view, extra arguments).
COMMANDS = ([(v, []) for v in CLI_VIEWS] + [(v, ["-v"]) for v in CLI_VIEWS]
            + [("vmemmap", ["--json"]), ("sections", ["-v", "--json"]),
               ("explain", ["pfn:0x140000", "0xfffff1d840000040"]), ("explain", ["pfn:0x1000", "--json"])])


def _prog(case: str) -> "drgn.Program":
    prog = drgn.Program()
    prog.set_core_dump(str(real_dump(case)))
    return prog


def _cli(view: str, case: str, extra: list[str]) -> str:
    return run_cli(view, real_dump(case), *extra, check=True).stdout


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
    with pytest.raises(CommandError, match=r"^unrecognized arguments: 0x1000$"):
        run_command(prog, "vmemdbg summary 0x1000")
    with pytest.raises(CommandError, match=r"^the following arguments are required: ADDR$"):
        run_command(prog, "vmemdbg explain")
    with pytest.raises(CommandError, match=r"^0xdead000000000000 is not a pfn"):
        run_command(prog, "vmemdbg explain 0xdead000000000000")
    with pytest.raises(CommandError, match=r"^unknown view 'bogus' \(choose from summary, sections, "):
        run_command(prog, "vmemdbg bogus")


def test_command_is_only_enabled_for_kernels() -> None:
    """linux_kernel_command: the command exists for a kernel program only."""
    assert DEFAULT_COMMAND_NAMESPACE.lookup(_prog("1000m"), "vmemdbg")
    with pytest.raises(CommandNotFoundError):
        DEFAULT_COMMAND_NAMESPACE.lookup(drgn.Program(drgn.host_platform), "vmemdbg")


def _drgn_exe() -> str:
    """The drgn installed beside this Python (where vmemdbg's entry point is), before any on PATH."""
    local = Path(sys.executable).with_name("drgn")
    exe = str(local) if local.exists() else (shutil.which("drgn") or str(local))
    if not Path(exe).exists():
        pytest.skip("drgn CLI not installed")
    return exe


def test_drgn_cli_loads_the_plugin() -> None:
    """The real ``drgn`` CLI, no debug info: the command exists only if drgn loaded the entry point."""
    code = 'from drgn.commands import run_command; run_command(prog, "vmemdbg vmemmap")'
    res = subprocess.run([_drgn_exe(), "-q", "--no-default-symbols", "-c", str(real_dump("1000m")), "-e", code],
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


def _interactive(dump: Path, lines: list[str], *extra: str) -> list[str]:
    """The lines a user sees typing ``lines`` at the prompt of a real interactive ``drgn`` (in a
    pseudo-terminal: drgn runs piped stdin as a script)."""
    script = shutil.which("script")
    if script is None:
        pytest.skip("needs script(1) for a pseudo-terminal")
    cmd = " ".join([_drgn_exe(), "-q", *extra, "-c", str(dump)])
    feed = "".join(f"{line}\n" for line in [*lines, "exit()"])
    res = subprocess.run([script, "-qefc", cmd, "/dev/null"], input=feed, capture_output=True, text=True, timeout=300)
    out = res.stdout.replace("\r\n", "\n").splitlines()
    return out[out.index(f">>> {lines[0]}"):]


def test_help_and_an_error_line_at_the_drgn_prompt() -> None:
    """``%vmemdbg -h`` lists the views, ``%vmemdbg VIEW -h`` prints the view's own help, and a
    mistake prints one line (real drgn, interactive)."""
    lines = ["%vmemdbg -h", "%vmemdbg", *(f"%vmemdbg {v} -h" for v in DEBUGGER_COMMANDS), "%vmemdbg summary 0x1000",
             "%vmemdbg bogus", "%vmemdbg explain 0xdead000000000000"]
    out = _interactive(real_dump("1000m"), lines, "--no-default-symbols")
    blocks: dict[str, list[str]] = {}
    for line in out:
        if line.startswith(">>> "):
            blocks[line[4:]] = []
        else:
            blocks[list(blocks)[-1]].append(line)
    overview = blocks["%vmemdbg -h"]
    assert overview[0] == "usage: %vmemdbg VIEW [ARGS...]"
    for name, command in DEBUGGER_COMMANDS.items():
        assert any(line.split() == [name, *command.help.split()] for line in overview), name
        own = blocks[f"%vmemdbg {name} -h"]
        assert own[0].startswith(f"usage: %vmemdbg {name} [--json] [-v]")
        assert "\n".join(own) == help_text(command, f"%vmemdbg {name}")
    assert blocks["%vmemdbg"] == overview
    assert "  --nr A[-B]     only section numbers A to B (e.g. 32-47)" in blocks["%vmemdbg sections -h"]
    assert any("pfn:N (a page frame number)" in line for line in blocks["%vmemdbg explain -h"])
    assert blocks["%vmemdbg summary 0x1000"] == ["drgn: error: unrecognized arguments: 0x1000"]
    assert blocks["%vmemdbg bogus"] == ["drgn: error: unknown view 'bogus' (choose from summary, sections, vmemmap, "
                                        "memblock, e820, memory-blocks, audit, describe, check, explain, map)"]
    assert blocks["%vmemdbg explain 0xdead000000000000"] == [
        "drgn: error: 0xdead000000000000 is not a pfn, physical, direct-map or vmemmap address of this kernel"]


def test_every_debugger_command_has_an_api_function() -> None:
    assert list(drgn_plugin.API) == list(DEBUGGER_COMMANDS)
    for name, function in drgn_plugin.API.items():
        assert getattr(drgn_plugin, function.__name__) is function, name
        assert function.__name__ in drgn_plugin.__all__


#: API call -> the CLI arguments printing the same document as JSON.
API_CALLS = {"summary": ((), ["summary"]), "sections": (((2, 5),), ["sections", "--nr", "2-5"]),
             "vmemmap": ((), ["vmemmap"]), "memblock": ((), ["memblock"]), "e820": ((), ["e820"]),
             "memory-blocks": ((), ["memory-blocks"]), "audit": ((), ["audit"]), "describe": ((), ["describe"]),
             "check": ((), ["check"]), "explain": (("pfn:0x1000",), ["explain", "pfn:0x1000"])}


def test_api_functions_return_the_cli_json() -> None:
    """Each API function, called in a real ``drgn`` process, returns the document ``vmemdbg VIEW
    --json`` prints (the CLI in-process: the dump opened as a file, not through drgn)."""
    from vmemdbg.commands import COMMANDS, output, parser
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel

    code = ("import json; from vmemdbg import drgn_plugin as v; from vmemdbg.jsonout import dumps; "
            f"print(json.dumps({{n: dumps(v.API[n](prog, *a)) for n, (a, _) in {API_CALLS!r}.items()}}))")
    res = subprocess.run([_drgn_exe(), "-q", "--no-default-symbols", "-c", str(real_dump("1000m")), "-e", code],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    api = json.loads(res.stdout)
    src = open_dump(real_dump("1000m"))
    try:
        kernel = Kernel(src)
        for name, (_, argv) in API_CALLS.items():
            command = COMMANDS[argv[0]]
            assert api[name] == output(kernel, command, parser(command, argv[0]).parse_args([*argv[1:], "--json"])), name
    finally:
        src.close()
    assert [s["nr"] for s in json.loads(api["sections"])["sections"]] == [2, 3, 4, 5]


def test_api_write_map(tmp_path: Path) -> None:
    doc = drgn_plugin.write_map(_prog("1000m"), str(tmp_path / "m.svg"))
    assert doc["output"] == str(tmp_path / "m.svg") and (tmp_path / "m.svg").stat().st_size == doc["bytes"] > 1000


def test_objects_need_debug_info() -> None:
    with pytest.raises(VmemdbgError, match=r"^struct page objects need the kernel's debug info"):
        drgn_plugin.page_object(_prog("1000m"), "pfn:0x1000")


@pytest.fixture(scope="module")
def simulated_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated machine (2 nodes, 8 GiB): its vmcore and the simulator's DWARF for it."""
    from vmemdbg.sim import simulate

    d = tmp_path_factory.mktemp("sim")
    simulate(MACHINES / "q35-2node-8g.toml", d / "core.elf", debuginfo=d / "core.debug")
    return d / "core.elf", d / "core.debug"


@pytest.fixture(scope="module")
def simulated(simulated_files: tuple[Path, Path]) -> "drgn.Program":
    """The simulated machine opened with its DWARF."""
    prog = drgn.Program()
    prog.set_core_dump(str(simulated_files[0]))
    prog.load_debug_info([str(simulated_files[1])])
    return prog


def _objects_agree_with_drgn(prog: "drgn.Program", pfns: list[int]) -> None:
    """The API's objects against drgn's own helpers."""
    from drgn.helpers.linux.mm import follow_phys, pfn_to_page
    from drgn.helpers.linux.mmzone import for_each_present_section, nr_to_section

    want = [(nr, sec) for nr, sec in for_each_present_section(prog)]
    got = list(drgn_plugin.section_objects(prog))
    assert [(nr, s.type_.type_name(), s.value_()) for nr, s in got] == [
        (nr, "struct mem_section *", s.value_()) for nr, s in want]
    usage = list(drgn_plugin.usage_objects(prog))
    assert [(nr, u.type_.type_name(), u.value_()) for nr, u in usage] == [
        (nr, "struct mem_section_usage *", s.usage.value_()) for nr, s in want]
    mm = prog["init_mm"].address_of_()
    for pfn in pfns:
        page = drgn_plugin.page_object(prog, f"pfn:{pfn:#x}")
        assert page.type_.type_name() == "struct page *" and page.value_() == pfn_to_page(prog, pfn).value_()
        objs = drgn_plugin.explain_objects(prog, f"phys:{pfn << 12:#x}")
        assert objs["page"].value_() == page.value_()
        section = nr_to_section(prog, pfn >> 15)
        assert objs["section"].value_() == section.value_() and objs["usage"].value_() == section.usage.value_()
        frame = follow_phys(mm, page.value_()).value_() >> 12
        assert objs["memmap_page"].value_() == pfn_to_page(prog, frame).value_()


def test_objects_with_the_simulators_debug_info(simulated: "drgn.Program") -> None:
    assert isinstance(kernel_from_prog(simulated)._user_symbols, DrgnSymbols)
    _objects_agree_with_drgn(simulated, [0x1000, 0x140000, 0x23ffff])
    absent = drgn_plugin.explain_objects(simulated, "pfn:0x7000000")
    assert absent["section"] is None and absent["usage"] is None and absent["memmap_page"] is None


@pytest.mark.skipif(not (VMLINUX.exists() and FULL_DUMP.exists()), reason="needs the -dbg vmlinux and the full dump")
def test_objects_with_the_real_debug_info() -> None:
    """The full dump (the committed minimal one lacks the page tables drgn's follow_phys walks)."""
    prog = drgn.Program()
    prog.set_core_dump(str(FULL_DUMP))
    try:
        prog.load_debug_info([str(VMLINUX)])
    except drgn.MissingDebugInfoError:
        pass  # modules are not in the dump; vmlinux itself is loaded
    _objects_agree_with_drgn(prog, [0x1000, 0x140000, 0x17ffff])


def test_objects_in_a_drgn_process(simulated_files: tuple[Path, Path]) -> None:
    """The object API in a real ``drgn -c CORE -s DEBUG`` process, against drgn's helpers there."""
    core, debug = simulated_files
    code = ("from vmemdbg import drgn_plugin as v; "
            "print(v.page_object(prog, 'pfn:0x140000').value_() == pfn_to_page(prog, 0x140000).value_(), "
            "[(n, s.value_()) for n, s in v.section_objects(prog)] == "
            "[(n, s.value_()) for n, s in for_each_present_section(prog)], "
            "v.explain_objects(prog, 'pfn:0x1000')['usage'].type_)")
    res = subprocess.run([_drgn_exe(), "-q", "-c", str(core), "-s", str(debug), "-e", code],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "struct", "mem_section_usage", "*"]
