"""A dump filtered by ``makedumpfile -d 31`` (zero, cache, private cache, user and free pages left
out): every view is complete and equals drgn's truth on the full dump of the same boot.

fixtures/filtered/6g-2node-kaslr-d31/vmcore.elf is ``vmemdbg extract`` of ``makedumpfile -c -d 31``
(kdump-compressed) applied to the full dump of the Debian 6.1.0-56 6 GiB two-node KASLR boot;
truth.json is tests/realkernel/drgn_truth.py on the *unfiltered* dump (docs/hostile-dumps.md).
"""

from __future__ import annotations

import json

from conftest import ROOT
from truthcmp import compare, engine_views

from vmemdbg.dump import open_dump
from vmemdbg.kernel import Kernel
from vmemdbg.mmzone import present_sections
from vmemdbg.vmemmap import vmemmap_mapping

FILTERED = ROOT / "fixtures" / "filtered" / "6g-2node-kaslr-d31"


def test_filtered_dump_views_equal_full_dump_truth() -> None:
    truth = json.loads((FILTERED / "truth.json").read_text())
    kernel = Kernel(open_dump(FILTERED / "vmcore.elf"))
    assert compare(engine_views(kernel, truth), truth) == []
    assert kernel.unreadable == [] and present_sections(kernel).unreadable == [] and vmemmap_mapping(kernel).faults == []
    # not a vacuous comparison: two nodes, 48 present sections, every explain address of the truth
    assert [n["nid"] for n in truth["nodes"]] == [0, 1] and truth["summary"]["counts"]["present"] == 48
    assert len(truth["explain"]) >= 5
