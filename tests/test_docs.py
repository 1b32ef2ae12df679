"""The repository's own references resolve: docs/*.md names and anchors, Markdown links, the module map.

A reference that leads nowhere is a defect a reader meets first. These tests read the tree as
text: every ``docs/NAME.md`` (optionally ``#anchor``) written in code, tests, fixtures or docs,
and every relative Markdown link, must name an existing file and, for an anchor, a heading of
that file (GitHub's anchor rules). The module map in ``vmemdbg/__init__.py`` must name exactly
the modules of the package.
"""

from __future__ import annotations

import re
from pathlib import Path

import vmemdbg

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vmemdbg"
#: Where references are looked for: text files of the project (not the venv, VCS or build output).
SCANNED = ("*.py", "*.md", "*.toml", "*.sh", "run")
SKIPPED_DIRS = {".venv", ".git", "__pycache__", "build", "dist", ".pytest_cache"}

DOCS_REF = re.compile(r"\bdocs/([\w.-]+?\.md)(#[\w-]+)?")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def project_files() -> list[Path]:
    out = []
    for pattern in SCANNED:
        for p in ROOT.rglob(pattern):
            rel = p.relative_to(ROOT).parts
            if p.is_file() and not SKIPPED_DIRS.intersection(rel) and not any(x.endswith(".egg-info") for x in rel):
                out.append(p)
    return sorted(set(out))


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped (``-`` and ``_``
    kept), spaces to hyphens; inline code and link syntax count as their text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Every anchor a Markdown file defines (duplicate headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in md.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_references(path: Path, text: str) -> list[str]:
    """References in ``text`` (the content of ``path``) that do not resolve, one line each."""
    bad = []
    for m in DOCS_REF.finditer(text):
        target = ROOT / "docs" / m.group(1)
        if not target.is_file():
            bad.append(f"{path}: docs/{m.group(1)} does not exist")
        elif m.group(2) and m.group(2)[1:] not in anchors(target):
            bad.append(f"{path}: docs/{m.group(1)}{m.group(2)} names no heading of that file")
    if path.suffix == ".md":
        for m in MD_LINK.finditer(text):
            link = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
                continue
            file_part, _, anchor = link.partition("#")
            target = (path.parent / file_part).resolve() if file_part else path
            if not target.exists():
                bad.append(f"{path}: link {link} leads to no file")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                bad.append(f"{path}: link {link} names no heading of {target.name}")
    return bad


def test_every_docs_reference_resolves() -> None:
    files = project_files()
    assert ROOT / "README.md" in files and ROOT / "vmemdbg" / "kernel.py" in files
    this = Path(__file__).resolve()  # its examples of broken references are deliberate
    bad = [b for p in files if p != this for b in broken_references(p.relative_to(ROOT), p.read_text(errors="replace"))]
    assert bad == []


def test_the_checker_reports_what_is_broken() -> None:
    """The resolver itself: a missing file, a missing anchor and a dead link are each reported."""
    text = ("see docs/no-such-page.md, docs/memblock.md#no-such-heading and docs/memblock.md#e820-tables-what-"
            "describes-ram-after-boot; [x](no-such.md) [y](kaslr.md#vmcoreinfo) [z](kaslr.md#nope)")
    bad = broken_references(Path("docs/example.md"), text)
    assert len(bad) == 4
    assert "no-such-page.md does not exist" in bad[0]
    assert "#no-such-heading names no heading" in bad[1]
    assert "no-such.md leads to no file" in bad[2]
    assert "kaslr.md#nope names no heading" in bad[3]


def test_slug_follows_github() -> None:
    assert slug("`section_mem_map`: the coded memmap pointer") == "section_mem_map-the-coded-memmap-pointer"
    assert slug("After boot: can the memblock data be trusted?") == "after-boot-can-the-memblock-data-be-trusted"
    assert slug("`[[node]]` — SRAT memory affinity") == "node--srat-memory-affinity"


def package_modules() -> set[str]:
    """Every module and subpackage of vmemdbg, from the files (nothing is imported)."""
    out = set()
    for p in PACKAGE.rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts != ("vmemdbg",):
            out.add(".".join(parts))
    return out


def test_module_map_names_exactly_the_modules() -> None:
    mapped = set(re.findall(r":mod:`(vmemdbg[\w.]*)`", vmemdbg.__doc__ or ""))
    present = package_modules()
    assert {"vmemdbg.kernel", "vmemdbg.sim.sparse", "vmemdbg.map.draw"} <= present
    assert sorted(present - mapped) == [], "modules missing from the map in vmemdbg/__init__.py"
    assert sorted(mapped - present) == [], "the map in vmemdbg/__init__.py names modules that do not exist"
