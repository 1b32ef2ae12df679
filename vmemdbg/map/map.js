// vmemdbg map: zoom, pan and hover for the inline SVG drawn by vmemdbg/map/draw.py.
// The page data (vmemdbg/map/model.py) holds the axes' knots and the affine groups of present
// sections and vmemmap runs, from which every section's and every run's exact numbers are decoded
// (BigInt) on hover, at any zoom, without one element per section.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("vmemdbg-data").textContent);
  const svg = document.getElementById("vmemdbg-map");
  const tip = document.getElementById("tip");
  const NS = "http://www.w3.org/2000/svg";
  const MAX_ZOOM = 2e6;
  const SECTION_TICKS = 1500;
  const DETAIL_RUNS = 3000;

  // ---- geometry -------------------------------------------------------------------------------
  function clipRect(name) {
    const r = document.querySelector("#clip-" + name + " rect");
    return { left: +r.getAttribute("x"), width: +r.getAttribute("width"),
             top: +r.getAttribute("y"), bottom: +r.getAttribute("y") + +r.getAttribute("height") };
  }
  const panels = {
    phys: { geom: clipRect("phys"), axis: data.phys, el: document.getElementById("panel-phys") },
    virt: { geom: clipRect("virt"), axis: data.virt, el: document.getElementById("panel-virt") },
  };
  for (const p of Object.values(panels)) { p.u0 = p.geom.left; p.u1 = p.geom.left + p.geom.width; }

  function interp(v, xs, ys) {  // piecewise-linear, xs increasing (np.interp)
    if (v <= xs[0]) return ys[0];
    const n = xs.length;
    if (v >= xs[n - 1]) return ys[n - 1];
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (xs[m] <= v) lo = m; else hi = m; }
    const span = xs[hi] - xs[lo];
    return span > 0 ? ys[lo] + (v - xs[lo]) * (ys[hi] - ys[lo]) / span : ys[lo];
  }
  const addrToX = (p, a) => interp(a, p.axis.addr, p.axis.x);
  const xToAddr = (p, x) => interp(x, p.axis.x, p.axis.addr);
  const toScreen = (p, x) => p.geom.left + (x - p.u0) * p.geom.width / (p.u1 - p.u0);
  const fromScreen = (p, X) => p.u0 + (X - p.geom.left) * (p.u1 - p.u0) / p.geom.width;

  function svgPoint(evt) {
    const pt = svg.createSVGPoint();
    pt.x = evt.clientX; pt.y = evt.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }
  function panelAt(y) {
    for (const [name, p] of Object.entries(panels)) if (y >= p.geom.top && y <= p.geom.bottom) return name;
    return null;
  }
  const hex = (v) => "0x" + v.toString(16);
  const big = (h) => BigInt("0x" + h);
  function human(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
  }

  // ---- exact records from the affine groups ----------------------------------------------------
  function decode(row, first, col, k) {  // column col of element k of an affine group
    const b = big(row[first + 2 * col]), s = big(row[first + 2 * col + 1]);
    return BigInt.asUintN(64, b + BigInt(k) * s);
  }
  const SEC = data.sections;
  const secStarts = SEC.groups.map((g) => parseInt(g[5], 16));  // nr base of each group
  function sectionRecord(nr) {
    let lo = 0, hi = secStarts.length - 1, gi = -1;
    while (lo <= hi) { const m = (lo + hi) >> 1; if (secStarts[m] <= nr) { gi = m; lo = m + 1; } else hi = m - 1; }
    if (gi < 0) return null;
    const g = SEC.groups[gi];
    const stride = parseInt(g[6], 16) || 1;
    const k = (nr - secStarts[gi]) / stride;
    if (!Number.isInteger(k) || k >= g[0]) return null;
    const v = (c) => decode(g, 5, c, k);
    return { nr: nr, nid: g[1] < 0 ? null : g[1], flags: SEC.flags[g[2]], noMemMap: (g[3] & 1) !== 0,
             noUsage: (g[3] & 2) !== 0, provenance: g[4], section: v(1), coded: v(2), memMap: v(3),
             usage: v(4), subsections: v(5) };
  }
  function sectionTip(nr) {
    const s = sectionRecord(nr);
    if (!s) return "section " + nr + ": not present";
    const shift = data.section_size_bits - 12;
    const pfn = BigInt(nr) << BigInt(shift);
    const end = pfn + (1n << BigInt(shift));
    return ["section " + nr + "  root " + Math.floor(nr / data.sections_per_root) + "  nid " + s.nid +
              "  " + s.provenance,
            "start_pfn      " + hex(pfn) + "  (pfn " + hex(pfn) + "-" + hex(end) + ", phys " +
              hex(pfn << 12n) + "-" + hex((end << 12n) - 1n) + ")",
            "mem_section    " + hex(s.section),
            "coded_mem_map  " + hex(s.coded),
            "mem_map        " + (s.noMemMap ? "none (no HAS_MEM_MAP)" : hex(s.memMap)),
            "flags          " + s.flags,
            "usage          " + hex(s.usage),
            "subsection_map " + (s.noUsage ? "unreadable" : hex(s.subsections))].join("\n");
  }
  const MM = data.memmap;
  const runStarts = MM.groups.map((g) => Number(big(g[5])));  // VA offset (from vmemmap_base) of each group
  const VBASE = big(data.vmemmap_base);
  function runTip(off) {  // off: VA offset from vmemmap_base
    let lo = 0, hi = runStarts.length - 1, gi = -1;
    while (lo <= hi) { const m = (lo + hi) >> 1; if (runStarts[m] <= off) { gi = m; lo = m + 1; } else hi = m - 1; }
    if (gi < 0) return null;
    const g = MM.groups[gi];
    const first = big(g[5]), stride = big(g[6]);
    const o = BigInt(Math.floor(off));
    let k = stride > 0n ? Number((o - first) / stride) : 0;
    k = Math.max(0, Math.min(g[0] - 1, k));
    const start = decode(g, 5, 0, k), size = decode(g, 5, 1, k);
    if (o < start || o >= start + size) return null;
    const phys = decode(g, 5, 2, k), spfn = decode(g, 5, 3, k), epfn = decode(g, 5, 4, k);
    const va = BigInt.asUintN(64, VBASE + start);
    return ["vmemmap run " + hex(va) + "-" + hex(va + size) + " (" + human(Number(size)) + ")",
            g[1].toUpperCase() + " leaf " + (g[2] ? "RW" : "RO") + ", provenance " + g[4] +
              (g[4] === "hvo" || (g[1] === "pte" && !g[2]) ? " (HVO-remapped)" : ""),
            "backed by phys " + hex(phys) + "-" + hex(phys + size - 1n) + " on node " + g[3],
            "struct pages of pfn " + hex(spfn) + "-" + hex(epfn),
            g[0] > 1 ? "(run " + (k + 1) + " of " + g[0] + " in this group)" : ""].join("\n").trim();
  }

  // ---- drawing on zoom ------------------------------------------------------------------------
  function ticks(name) {
    const p = panels[name];
    const g = document.getElementById("ticks-" + name);
    while (g.firstChild) g.removeChild(g.firstChild);
    const y = p.geom.bottom - 2;
    const base = name === "virt" ? VBASE : 0n;
    const xs = p.axis.x, as = p.axis.addr;
    let last = -1e9;
    const label = (addr, X) => {
      if (X < p.geom.left - 1 || X > p.geom.left + p.geom.width + 1 || X - last < 110) return;
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", X); t.setAttribute("y", y); t.setAttribute("font-size", 9);
      const edge = X < p.geom.left + 60 ? "start" : X > p.geom.left + p.geom.width - 60 ? "end" : "middle";
      t.setAttribute("class", "tick"); t.setAttribute("text-anchor", edge);
      t.textContent = hex(BigInt.asUintN(64, base + BigInt(Math.round(addr))));
      g.appendChild(t); last = X;
    };
    for (let i = 0; i + 1 < xs.length; i += 2) {  // stretches [knot i, knot i+1]
      const X0 = toScreen(p, xs[i]), X1 = toScreen(p, xs[i + 1]);
      if (X1 < p.geom.left || X0 > p.geom.left + p.geom.width) continue;
      label(as[i], X0);
      const perPx = (as[i + 1] - as[i]) / Math.max(X1 - X0, 1e-9);
      const step = Math.pow(2, Math.ceil(Math.log2(Math.max(perPx * 140, 4096))));
      const vis0 = as[i] + Math.max(0, p.geom.left - X0) * perPx;
      const vis1 = Math.min(as[i + 1], as[i] + (p.geom.left + p.geom.width - X0) * perPx);
      for (let a = Math.ceil(vis0 / step) * step, n = 0; a < vis1 && n < 64; a += step, n++) {
        label(a, X0 + (a - as[i]) / perPx);
      }
    }
  }
  function sectionTicks() {
    const p = panels.phys;
    const g = document.getElementById("detail-phys");
    while (g.firstChild) g.removeChild(g.firstChild);
    const secSize = Math.pow(2, data.section_size_bits);
    const a0 = xToAddr(p, p.u0), a1 = xToAddr(p, p.u1);
    const n0 = Math.ceil(a0 / secSize), n1 = Math.floor(a1 / secSize);
    if (n1 - n0 > SECTION_TICKS) return;
    const track = document.querySelector("#track-sections rect");
    if (!track) return;
    const top = +track.getAttribute("y"), h = +track.getAttribute("height");
    for (let nr = n0; nr <= n1; nr++) {
      if (!sectionRecord(nr) && !sectionRecord(nr - 1)) continue;
      const X = toScreen(p, addrToX(p, nr * secSize));
      const l = document.createElementNS(NS, "line");
      l.setAttribute("x1", X); l.setAttribute("x2", X); l.setAttribute("y1", top); l.setAttribute("y2", top + h);
      l.setAttribute("class", "sec-tick");
      g.appendChild(l);
    }
  }
  function virtDetail() {  // zoomed in: every vmemmap run in view, decoded from the groups
    const p = panels.virt;
    const g = document.getElementById("detail-virt");
    while (g.firstChild) g.removeChild(g.firstChild);
    if (p.u1 - p.u0 > p.geom.width * 0.999 || !runStarts.length) return;
    const o0 = xToAddr(p, p.u0), o1 = xToAddr(p, p.u1);
    let lo = 0, hi = runStarts.length - 1, gi = 0;
    while (lo <= hi) { const m = (lo + hi) >> 1; if (runStarts[m] <= o0) { gi = m; lo = m + 1; } else hi = m - 1; }
    const track = document.querySelector("#track-vmemmap rect");
    const top = +track.getAttribute("y"), h = +track.getAttribute("height");
    const found = [];
    for (; gi < MM.groups.length && runStarts[gi] < o1; gi++) {
      const gr = MM.groups[gi];
      const stride = Number(big(gr[6]));
      const k0 = stride > 0 ? Math.max(0, Math.floor((o0 - runStarts[gi]) / stride) - 1) : 0;
      for (let k = k0; k < gr[0]; k++) {
        const st = runStarts[gi] + k * stride;
        if (st >= o1) break;
        const size = Number(decode(gr, 5, 1, k));
        if (st + size <= o0) continue;
        if (found.length >= DETAIL_RUNS) return;  // too many to draw: the aggregate marks stay
        found.push([st, size, gr]);
      }
    }
    for (const [st, size, gr] of found) {
      const X0 = Math.max(p.geom.left - 50, toScreen(p, addrToX(p, st)));
      const X1 = Math.min(p.geom.left + p.geom.width + 50, toScreen(p, addrToX(p, st + size)));
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", X0.toFixed(2)); r.setAttribute("width", Math.max(1, X1 - X0).toFixed(2));
      r.setAttribute("y", top); r.setAttribute("height", h);
      const hvo = gr[4] === "hvo" || (gr[1] === "pte" && !gr[2]);
      r.setAttribute("class", "vrun detail level-" + gr[1] + (gr[2] ? " rw" : " ro") + (hvo ? " hvo" : ""));
      r.dataset.track = "vmemmap";
      g.appendChild(r);
    }
  }
  function relayout(name) {
    const p = panels[name];
    const lim0 = p.geom.left - 50, lim1 = p.geom.left + p.geom.width + 50;
    const clamp = (X) => Math.max(lim0, Math.min(lim1, X));
    for (const el of p.el.querySelectorAll("rect[data-x0]")) {
      const X0 = clamp(toScreen(p, +el.dataset.x0)), X1 = clamp(toScreen(p, +el.dataset.x1));
      const minw = el.parentNode.tagName === "a" ? 3 : 1;
      el.setAttribute("x", X0.toFixed(2));
      el.setAttribute("width", Math.max(minw, X1 - X0).toFixed(2));
    }
    if (name === "phys") {
      for (const el of p.el.querySelectorAll("path[data-xm0]")) {
        const d = el.dataset;
        const [m0, m1, s0, s1] = [d.xm0, d.xm1, d.xs0, d.xs1].map((v) => clamp(toScreen(p, +v)).toFixed(2));
        const ym = +d.ym, ys = +d.ys, mid = (ym + ys) / 2;
        el.setAttribute("d", `M${m0},${ym} C${m0},${mid} ${s0},${mid} ${s0},${ys} L${s1},${ys} ` +
                             `C${s1},${mid} ${m1},${mid} ${m1},${ym} Z`);
      }
      sectionTicks();
    } else {
      virtDetail();
    }
    ticks(name);
    document.getElementById("zoom").textContent = "  zoom: physical " +
      (panels.phys.geom.width / (panels.phys.u1 - panels.phys.u0)).toFixed(1) + "x, vmemmap " +
      (panels.virt.geom.width / (panels.virt.u1 - panels.virt.u0)).toFixed(1) + "x";
  }
  function setView(name, u0, u1) {
    const p = panels[name];
    const L = p.geom.left, R = p.geom.left + p.geom.width;
    let span = Math.min(R - L, Math.max((R - L) / MAX_ZOOM, u1 - u0));
    u0 = Math.max(L, Math.min(R - span, u0));
    p.u0 = u0; p.u1 = u0 + span;
    relayout(name);
  }
  function zoomTo(name, a0, a1) {  // show addresses [a0, a1) (phys, or VA offsets) with a margin
    const p = panels[name];
    const x0 = addrToX(p, a0), x1 = addrToX(p, a1);
    const pad = Math.max((x1 - x0) * 0.5, p.geom.width / 20000);
    setView(name, x0 - pad, x1 + pad);
  }

  // ---- events ---------------------------------------------------------------------------------
  for (const t of svg.querySelectorAll("title")) {  // one tooltip: ours
    const host = t.parentNode;
    if (host && host.dataset) host.dataset.tip = t.textContent;
    t.remove();
  }
  function showTip(evt, text) {
    if (!text) { tip.style.display = "none"; return; }
    tip.textContent = text;
    tip.style.display = "block";
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(evt.clientX + 14, window.innerWidth - w - 4) + "px";
    tip.style.top = (evt.clientY + 14 + h > window.innerHeight ? evt.clientY - h - 8 : evt.clientY + 14) + "px";
  }
  let drag = null;
  svg.addEventListener("mousemove", (evt) => {
    const pt = svgPoint(evt);
    if (drag) {
      const p = panels[drag.name];
      const du = (pt.x - drag.x) * (p.u1 - p.u0) / p.geom.width;
      setView(drag.name, drag.u0 - du, drag.u1 - du);
      return;
    }
    const el = evt.target.closest ? evt.target.closest("[data-track], [data-tip]") : null;
    if (!el) { showTip(evt, null); return; }
    const track = el.dataset.track;
    if (track === "sections") {
      const p = panels.phys;
      const nr = Math.floor(xToAddr(p, fromScreen(p, pt.x)) / Math.pow(2, data.section_size_bits));
      showTip(evt, (sectionTip(nr) + "\n\n" + (el.dataset.tip || "")).trim());
    } else if (track === "vmemmap") {
      const p = panels.virt;
      showTip(evt, runTip(xToAddr(p, fromScreen(p, pt.x))) || el.dataset.tip);
    } else {
      showTip(evt, el.dataset.tip);
    }
  });
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; drag = null; });
  svg.addEventListener("wheel", (evt) => {
    const pt = svgPoint(evt);
    const name = panelAt(pt.y);
    if (!name) return;
    evt.preventDefault();
    const p = panels[name];
    const c = fromScreen(p, pt.x);
    const f = Math.exp(Math.max(-1, Math.min(1, evt.deltaY * 0.002)));
    setView(name, c - (c - p.u0) * f, c + (p.u1 - c) * f);
  }, { passive: false });
  svg.addEventListener("mousedown", (evt) => {
    const pt = svgPoint(evt);
    const name = panelAt(pt.y);
    if (name && evt.button === 0) drag = { name: name, x: pt.x, u0: panels[name].u0, u1: panels[name].u1 };
  });
  window.addEventListener("mouseup", () => { drag = null; });
  svg.addEventListener("dblclick", (evt) => {
    const name = panelAt(svgPoint(evt).y);
    if (name) setView(name, panels[name].geom.left, panels[name].geom.left + panels[name].geom.width);
  });
  function showFinding(i) {  // zoom each panel onto where finding i is, flash its marks
    const f = data.findings[i];
    const sps = data.memmap.struct_page || 64;
    if (f.va) {
      zoomTo("virt", f.va[0], f.va[1]);
      zoomTo("phys", Math.floor(f.va[0] / sps) * 4096, Math.ceil(f.va[1] / sps) * 4096);
    }
    if (f.phys) zoomTo("phys", f.phys[0], f.phys[1]);
    if (f.section !== null && f.section !== undefined && !f.phys && !f.va) {
      const size = Math.pow(2, data.section_size_bits);
      zoomTo("phys", f.section * size, (f.section + 1) * size);
    }
    for (const el of svg.querySelectorAll("a[href='#finding-" + i + "'] rect")) {
      el.classList.add("selected");
      setTimeout(() => el.classList.remove("selected"), 3000);
    }
  }
  svg.addEventListener("click", (evt) => {  // a finding's text: zoom to where it is
    const t = evt.target.closest("text[id^='finding-']");
    if (!t) return;
    evt.preventDefault();
    showFinding(+t.id.slice("finding-".length));
    svg.scrollIntoView({ block: "start" });
  });

  relayout("phys");
  relayout("virt");
  window.vmemdbgMap = {
    data: data, panels: panels, zoomTo: zoomTo, sectionRecord: sectionRecord, sectionTip: sectionTip,
    runTip: runTip, xToAddr: (name, x) => xToAddr(panels[name], x),
    point: function (name, addr, track) {  // client coordinates of addr (phys, or VA offset) in a track
      const p = panels[name];
      const el = document.querySelector("#track-" + track + " rect");
      const pt = svg.createSVGPoint();
      pt.x = toScreen(p, addrToX(p, addr));
      pt.y = +el.getAttribute("y") + +el.getAttribute("height") / 2;
      const s = pt.matrixTransform(svg.getScreenCTM());
      return { x: s.x, y: s.y };
    },
    sectionPoint: function (nr) {  // the middle of section nr in the sections track
      return this.point("phys", (nr + 0.5) * Math.pow(2, data.section_size_bits), "sections");
    },
  };
})();
