"""Malformed machine descriptions raise MachineError naming the field; the CLI prints one line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vmemdbg.cli import main
from vmemdbg.sim.machine import MachineError
from vmemdbg.sim.machine_format import machine_from_dict

BASE = Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "q35-2node-8g.toml"


def _base() -> dict:
    return tomllib.loads(BASE.read_text())


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["e820"].append("0x0000000000090000-0x00000000000a0fff usable"), "e820"),
    (lambda d: d["e820"].append("0x0000400000000000-0x0000400fffffffff usable"), "e820[10]"),
    (lambda d: d["e820"].__setitem__(0, "0x0-0x9fbff bogus"), "e820[0]"),
    (lambda d: d["node"][1].__setitem__("ranges", ["0x180000800-0x27fffffff"]), "node[1].ranges[0]"),
    (lambda d: d["node"][1].__setitem__("ranges", ["0x300000000000-0x3000ffffffff"]), "node[1].ranges"),
    (lambda d: d["node"][1].__setitem__("ranges", ["0x170000000-0x27fffffff"]), "node"),
    (lambda d: d["node"][1].__setitem__("ranges", ["0x1c0000000-0x27fffffff"]), "node"),
    (lambda d: d["node"][1].__setitem__("id", 0), "node[1].id"),
    (lambda d: d["node"][1].__setitem__("id", 4096), "node[1].id"),
    (lambda d: d["kernel"].__setitem__("paging_levels", 3), "kernel.paging_levels"),
    (lambda d: d["kernel"].__setitem__("mem_section_size", 24), "kernel.mem_section_size"),
    (lambda d: d["kernel"].__setitem__("profile", "rhel-9"), "kernel.profile"),
    (lambda d: d["kernel"].__setitem__("usage_rcu_head", "yes"), "kernel.usage_rcu_head"),
    (lambda d: d["layout"].__setitem__("image", "0x1100000-0x4410fff"), "layout.image"),
    (lambda d: d["layout"].__setitem__("vmemmap_base", "0xffffea0000100000"), "layout.vmemmap_base"),
    (lambda d: d["layout"].pop("image"), "layout.image"),
    (lambda d: d.__setitem__("reserve", [{"range": "0x100-0x50"}]), "reserve[0].range"),
    (lambda d: d.__setitem__("alloc", [{"size": "1M", "align": 3}]), "alloc[0].align"),
    (lambda d: d.__setitem__("bogus", 1), "machine"),
])
def test_bad_field_named(mutate, field):
    d = _base()
    mutate(d)
    with pytest.raises(MachineError) as ei:
        machine_from_dict(d)
    assert str(ei.value).startswith(field + ":") or str(ei.value).startswith(field + " "), str(ei.value)


def test_cli_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.read_text().replace('ranges = ["0x180000000-0x27fffffff"]',
                                            'ranges = ["0x180000800-0x27fffffff"]'))
    assert main(["simulate", str(bad), "-o", str(tmp_path / "x.elf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "node[1].ranges[0]" in err[0]
    assert not (tmp_path / "x.elf").exists()


def test_cli_toml_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("e820 = [\n")
    assert main(["simulate", str(bad), "-o", str(tmp_path / "x.elf")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("kernel, message", [
    # a release of a series without rules: one line naming the supported series
    ({"release": "6.6.87-amd64"}, "kernel.release: '6.6.87-amd64' (series 6.6) has no simulator profile; "
                                  "supported: 6.1, 6.12"),
    # a 6.12 release on a 6.1 profile is not replayed with the 6.1 rules
    ({"profile": "debian-6.1-cloud", "release": "6.12.107+deb12-cloud-amd64"},
     "kernel.release: '6.12.107+deb12-cloud-amd64' is a 6.12 kernel but profile 'debian-6.1-cloud' replays "
     "6.1; pick a 6.12 profile (debian-6.12-cloud)"),
    ({"version": "5.10"}, "kernel.version: no simulator profile for '5.10'; supported: 6.1, 6.12"),
])
def test_unsupported_kernel_refused(kernel, message):
    d = _base()
    d["kernel"].update(kernel)
    with pytest.raises(MachineError) as ei:
        machine_from_dict(d)
    assert str(ei.value) == message


def test_release_selects_nothing_silently():
    """A 6.12 release on the 6.12 profile replays the 6.12 rules (NODE_DATA cache-line sized)."""
    d = _base()
    d["kernel"].update({"profile": "debian-6.12-cloud", "release": "6.12.57"})
    p = machine_from_dict(d).profile
    assert (p.version, p.nd_size, p.release) == ("6.12", 174464, "6.12.57")
