"""The map as an SVG drawing, built with drawsvg (docs/map.md says why that library).

Every mark is a drawsvg element carrying its layout coordinates (``data-x0``/``data-x1``) so that
the interactive page can zoom without re-deriving anything; the static SVG is the same drawing at
zoom 1. Styling is by CSS class (``map.css``), so the SVG and the HTML share one look.
"""

from __future__ import annotations

from importlib import resources

import drawsvg as dw

from ..render import human
from .model import HOLE_PX, Axis, MapModel, Mark

#: Vertical layout: track -> (top, height).
TRACKS: dict[str, tuple[float, float]] = {
    "nodes": (80, 18), "e820": (102, 16), "reserved": (122, 14), "sections": (140, 26),
    "memmap": (234, 14), "pfindings": (252, 10),
    "vmemmap": (336, 26), "vfindings": (366, 10),
}
#: Track labels drawn left of the tracks.
LABELS = {"nodes": "nodes", "e820": "e820", "reserved": "memblock.reserved", "sections": "sections",
          "memmap": "memmap frames", "pfindings": "findings", "vmemmap": "vmemmap VA", "vfindings": "findings"}
PHYS_TRACKS = ("nodes", "e820", "reserved", "sections", "memmap", "pfindings")
VIRT_TRACKS = ("vmemmap", "vfindings")
PHYS_PANEL = (74, 276)   # top, bottom (tracks + axis labels)
VIRT_PANEL = (330, 390)
LEGEND_Y = 406
FINDINGS_TOP = 446
LINE = 15


class Anchor(dw.DrawingParentElement):
    """SVG ``<a href>``: drawsvg 2 has no hyperlink element, its parent-element base builds one."""

    TAG_NAME = "a"

    def __init__(self, href: str, **kwargs: object) -> None:
        super().__init__(href=href, **kwargs)


def _css() -> str:
    return resources.files(__package__).joinpath("map.css").read_text()


def _rect(m: Mark, min_w: float) -> dw.Rectangle:
    top, h = TRACKS[m.track]
    r = dw.Rectangle(m.x0, top, max(m.x1 - m.x0, min_w), h, class_=m.cls, data_x0=f"{m.x0:.3f}",
                     data_x1=f"{m.x1:.3f}", data_track=m.track)
    r.append_title(m.tip)
    return r


def _ribbon(xm0: float, xm1: float, xs0: float, xs1: float, **attrs: object) -> dw.Path:
    """The band from memmap frames [xm0, xm1] up to the sections [xs0, xs1] they describe."""
    ym = TRACKS["memmap"][0]
    ys = TRACKS["sections"][0] + TRACKS["sections"][1]
    mid = (ym + ys) / 2
    p = dw.Path(data_ym=ym, data_ys=ys, **attrs)
    p.M(xm0, ym).C(xm0, mid, xs0, mid, xs0, ys).L(xs1, ys).C(xs1, mid, xm1, mid, xm1, ym).Z()
    return p


def _axis_labels(g: dw.Group, knots_a: list[int], knots_x: list[float], y: float, base: int = 0) -> None:
    """Address labels at the knots of an axis, skipping those too close to the previous one."""
    last = -1e9
    lo, hi = knots_x[0], knots_x[-1]
    for a, x in zip(knots_a, knots_x):
        if x - last < 110:
            continue
        anchor = "start" if x < lo + 60 else "end" if x > hi - 60 else "middle"
        g.append(dw.Text(f"{a + base:#x}", 9, x, y, class_="tick", text_anchor=anchor))
        last = x


def _holes(g: dw.Group, axis: Axis, top: float, bottom: float) -> None:
    """A grey, dashed box over each collapsed hole of ``axis``."""
    xs = axis.x
    for i, (a, b) in enumerate(axis.holes):
        x1 = xs[2 * i + 2]  # the hole ends where the next stretch starts
        x0 = x1 - HOLE_PX
        h = dw.Rectangle(x0 + 3, top, HOLE_PX - 6, bottom - top, class_="hole", data_x0=f"{x0 + 3:.3f}",
                         data_x1=f"{x1 - 3:.3f}")
        h.append_title(f"hole {a:#x}-{b - 1:#x} ({human(b - a)}), collapsed")
        g.append(h)


def draw(model: MapModel, *, interactive: bool = False) -> dw.Drawing:
    """The whole map as a drawsvg Drawing (``interactive`` adds the hooks the page's script uses)."""
    left, width = model.left, model.width
    height = FINDINGS_TOP + LINE * (len(model.findings) + 2)
    d = dw.Drawing(left + width + 20, height, id_prefix="vm", id="vmemdbg-map")
    d.append_css(_css())
    d.append(dw.Rectangle(0, 0, left + width + 20, height, class_="background"))
    d.append(dw.Text(model.title, 15, 10, 20, class_="title"))
    d.append(dw.Text(model.data.get("subtitle", ""), 11, 10, 38, class_="subtitle"))

    anchored: set[str] = set()
    target_of: dict[int, str] = {}  # finding index -> id of the (first) mark standing for it
    for name, (top, bottom, tracks) in {"phys": (*PHYS_PANEL, PHYS_TRACKS), "virt": (*VIRT_PANEL, VIRT_TRACKS)}.items():
        clip = dw.ClipPath(id=f"clip-{name}")
        clip.append(dw.Rectangle(left, top - 4, width, bottom - top + 4))
        d.append_def(clip)
        axis = model.phys if name == "phys" else model.virt
        panel = dw.Group(id=f"panel-{name}", class_="panel", clip_path=f"url(#clip-{name})")
        d.append(dw.Text("physical address space, by node" if name == "phys" else
                         "vmemmap virtual range (offsets shown as addresses)", 12, left, top - 8, class_="panel-title"))
        for t in tracks:
            ttop, th = TRACKS[t]
            d.append(dw.Text(LABELS[t], 10, left - 6, ttop + th * 0.7, class_="track-label", text_anchor="end"))
            panel.append(dw.Rectangle(left, ttop, width, th, class_="track-bg", data_track=t))
        _holes(panel, axis, top, bottom - 14)
        if name == "phys":
            links = dw.Group(id="links")
            for xm0, xm1, xs0, xs1, cls, tip in model.links:
                p = _ribbon(xm0, xm1, xs0, xs1, class_=cls, data_xm0=f"{xm0:.3f}", data_xm1=f"{xm1:.3f}",
                            data_xs0=f"{xs0:.3f}", data_xs1=f"{xs1:.3f}")
                p.append_title(tip)
                links.append(p)
            panel.append(links)
        for t in tracks:
            g = dw.Group(id=f"track-{t}", class_="track")
            for m in model.marks:
                if m.track != t:
                    continue
                if m.link:
                    a = Anchor(f"#{m.link}", id=None if m.link in anchored else f"mark-{m.link}")
                    anchored.add(m.link)
                    for i in m.members:
                        target_of.setdefault(i, f"mark-{m.link}")
                    a.append(_rect(m, 3.0))
                    g.append(a)
                else:
                    g.append(_rect(m, 1.0))
            panel.append(g)
        ticks = dw.Group(id=f"ticks-{name}", class_="ticks")
        _axis_labels(ticks, axis.addr, axis.x, bottom - 2, int(model.data["vmemmap_base"], 16) if name == "virt" else 0)
        panel.append(ticks)
        if interactive:
            panel.append(dw.Group(id=f"detail-{name}", class_="detail"))
        d.append(panel)

    legend = [("prov-boot", "boot section"), ("prov-hotplug", "hot-added section"),
              ("prov-self_hosted", "self-hosted memmap section"), ("reserved", "memblock.reserved"),
              ("e820-ram", "e820 RAM"), ("e820-other", "e820 other"), ("offnode", "off-node memmap"),
              ("level-pmd rw", "PMD leaf RW"), ("level-pte rw", "PTE leaf RW"), ("level-pte ro hvo", "HVO (PTE RO)"),
              ("finding audit", "audit finding"), ("finding check", "check difference")]
    lg = dw.Group(id="legend")
    x = left
    for cls, text in legend:
        lg.append(dw.Rectangle(x, LEGEND_Y, 12, 12, class_=f"legend {cls}"))
        lg.append(dw.Text(text, 10, x + 16, LEGEND_Y + 10, class_="legend-text"))
        x += 16 + 6.2 * len(text) + 14
    d.append(lg)

    fl = dw.Group(id="findings")
    fl.append(dw.Text(f"findings ({len(model.findings)})" if model.findings else "findings: none (audit clean)",
                      12, 10, FINDINGS_TOP, class_="panel-title"))
    for i, f in enumerate(model.findings):
        a = Anchor(f"#{target_of[i]}" if i in target_of else f"#finding-{i}")
        extra = ""
        if f["source"] == "check":
            extra = " [explained: " + (f.get("mechanism") or "?") + "]" if f.get("explained") else " [unexplained]"
        a.append(dw.Text(f"{i}. {f['source']} {f['kind']}: {f['text']}{extra}", 11, 16, FINDINGS_TOP + LINE * (i + 1),
                         id=f"finding-{i}", class_=f"finding-text {f['source']}"))
        fl.append(a)
    d.append(fl)
    return d
