"""memblock trust verdicts: the real fixtures are post-boot (discarded, static arrays: frozen);
a doubled array after discard is reported dangling."""

from __future__ import annotations

from pathlib import Path

from conftest import real_dump, real_truth, rewrite_dump, shared_kernel

from vmemdbg import views
from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel


def test_post_boot_memblock_is_frozen(real_case: str) -> None:
    doc = views.memblock(shared_kernel(real_case))
    assert doc["discarded"] is True and doc["memblock_memory"] == 0
    assert doc["system_state"] == {"value": 3, "name": "SYSTEM_RUNNING"}
    assert doc["memory"]["trust"] == doc["reserved"]["trust"] == "frozen"
    assert doc["memory"]["regions"] == [
        dict(r, flag_names=[]) for r in real_truth(real_case)["memblock"]["memory"]["regions"]]


def test_doubled_array_after_discard_is_dangling(tmp_path: Path) -> None:
    k = shared_kernel("6g-2node-kaslr")
    mb_phys = k.kimg_to_phys(k.symbol("memblock"))
    fake_regions = 0xFFFF8CE1FFF00000  # a direct-map pointer that is not the static array
    f = rewrite_dump(real_dump("6g-2node-kaslr"), tmp_path / "doubled.elf",
                     patch={mb_phys + 56 + 24: fake_regions.to_bytes(8, "little")})
    doc = views.memblock(Kernel(open_dump(f)))
    assert doc["reserved"]["trust"] == "dangling"
    assert doc["reserved"]["regions"] is None and any("memblock regions" in u for u in doc["unreadable"])
    assert doc["memory"]["trust"] == "frozen"
