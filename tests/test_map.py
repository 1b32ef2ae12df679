"""``vmemdbg map``: the SVG's marks against drgn's truth of the real boots, provenance and check
highlighting on edited view documents, and the interactive page in Debian's headless Chromium
(no console error; hovering a section shows that section's numbers from the engine)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL, REAL_CASES, ROOT, real_dump, real_truth, run_cli, shared_kernel

from vmemdbg import jsonout, views
from vmemdbg.cli import main
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.map import map_docs, render_html
from vmemdbg.map.draw import draw
from vmemdbg.map.model import _encode_groups, affine_groups, build_model

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = "/usr/bin/chromium"
SIX = "6g-2node-kaslr"


def _kernel(dump: Path) -> Kernel:
    """The session's kernel of a committed fixture (read only), or a kernel of its own for another dump."""
    path = Path(dump)
    return shared_kernel(str(path.parent.relative_to(REAL))) if path.is_relative_to(REAL) else Kernel(open_dump(dump))


def _track(root: ET.Element, track: str) -> list[ET.Element]:
    """The rect marks of one track of a parsed map."""
    g = root.find(f".//{SVG}g[@id='track-{track}']")
    assert g is not None, track
    return g.findall(f".//{SVG}rect")


def _title(el: ET.Element) -> str:
    return el.find(f"{SVG}title").text


def _truth_runs(truth: dict) -> list[tuple[int, int, int]]:
    """(first nr, last nr, nid) of each present-section run, from drgn's sections."""
    runs: list[list[int]] = []
    for s in truth["sections"]:
        if runs and s["nr"] == runs[-1][1] + 1 and s["nid"] == runs[-1][2]:
            runs[-1][1] = s["nr"]
        else:
            runs.append([s["nr"], s["nr"], s["nid"]])
    return [tuple(r) for r in runs]


@pytest.mark.parametrize("case", REAL_CASES)
def test_svg_marks_match_drgn_truth(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One mark per present-section run, per node, per reserved region, per e820 entry."""
    out = tmp_path / "map.svg"
    assert main(["map", str(real_dump(case)), "-o", str(out)]) == 0
    truth = real_truth(case)
    runs = _truth_runs(truth)
    assert capsys.readouterr().out.startswith(f"wrote {out}: ")
    root = ET.parse(out).getroot()  # valid XML
    assert root.tag == f"{SVG}svg"
    secs = _track(root, "sections")
    assert [_title(r).split(":")[0] for r in secs] == \
        [f"sections {a}-{b} ({b - a + 1}), node {nid}, boot" for a, b, nid in runs]
    assert len(_track(root, "nodes")) == len(truth["nodes"])
    assert [_title(r).split(":")[0] for r in _track(root, "nodes")] == [f"node {n['nid']}" for n in truth["nodes"]]
    assert len(_track(root, "reserved")) == truth["memblock"]["reserved"]["cnt"]
    assert len(_track(root, "e820")) == len(truth["e820"])
    if case == SIX:
        assert runs == [(0, 15, 0), (32, 39, 0), (40, 63, 1)]
        assert len(_track(root, "reserved")) == 48
        # memmap frames: node 0's boot buffer at 0x13ce00000 (sections 0-15, then 32-39 after the VA
        # hole of the 2-4 GiB PCI hole) and node 1's at 0x1fce00000 (the vmemmap runs of drgn's truth)
        frames = [_title(r) for r in _track(root, "memmap")]
        assert [f.split("backed by ")[1].split(",")[0] for f in frames] == \
            [f"node {r['nid']} at {r['phys']:#x}-{r['phys'] + r['end'] - r['start'] - 1:#x}"
             for r in truth["vmemmap_pages"]["runs"]] == \
            ["node 0 at 0x13ce00000-0x13edfffff", "node 0 at 0x13ee00000-0x13fdfffff", "node 1 at 0x1fce00000-0x1ffdfffff"]
        links = root.findall(f".//{SVG}g[@id='links']/{SVG}path")
        assert len(links) == 3 and all(p.get("class") == "link" for p in links)  # no off-node memmap


def _decode(groups: list, first: int, ncols: int) -> list[list[int]]:
    """Rows of affine groups (the page's BigInt decoding, in Python)."""
    rows = []
    for g in groups:
        for k in range(g[0]):
            rows.append([(int(g[first + 2 * c], 16) + k * int(g[first + 2 * c + 1], 16)) & ((1 << 64) - 1)
                         for c in range(ncols)])
    return rows


def test_page_data_decodes_to_every_section_and_run() -> None:
    kernel = _kernel(real_dump(SIX))
    docs = map_docs(kernel)
    model = build_model(docs)
    secs = docs["sections"]["sections"]
    rows = _decode(model.data["sections"]["groups"], 5, 6)
    assert rows == [[s["nr"], s["section"], s["coded_mem_map"], s["mem_map"], s["usage"], s["subsection_map"]]
                    for s in secs]
    base = docs["summary"]["kernel"]["vmemmap_base"]
    runs = docs["vmemmap"]["runs"]
    assert _decode(model.data["memmap"]["groups"], 5, 5) == \
        [[r["start"] - base, r["end"] - r["start"], r["phys"], r["start_pfn"], r["end_pfn"]] for r in runs]


def test_affine_groups_split_where_a_step_changes() -> None:
    col = np.array([0, 1, 2, 10, 11, 12, 20, 21], dtype=np.uint64)
    cat = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    starts, ends = affine_groups([col], [cat])
    # a changed step starts a group, and the row after it too (its step is not the new group's yet)
    assert list(zip(starts.tolist(), ends.tolist())) == [(0, 3), (3, 4), (4, 6), (6, 8)]
    wrap = np.array([2**64 - 2, 2**64 - 1, 0, 1, 7, 8], dtype=np.uint64)  # wraps inside the first group
    starts, ends = affine_groups([wrap], [np.zeros(6)])
    assert list(zip(starts.tolist(), ends.tolist())) == [(0, 4), (4, 5), (5, 6)]
    groups = [[e - s, *row] for s, e, row in zip(starts.tolist(), ends.tolist(), _encode_groups([wrap], starts, ends))]
    assert _decode(groups, 1, 1) == [[int(v)] for v in wrap]


def _svg(docs: dict, check: dict | None = None) -> ET.Element:
    return ET.fromstring(draw(build_model(docs, check)).as_svg())


def test_provenance_colours_and_hvo() -> None:
    """Non-early sections are hot-added, a run's provenance marks self-hosted memmap, PTE RO is HVO."""
    docs = copy.deepcopy(map_docs(_kernel(real_dump(SIX))))
    for s in docs["sections"]["sections"]:
        if 36 <= s["nr"] <= 39:
            s["flags"] = [f for f in s["flags"] if f != "IS_EARLY"]
    runs = docs["vmemmap"]["runs"]
    runs[2]["provenance"] = "self_hosted"          # node 1's memmap: sections 40-63
    runs[1].update(level="pte", writable=False, provenance="hvo")  # pfn 0x100000-0x140000: HVO's read-only PTEs
    root = _svg(docs)
    assert [(r.get("class"), _title(r).split(":")[0]) for r in _track(root, "sections")] == [
        ("section-run prov-boot", "sections 0-15 (16), node 0, boot"),
        ("section-run prov-boot", "sections 32-35 (4), node 0, boot"),
        ("section-run prov-hotplug", "sections 36-39 (4), node 0, hotplug"),
        ("section-run prov-self_hosted", "sections 40-63 (24), node 1, self_hosted")]
    vclasses = [r.get("class") for r in _track(root, "vmemmap")]
    assert vclasses == ["vrun level-pmd rw", "vrun level-pte ro hvo", "vrun level-pmd rw"]


@pytest.mark.parametrize("case, provenance", [("6.1-memmap-on-memory", "self_hosted"), ("6.1-hotplug", "hotplug"),
                                             ("6.12-memmap-on-memory", "self_hosted"), ("6.12-hotplug", "hotplug")])
def test_hot_added_sections_coloured_as_drgn_says(case: str, provenance: str) -> None:
    """On the real hot-add fixtures the sections drgn sees without SECTION_IS_EARLY are drawn hot-added
    or self-hosted (memmap_on_memory), exactly those, and the other present sections boot."""
    truth = real_truth(case)
    hot = sorted(s["nr"] for s in truth["sections"] if "IS_EARLY" not in s["flags"])
    assert hot, "the fixture has hot-added sections"
    drawn = {}
    for m in _track(_svg(map_docs(_kernel(real_dump(case)))), "sections"):
        title = _title(m).split(":")[0]          # "sections A-B (n), node N, provenance"
        a, b = title.split()[1].split("-") if "-" in title.split()[1] else (title.split()[1], title.split()[1])
        for nr in range(int(a), int(b) + 1):
            drawn[nr] = m.get("class").removeprefix("section-run prov-")
    assert sorted(drawn) == sorted(s["nr"] for s in truth["sections"])
    assert sorted(nr for nr, p in drawn.items() if p != "boot") == hot
    assert {drawn[nr] for nr in hot} == {provenance}

def test_offnode_memmap_of_a_simulated_machine(tmp_path: Path) -> None:
    """fixtures/machines/offnode-tiny-node1.toml: node 1 owns 2 MiB, so its memmap (section 48,
    pfn 0x180000-0x188000) is allocated on node 0. Exactly that memmap is drawn off-node, where
    the census audit reports it."""
    elf = tmp_path / "off.elf"
    assert main(["simulate", str(ROOT / "fixtures" / "machines" / "offnode-tiny-node1.toml"), "-o", str(elf)]) == 0
    out = tmp_path / "off.svg"
    assert main(["map", str(elf), "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    off = [_title(r) for r in _track(root, "memmap") if "offnode" in r.get("class")]
    assert off == ["memmap run: PMD RW, backed by node 0 at 0x17bc00000-0x17bdfffff, describes pfn 0x180000-0x188000 (off-node)"]
    audit = [a for a in views.vmemmap(_kernel(elf))["audit"] if a["kind"] == "offnode"]
    assert [a["detail"].split("(pfn ")[1].split(")")[0] for a in audit] == ["0x180000-0x188000"]
    assert [p.get("class") for p in root.findall(f".//{SVG}g[@id='links']/{SVG}path")].count("link offnode") == 1
    assert [_title(r).split(":")[0] for r in _track(root, "sections")] == \
        ["sections 0-15 (16), node 0, boot", "sections 32-47 (16), node 0, boot", "sections 48-48 (1), node 1, boot"]


def test_offnode_memmap_is_drawn_red() -> None:
    docs = copy.deepcopy(map_docs(_kernel(real_dump(SIX))))
    docs["vmemmap"]["runs"][2]["nid"] = 0  # node 1's sections described by node-0 memory
    root = _svg(docs)
    assert [p.get("class") for p in root.findall(f".//{SVG}g[@id='links']/{SVG}path")] == ["link", "link", "link offnode"]
    assert "(off-node)" in _title(_track(root, "memmap")[2])


CHECK = {"schema": "vmemdbg/1", "command": "check", "consistent": False, "differences": [
    {"kind": "memmap_phys", "explained": False, "mechanism": None, "text": "section 40 memmap moved",
     "va": [0xfffff1d845000000, 0xfffff1d845200000], "phys": None, "section": 40},
    {"kind": "reserved", "explained": True, "mechanism": "crashkernel", "text": "64 MiB reserved late",
     "va": None, "phys": [0x7bed1000, 0x7fed1000], "section": None},
    {"kind": "section_flags", "explained": False, "mechanism": None, "text": "section 3 flags differ",
     "va": None, "phys": None, "section": 3},
    {"kind": "direct_map", "explained": False, "mechanism": None, "text": "a direct-map page",
     "va": [0xffff8ce100000000, 0xffff8ce100001000], "phys": None, "section": None}]}


@pytest.mark.parametrize("schema", ["vmemdbg/1", "vmemdbg/2"])
def test_check_differences_are_marked_where_they_are(schema: str, tmp_path: Path) -> None:
    """The check file as either schema wrote it: addresses as integers (/1) or "0x…" strings (/2)."""
    check = tmp_path / "check.json"
    check.write_text(json.dumps(CHECK) if schema == "vmemdbg/1" else jsonout.dumps({**CHECK, "schema": schema}))
    assert ('"0x7bed1000"' in check.read_text()) == (schema == "vmemdbg/2")
    out = tmp_path / "map.svg"
    assert main(["map", str(real_dump(SIX)), "-o", str(out), "--check", str(check)]) == 0
    root = ET.parse(out).getroot()
    texts = root.findall(f".//{SVG}g[@id='findings']/{SVG}a/{SVG}text")
    assert [t.get("id") for t in texts] == [f"finding-{i}" for i in range(5)]
    assert texts[4].text == ("4. check direct_map: a direct-map page (va 0xffff8ce100000000-0xffff8ce100001000 "
                             "is outside the vmemmap: not placed) [unexplained]")
    assert texts[0].text.startswith("0. audit hole_mapped: section 0:")
    assert texts[2].text == "2. check reserved: 64 MiB reserved late [explained: crashkernel]"
    assert texts[3].text == "3. check section_flags: section 3 flags differ [unexplained]"
    model = build_model(map_docs(_kernel(real_dump(SIX))), CHECK)
    where: dict[str, list] = {}
    for a in root.iter(f"{SVG}a"):
        rect = a.find(f"{SVG}rect")
        if rect is not None:
            where.setdefault(a.get("href"), []).append((rect.get("data-track"), float(rect.get("data-x0"))))
    # difference 1 (va of section 40's memmap) is on both axes; 2 at its phys; 3 at section 3
    assert sorted(t for t, _ in where["#finding-1"]) == ["pfindings", "vfindings"]
    px = dict(where["#finding-1"])["pfindings"]
    assert px == pytest.approx(float(model.phys.at([40 << 27])[0]), abs=1e-3)
    assert where["#finding-2"] == [("pfindings", pytest.approx(float(model.phys.at([0x7bed1000])[0]), abs=1e-3))]
    assert where["#finding-3"] == [("pfindings", pytest.approx(float(model.phys.at([3 << 27])[0]), abs=1e-3))]
    ids = {a.get("id") for a in root.iter(f"{SVG}a") if a.get("id")}
    assert ids == {f"mark-finding-{i}" for i in range(4)}
    assert [a.get("href") for a in root.findall(f".//{SVG}g[@id='findings']/{SVG}a")] == \
        [f"#mark-finding-{i}" for i in range(4)] + ["#finding-4"]  # each text links to its mark, each mark to its text
    assert "#finding-4" not in where  # not placed anywhere, and the vmemmap axis is not stretched for it
    assert model.virt.addr[0] == 0 and model.virt.addr[-1] == 0x8000000


@pytest.mark.parametrize("content,message", [
    ("{not json", "not JSON"),
    (json.dumps({"command": "audit"}), "not the JSON of `vmemdbg check --json`"),
    (json.dumps({"command": "check", "differences": [{"text": "x", "va": [5, 1]}]}),
     "differences[0].va must be [start, end] addresses or null"),
    (json.dumps({"command": "check", "differences": [{"text": "x", "phys": ["0x1000", "zz"]}]}),
     "differences[0].phys must be [start, end] addresses or null"),
])
def test_bad_check_file_is_one_line(content: str, message: str, tmp_path: Path) -> None:
    check = tmp_path / "check.json"
    check.write_text(content)
    res = run_cli("map", real_dump("1000m"), "-o", tmp_path / "m.html", "--check", check)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and message in res.stderr and res.stderr.startswith("vmemdbg: error: ")
    assert not (tmp_path / "m.html").exists()


def test_bad_output_is_one_line(tmp_path: Path) -> None:
    res = run_cli("map", real_dump("1000m"), "-o", tmp_path / "m.png")
    assert (res.returncode, res.stderr) == (2, f"vmemdbg: error: map: {tmp_path / 'm.png'}: the output must end in .html or .svg\n")


def test_html_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "map.html"
    assert main(["map", str(real_dump(SIX)), "-o", str(out)]) == 0
    text = out.read_text()
    assert "http://" not in text.replace("http://www.w3.org/", "") and "https://" not in text
    assert "<script src" not in text and "<link" not in text
    assert text.count("<svg") == 1


def _marks(svg: Path) -> dict[str, list[str]]:
    """Every track's mark titles (what the map says, independent of the title line)."""
    root = ET.parse(svg).getroot()
    return {t: [_title(r) for r in _track(root, t)] for t in ("nodes", "e820", "reserved", "sections", "memmap", "vmemmap")}


def test_drgn_command_and_api_write_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drgn = pytest.importorskip("drgn")
    from drgn.commands import run_command

    from vmemdbg.drgn_plugin import write_map

    cli = tmp_path / "cli.svg"
    assert main(["map", str(real_dump(SIX)), "-o", str(cli)]) == 0
    prog = drgn.Program()
    prog.set_core_dump(str(real_dump(SIX)))
    st = write_map(prog, str(tmp_path / "api.svg"))
    assert (st["format"], st["section_runs"], st["nodes"], st["reserved"]) == ("svg", 3, 2, 48)
    capsys.readouterr()
    run_command(prog, f"vmemdbg map -o {tmp_path / 'cmd.html'}")
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'cmd.html'}: ")
    run_command(prog, f"vmemdbg map -o {tmp_path / 'cmd.svg'}")
    assert _marks(tmp_path / "api.svg") == _marks(tmp_path / "cmd.svg") == _marks(cli)
    assert "vmemdbg-data" in (tmp_path / "cmd.html").read_text()


def test_gdb_command_writes_the_map(tmp_path: Path) -> None:
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed")
    cli = tmp_path / "cli.svg"
    assert main(["map", str(real_dump(SIX)), "-o", str(cli)]) == 0
    load = subprocess.run([sys.executable, "-m", "vmemdbg.gdb"], capture_output=True, text=True, check=True).stdout.strip()
    res = subprocess.run([gdb, "-batch", "-nx", "-ex", f"core-file {real_dump(SIX)}", "-ex", load,
                          "-ex", f"vmemdbg map -o {tmp_path / 'gdb.svg'}", "-ex", f"vmemdbg map -o {tmp_path / 'gdb.html'}",
                          "-ex", "vmemdbg map"],
                         capture_output=True, text=True, timeout=300, cwd="/")
    assert f"wrote {tmp_path / 'gdb.svg'}: " in res.stdout and f"wrote {tmp_path / 'gdb.html'}: " in res.stdout
    assert "vmemdbg: the following arguments are required: -o/--output" in res.stderr
    assert _marks(tmp_path / "gdb.svg") == _marks(cli)


# -- the page in Chromium ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Debian's Chromium, headless, driven by playwright (no browser download: executable_path)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1560, "height": 900},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield ctx
        ctx.close()


def _open(browser, html: Path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: errors.append(f"request {r.url}") if not r.url.startswith("file:") else None)
    page.goto(html.as_uri())
    page.wait_for_function("window.vmemdbgMap !== undefined")
    return page, errors


def _hover_section(page, nr: int) -> str:
    pt = page.evaluate(f"window.vmemdbgMap.sectionPoint({nr})")
    page.mouse.move(pt["x"], pt["y"])
    return page.inner_text("#tip")


def test_page_renders_and_hover_shows_engine_numbers(browser, tmp_path: Path) -> None:
    out = tmp_path / "map.html"
    kernel = _kernel(real_dump(SIX))
    page_html = render_html(build_model(map_docs(kernel), title="vmemdbg map of fixtures/real/6g-2node-kaslr/vmcore.elf"))
    out.write_text(page_html)
    page, errors = _open(browser, out)
    rows = {s["nr"]: s for s in views.sections(kernel)["sections"]}
    drgn = {s["nr"]: s for s in real_truth(SIX)["sections"]}
    for nr in (0, 15, 32, 39, 40, 63):
        tip = _hover_section(page, nr)
        s, d = rows[nr], drgn[nr]
        assert tip.splitlines()[:8] == [
            f"section {nr}  root 0  nid {s['nid']}  boot",
            f"start_pfn      {s['start_pfn']:#x}  (pfn {s['start_pfn']:#x}-{s['start_pfn'] + 0x8000:#x}, "
            f"phys {s['start_pfn'] << 12:#x}-{((s['start_pfn'] + 0x8000) << 12) - 1:#x})",
            f"mem_section    {s['section']:#x}",
            f"coded_mem_map  {s['coded_mem_map']:#x}",
            f"mem_map        {s['mem_map']:#x}",
            f"flags          {'|'.join(s['flags'])}",
            f"usage          {s['usage']:#x}",
            f"subsection_map {s['subsection_map']:#x}"]
        assert (s["mem_map"], s["usage"], s["nid"], s["flags"]) == (d["mem_map"], d["usage"], d["nid"], d["flags"])
    assert "section 20: not present" in _hover_section(page, 20)  # the 2-4 GiB hole
    # a vmemmap run: node 1's PMD run, hovered in the vmemmap track
    base = kernel.vmemmap_base
    pt = page.evaluate(f"window.vmemdbgMap.point('virt', {0xfffff1d846000000 - base}, 'vmemmap')")
    page.mouse.move(pt["x"], pt["y"])
    assert page.inner_text("#tip").splitlines()[:4] == [
        "vmemmap run 0xfffff1d845000000-0xfffff1d848000000 (48.0 MiB)", "PMD leaf RW, provenance boot",
        "backed by phys 0x1fce00000-0x1ffdfffff on node 1", "struct pages of pfn 0x140000-0x200000"]
    # a finding's text zooms both axes to its marks
    page.click("#finding-0")
    zoom = page.evaluate("['phys', 'virt'].map(n => { const p = window.vmemdbgMap.panels[n];"
                         " return p.geom.width / (p.u1 - p.u0); })")
    assert zoom[0] > 5 and zoom[1] > 5
    inside = page.evaluate("""[...document.querySelectorAll("a[href='#finding-0'] rect")].map(r => {
        const p = window.vmemdbgMap.panels[r.dataset.track === 'vfindings' ? 'virt' : 'phys'];
        return [r.dataset.track, p.u0 <= +r.dataset.x0 && +r.dataset.x1 <= p.u1]; })""")
    assert sorted(inside) == [["pfindings", True], ["vfindings", True]]
    for name in ("phys", "virt"):  # double-click resets a panel
        pt = page.evaluate(f"window.vmemdbgMap.point('{name}', 0, '{'sections' if name == 'phys' else 'vmemmap'}')")
        page.mouse.dblclick(pt["x"], pt["y"])
    assert page.evaluate("['phys', 'virt'].map(n => window.vmemdbgMap.panels[n].u1 - window.vmemdbgMap.panels[n].u0)") \
        == [1400, 1400]
    pt = page.evaluate("window.vmemdbgMap.sectionPoint(36)")
    page.mouse.move(pt["x"], pt["y"])  # the screenshot shows section 36's numbers
    shot = tmp_path / "map.png"
    page.locator("#vmemdbg-map").screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("VMEMDBG_MAP_SCREENSHOT"):  # regenerate docs/map-6g-2node.png
        shutil.copy(shot, os.environ["VMEMDBG_MAP_SCREENSHOT"])
    assert errors == []


def test_simulated_1t_machine_page(browser, tmp_path: Path) -> None:
    """8,192 sections on 4 nodes: few marks, and a zoomed-in hover still decodes the exact section."""
    elf = tmp_path / "1t.elf"
    assert main(["simulate", str(ROOT / "fixtures" / "machines" / "1t-4node.toml"), "-o", str(elf)]) == 0
    out = tmp_path / "map.html"
    assert main(["map", str(elf), "-o", str(out)]) == 0
    kernel = _kernel(elf)
    secs = views.sections(kernel)["sections"]
    text = out.read_text()
    root = ET.fromstring(text[text.index("<svg"):text.index("</svg>") + len("</svg>")])
    nodes = views.summary(kernel)["nodes"]
    assert len(_track(root, "nodes")) == len(nodes) == 4
    runs = 1 + sum(1 for a, b in zip(secs, secs[1:]) if b["nr"] != a["nr"] + 1 or b["nid"] != a["nid"])
    assert len(_track(root, "sections")) == runs
    page, errors = _open(browser, out)
    s = secs[len(secs) * 2 // 3]
    page.evaluate(f"window.vmemdbgMap.zoomTo('phys', {s['nr'] << 27}, {(s['nr'] + 1) << 27})")
    tip = _hover_section(page, s["nr"])
    assert f"mem_map        {s['mem_map']:#x}" in tip and f"mem_section    {s['section']:#x}" in tip
    assert tip.startswith(f"section {s['nr']}  root {s['nr'] // kernel.sections_per_root}  nid {s['nid']}  boot")
    assert page.locator("#detail-phys line").count() >= 2  # section boundaries drawn once zoomed in
    assert errors == []


def _hvo_docs() -> tuple[dict, list[dict]]:
    """The 6 GiB fixture's views with node 1's memmap (48 MiB PMD run) replaced by what HugeTLB
    vmemmap optimisation leaves behind for 24 2 MiB folios per PMD slot: per 32 KiB of memmap
    (one folio's struct pages), a writable head page and 7 read-only PTEs aliasing one frame."""
    docs = copy.deepcopy(map_docs(_kernel(real_dump(SIX))))
    old = docs["vmemmap"]["runs"].pop()
    runs = []
    for slot in range(24):
        va = old["start"] + slot * (2 << 20)
        phys = old["phys"] + slot * (2 << 20)
        for folio in range(64):
            v, p, pfn = va + folio * 0x8000, phys + folio * 0x8000, old["start_pfn"] + slot * 0x8000 + folio * 0x200
            runs.append({"start": v, "end": v + 0x1000, "level": "pte", "writable": True, "phys": p, "nid": 1,
                         "start_pfn": pfn, "end_pfn": pfn + 64, "provenance": "hvo"})
            runs += [{"start": v + 0x1000 * t, "end": v + 0x1000 * (t + 1), "level": "pte", "writable": False,
                      "phys": p, "nid": 1, "start_pfn": pfn + 64 * t, "end_pfn": pfn + 64 * (t + 1), "provenance": "hvo"}
                     for t in range(1, 8)]
    docs["vmemmap"]["runs"] += runs
    return docs, runs


def test_many_small_runs_aggregate_then_show_on_zoom(browser, tmp_path: Path) -> None:
    """12,288 HVO runs: a few aggregate marks at zoom 1; zoomed in, every run in view is drawn
    and hovering one gives its own numbers."""
    docs, runs = _hvo_docs()
    model = build_model(docs)
    base = docs["summary"]["kernel"]["vmemmap_base"]
    all_runs = docs["vmemmap"]["runs"]
    assert _decode(model.data["memmap"]["groups"], 5, 5) == \
        [[r["start"] - base, r["end"] - r["start"], r["phys"], r["start_pfn"], r["end_pfn"]] for r in all_runs]
    root = ET.fromstring(draw(model).as_svg())
    vmarks = _track(root, "vmemmap")
    assert len(runs) == 12288 and len(vmarks) < 1000
    assert any("hvo" in r.get("class") for r in vmarks)
    out = tmp_path / "hvo.html"
    out.write_text(render_html(model))
    page, errors = _open(browser, out)
    slot = 5
    a0 = runs[0]["start"] - base + slot * (2 << 20)
    page.evaluate(f"window.vmemdbgMap.zoomTo('virt', {a0}, {a0 + 0x10000})")
    o0, o1 = page.evaluate("(() => { const p = window.vmemdbgMap.panels.virt;"
                           " return [p.u0, p.u1].map(x => window.vmemdbgMap.xToAddr('virt', x)); })()")
    visible = [r for r in all_runs if r["start"] - base < o1 and r["end"] - base > o0]
    assert 16 <= len(visible) == page.locator("#detail-virt rect").count()
    ro = runs[slot * 64 * 8 + 8 + 3]  # folio 1 of the slot, its third read-only tail page
    pt = page.evaluate(f"window.vmemdbgMap.point('virt', {ro['start'] - base + 0x800}, 'vmemmap')")
    page.mouse.move(pt["x"], pt["y"])
    assert page.inner_text("#tip").splitlines()[:4] == [
        f"vmemmap run {ro['start']:#x}-{ro['end']:#x} (4.0 KiB)", "PTE leaf RO, provenance hvo (HVO-remapped)",
        f"backed by phys {ro['phys']:#x}-{ro['phys'] + 0xfff:#x} on node 1",
        f"struct pages of pfn {ro['start_pfn']:#x}-{ro['end_pfn']:#x}"]
    assert errors == []


def test_before_sparse_init_draws_what_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """mem_section NULL and nothing mapped in the vmemmap (a kernel stopped before sparse_init):
    e820 and memblock are drawn, no section or memmap mark is made up."""
    import re

    from conftest import rewrite_dump
    from vmemdbg.elfcore import ElfCoreSource

    src = ElfCoreSource(real_dump("1g-nokaslr"))
    kernel = Kernel(src)
    pgd_entry = kernel.kimg_to_phys(kernel.init_top_pgt) + 8 * (kernel.vmemmap_base >> 39 & 511)
    note = re.sub(rb"SYMBOL\(mem_section\)=[0-9a-f]+", b"SYMBOL(mem_section)=0", src.vmcoreinfo())
    src.close()
    dump = rewrite_dump(real_dump("1g-nokaslr"), tmp_path / "early.elf", patch={pgd_entry: bytes(8)}, vmcoreinfo=note)
    out = tmp_path / "early.svg"
    assert main(["map", str(dump), "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["command"], doc["format"], doc["section_runs"], doc["memmap_groups"]) == ("map", "svg", 0, 0)
    assert doc["bytes"] == out.stat().st_size
    root = ET.parse(out).getroot()
    assert _track(root, "sections") == [] and _track(root, "memmap") == [] and _track(root, "vmemmap") == []
    assert len(_track(root, "e820")) == len(real_truth("1g-nokaslr")["e820"]) == doc["e820"]
