"""``vmemdbg map``: a picture of physical memory and the vmemmap (docs/map.md).

:func:`write_map` draws the engine views of a kernel into ``.html`` (interactive, self-contained:
the SVG, its style, its script and its data are inline, nothing is loaded at view time) or ``.svg``
(the same drawing, static). Every front end calls it: the CLI ``map`` command, drgn's
``%vmemdbg map -o FILE`` / :func:`vmemdbg.drgn_plugin.write_map`, gdb's ``vmemdbg map -o FILE``.
"""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from typing import TYPE_CHECKING

from .. import views
from ..errors import VmemdbgError
from ..jsonout import word
from .draw import draw
from .model import MapModel, build_model

if TYPE_CHECKING:
    from ..kernel import Kernel

FORMATS = (".html", ".svg")


def map_docs(kernel: "Kernel") -> dict:
    """The view documents the map is drawn from (a memblock the dump cannot give is left empty)."""
    docs = {"summary": views.summary(kernel), "sections": views.sections(kernel),
            "vmemmap": views.vmemmap(kernel), "e820": views.e820(kernel)}
    try:
        docs["memblock"] = views.memblock(kernel)
    except VmemdbgError as e:
        docs["memblock"] = {"error": str(e)}
    return docs


def load_check(path: str) -> dict:
    """A ``vmemdbg check --json`` document; one-line errors for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise VmemdbgError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise VmemdbgError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("command") != "check" or not isinstance(doc.get("differences"), list):
        raise VmemdbgError(f"{path}: not the JSON of `vmemdbg check --json` (needs command \"check\" and a differences list)")
    for i, d in enumerate(doc["differences"]):
        if not isinstance(d, dict) or not isinstance(d.get("text", ""), str):
            raise VmemdbgError(f"{path}: differences[{i}] is not an object with a text")
        for key in ("va", "phys"):  # integers (vmemdbg/1) or "0x…" strings (vmemdbg/2)
            if d.get(key) is None:
                continue
            try:
                start, end = (word(x) for x in d[key])
            except (TypeError, ValueError):
                start = end = 0
            if not start < end:
                raise VmemdbgError(f"{path}: differences[{i}].{key} must be [start, end] addresses or null")
            d[key] = [start, end]
        if d.get("section") is not None and not isinstance(d["section"], int):
            raise VmemdbgError(f"{path}: differences[{i}].section must be an integer or null")
    return doc


def render_html(model: MapModel) -> str:
    """The self-contained interactive page."""
    pkg = resources.files(__package__)
    svg = draw(model, interactive=True).as_svg()
    svg = svg[svg.index("<svg"):]  # inline SVG: no XML declaration inside HTML
    data = json.dumps(model.data, separators=(",", ":")).replace("</", "<\\/")
    page = pkg.joinpath("page.html").read_text()
    for marker, value in (("@TITLE@", html.escape(model.title)), ("@SVG@", svg), ("@DATA@", data),
                          ("@SCRIPT@", pkg.joinpath("map.js").read_text())):
        page = page.replace(marker, value, 1)
    return page


def write_map(kernel: "Kernel", output: str, check: str | None = None, title: str | None = None) -> dict:
    """Draw ``kernel`` into ``output`` (``.html`` or ``.svg``); returns what was written."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in FORMATS:
        raise VmemdbgError(f"map: {output}: the output must end in .html or .svg")
    check_doc = load_check(check) if check else None
    model = build_model(map_docs(kernel), check_doc, title=title or f"vmemdbg map of {kernel.source.description}")
    text = render_html(model) if ext == ".html" else draw(model).as_svg()
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise VmemdbgError(f"{output}: cannot write: {e.strerror}") from None
    return {"output": output, "format": ext[1:], "bytes": len(text.encode()), **model.counts}
