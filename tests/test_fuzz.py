"""The fast subset of the fuzz run (tests/fuzz/, docs/hostile-dumps.md): a fixed seed, a few hundred
damaged dumps of the committed real fixtures and two simulated machines, each run as a bounded
child process (10 s, RSS from wait4, address space limited to the runner's + 1 GiB) and
classified. None may end in an internal error, a traceback, a hang, a memory blow-up, a crash or
an exit-0 answer holding a value x86-64 does not allow.
"""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
import runner

#: Dumps in the CI subset (about 20 s on 2 idle cores) and its fixed seed.
COUNT = 150
SEED = 12


def test_fuzz_subset(tmp_path) -> None:
    s = runner.run(COUNT, SEED, jobs=2, timeout=10.0, exec_mode=False, save=None, results=None, progress=False,
                   tmp=tmp_path)
    assert s["dumps"] == COUNT
    bad = {k: v for k, v in s["outcomes"].items() if k not in ("result", "error") and v}
    assert not bad, (bad, [(f["index"], f["label"], f["commands"]) for f in s["failures"][:5]])
    # the subset exercises both kinds of ending and every mutation family
    assert s["outcomes"]["result"] > COUNT // 4 and s["outcomes"]["error"] > COUNT // 10
    assert set(s["by_family"]) >= {"truncate", "elf_header", "program_header", "note", "vmcoreinfo", "page_tables",
                                   "kernel_data", "kernel_area"}
    assert s["max_rss_mib"] < 1024
