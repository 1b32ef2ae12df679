"""Figures of docs/map.md for a big machine: `vmemdbg map` size, wall time and peak RSS, and the
page in Debian's headless Chromium (load time, zoom, a hovered section against the engine).

    python3 bench/map_bench.py [--machine fixtures/machines/64t-8node.toml] [--out /tmp/map-bench]

Not a test: it times things. Needs /usr/bin/chromium and the `playwright` package (the test extra).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and this child's peak RSS (KiB) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machine", default=str(ROOT / "fixtures" / "machines" / "64t-8node.toml"))
    ap.add_argument("--out", default="/tmp/map-bench")
    ap.add_argument("--screenshot", metavar="PNG", help="also save the map at zoom 1, hovering that section")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    elf = out / (Path(args.machine).stem + ".elf")
    vmemdbg = [sys.executable, "-m", "vmemdbg"]
    if not elf.exists():
        run([*vmemdbg, "simulate", args.machine, "-o", str(elf)])
    for ext in ("html", "svg"):
        wall, rss = run([*vmemdbg, "map", str(elf), "-o", str(out / f"map.{ext}")])
        print(f"map.{ext}: {(out / f'map.{ext}').stat().st_size / 2**20:.2f} MiB, {wall:.1f} s, peak RSS {rss / 1024:.0f} MiB")

    from playwright.sync_api import sync_playwright

    from vmemdbg import views
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel

    secs = views.sections(Kernel(open_dump(str(elf))))["sections"]
    s = secs[len(secs) * 3 // 5]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1560, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t = time.perf_counter()
        page.goto((out / "map.html").as_uri())
        page.wait_for_function("window.vmemdbgMap !== undefined")
        print(f"Chromium: script ready after {time.perf_counter() - t:.2f} s, errors {errors}")
        if args.screenshot:
            pt = page.evaluate(f"window.vmemdbgMap.sectionPoint({s['nr']})")
            page.mouse.move(pt["x"], pt["y"])
            page.locator("#vmemdbg-map").screenshot(path=args.screenshot)
        t = time.perf_counter()
        page.evaluate(f"window.vmemdbgMap.zoomTo('phys', {s['nr'] << 27}, {(s['nr'] + 3) << 27})")
        print(f"zoom to 3 sections: {(time.perf_counter() - t) * 1000:.0f} ms")
        pt = page.evaluate(f"window.vmemdbgMap.sectionPoint({s['nr']})")
        page.mouse.move(pt["x"], pt["y"])
        tip = page.inner_text("#tip")
        same = f"mem_map        {s['mem_map']:#x}" in tip and f"mem_section    {s['section']:#x}" in tip
        print(f"hover section {s['nr']}: {'equals' if same else 'DIFFERS FROM'} views.sections")
        t = time.perf_counter()
        for _ in range(20):
            page.mouse.wheel(0, -120)
        page.evaluate("0")
        print(f"20 wheel steps: {(time.perf_counter() - t) * 1000 / 20:.0f} ms each (incl. the driver round trip)")
        browser.close()


if __name__ == "__main__":
    main()
