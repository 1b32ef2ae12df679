"""``vmemdbg extract``: every view on the minimal dump equals the view on the original.

The originals here are simulated fixtures (the real-kernel originals are 1-6 GiB and live outside
the repo; tests/realkernel/make_fixtures.py checks those)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from vmemdbg import views
from vmemdbg.dump import open_dump
from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.extract import extract
from vmemdbg.kernel import Kernel
from vmemdbg.sim import simulate


@pytest.mark.parametrize("machine", ["q35-2node-8g", "kaslr-3node-5level"])
def test_extract_preserves_every_view(tmp_path: Path, machine: str) -> None:
    r = simulate(ROOT / "fixtures" / "machines" / f"{machine}.toml", tmp_path / "full.elf")
    keep = ["pfn:0x1000", f"pfn:{70 << 15:#x}"]
    st = extract(r.fixture, tmp_path / "small.elf", explain_addrs=keep)
    full, small = Kernel(open_dump(r.fixture)), Kernel(open_dump(tmp_path / "small.elf"))
    assert views.all_views(small) == views.all_views(full)
    assert [views.explain(small, a) for a in keep] == [views.explain(full, a) for a in keep]
    assert st["bytes"] < (tmp_path / "full.elf").stat().st_size
    # only pages the views read are kept: far fewer than the original holds
    assert st["pages"] < sum(e - s for s, e in ElfCoreSource(r.fixture).ranges()) // 4096
