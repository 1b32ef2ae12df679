"""Looking names up in the dump's kallsyms without decoding the table (vmemdbg.kallsyms.Kallsyms).

The reference is the full decoding, which tests/test_realkernel_versions.py checks against the
-dbg System.map, drgn's own kallsyms loader and a scalar decoder. Every committed fixture of a
6.0+ kernel (Debian 6.1, 6.12, 7.2; the three kallsyms layouts: seqs_of_names between the markers
and the token table, nothing between them, 4-byte alignment) and a simulated one are covered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_REAL_CASES, real_dump

from vmemdbg.dump import open_dump
from vmemdbg.kallsyms import Kallsyms, _sequential_records, read_kallsyms, record_starts
from vmemdbg.kernel import Kernel

CASES = ALL_REAL_CASES + ("6.1-hvo", "6.12-hvo", "sid-7.2/1000m", "sid-7.2/6g-2node-kaslr")


def _tables(kernel: Kernel) -> tuple[Kallsyms, dict[str, int], object]:
    read = lambda va, n: kernel.read_phys(kernel.kimg_to_phys(va), n)  # noqa: E731
    return Kallsyms(kernel.info, read), read_kallsyms(kernel.info, read).first_addresses(), read


@pytest.mark.parametrize("case", CASES)
def test_every_name_looked_up_equals_the_full_decoding(case: str) -> None:
    kernel = Kernel(open_dump(real_dump(case)))
    lazy, full, read = _tables(kernel)
    assert lazy.records_from == "kallsyms_markers"
    # the markers give exactly the record boundaries of a sequential pass over the stream
    _, starts, lens = _sequential_records(read, kernel.info.symbol("kallsyms_names"), lazy.num)
    assert np.array_equal(starts, lazy._rec_start) and np.array_equal(lens, lazy._rec_len)
    table = read_kallsyms(kernel.info, read)
    assert len(full) > 80_000
    # what every lookup relies on, for every record: its expanded length and its first token
    # select it as a candidate for its own name
    assert lazy._exp_len.tolist() == [1 + len(n) for n in table.names]
    tokens = lazy._tokens
    assert all(n.startswith(tokens[c][1:]) for n, c in zip(table.names, lazy._first_code.tolist()))
    for name in list(full)[::97] + ["_stext", "page_offset_base", "vmemmap_base", "memblock"]:
        assert lazy.address(name) == full[name], name  # repeated (static) names: the first in kernel order
    assert lazy.address("no_such_symbol_anywhere") is None and lazy.address("") is None
    assert lazy.address("page_offset_bas") is None and lazy.address("page_offset_base_") is None
    assert kernel.symbol("page_offset_base") == full["page_offset_base"]


def test_simulated_kallsyms_is_looked_up_through_its_markers(tmp_path: Path) -> None:
    from vmemdbg.sim import simulate

    machine = Path(__file__).resolve().parent.parent / "fixtures" / "machines" / "kaslr-3node-5level.toml"
    r = simulate(machine, tmp_path / "core.elf")
    kernel = Kernel(open_dump(str(r.fixture)))
    lazy, full, _ = _tables(kernel)
    assert lazy.records_from == "kallsyms_markers"
    assert all(lazy.address(n) == a for n, a in list(full.items())[::7])
    assert kernel.symbol("vmemmap_populate") == r.debuginfo.addr("vmemmap_populate") + r.machine.layout.kernel_offset


def test_markers_that_disagree_with_the_stream_are_not_used() -> None:
    kernel = Kernel(open_dump(real_dump("1000m")))
    lazy, _, read = _tables(kernel)
    data, num = lazy._data, lazy.num
    names = kernel.info.symbol("kallsyms_names")
    markers = np.frombuffer(read(names + data.size, 4 * ((num + 255) // 256)), dtype="<u4").astype(np.int64)
    assert record_starts(data, num, markers) is not None
    for bad in (markers + 1, np.roll(markers, 1), markers[:-1]):
        assert record_starts(data, num, bad) is None
    moved = markers.copy()
    moved[5] += 1  # one block would start in the middle of a record
    assert record_starts(data, num, moved) is None
    assert record_starts(data[:-8], num, markers) is None  # the last block runs past the stream


def test_fallback_to_a_sequential_pass_when_the_markers_are_not_in_the_dump() -> None:
    kernel = Kernel(open_dump(real_dump("1000m")))
    good, full, read = _tables(kernel)
    from vmemdbg.errors import MemoryFault

    first_marker = kernel.info.symbol("kallsyms_names") + good._data.size

    def no_markers(va: int, n: int) -> bytes:
        if va <= first_marker < va + n:
            raise MemoryFault(va, n)
        return read(va, n)

    lazy = Kallsyms(kernel.info, no_markers)
    assert lazy.records_from == "a sequential pass over kallsyms_names"
    assert all(lazy.address(n) == full[n] for n in list(full)[::50])
