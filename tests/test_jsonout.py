"""JSON schema vmemdbg/2 (vmemdbg/jsonout.py, docs/json.md): addresses and raw kernel words are
"0x…" strings, counts, sizes, indexes, pfns and node ids integers, on every view of every fixture."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REAL, cli_json, hexed, real_dump, real_truth, shared_kernel

from vmemdbg import jsonout, views
from vmemdbg.errors import VmemdbgError
from vmemdbg.mmzone import present_sections

#: Every integer key of the engine documents that is NOT an address or a word: counts, sizes in
#: bytes or pages, indexes, pfns, section numbers, node ids, orders, enum values, bit counts.
#: A key missing from both this set and jsonout.HEX_KEYS fails test_every_integer_is_classified.
INTEGER_KEYS = frozenset({
    # summary
    "pgtable_levels", "page_size", "struct_page_size", "section_size_bits", "max_physmem_bits",
    "nr_mem_sections", "mem_section_size", "sections_per_root", "nr_section_roots", "roots_present",
    "usage_size", "nodes_shift", "present", "valid", "online", "early", "highest_present",
    "mapped_bytes", "pmd_leaves", "pte_leaves", "pud_leaves", "pagetable_bytes", "memmap_bytes",
    "nid", "start_pfn", "spanned_pages",
    # sections
    "nr", "root",
    # vmemmap
    "end_pfn", "leaves", "anomalies", "notes", "node_ranges", "struct_page",
    "head_pfn", "order", "vmemmap_pages", "tails", "tails_remapped", "saved_pages", "saved_bytes",
    "folios", "violations", "boot", "hotplug", "self_hosted", "hvo",
    "nr_memmap_pages", "nr_memmap_boot_pages", "expected_pages", "expected_boot_pages", "ranges",
    # memory-blocks
    "block_size", "phys_index", "sections",
    # explain
    "pfn", "page_offset", "subsection", "pageblock", "index", "page_nid",
    # memblock, e820
    "cnt", "max", "total_size", "size", "value", "type", "max_numnodes",
    # describe, check
    "hotplug_sections", "differences", "unexplained", "expected_leaves", "dump_leaves", "expected_tables",
    "expected_bytes", "actual_bytes", "explained_bytes", "section",
    # extract, map
    "pages", "bytes", "section_runs", "nodes", "reserved", "e820", "memmap_groups", "findings",
})

CASES = sorted({str(p.parent.relative_to(REAL)) for p in REAL.glob("**/vmcore.elf*")})


def documents(case: str) -> Iterator[dict]:
    """Every view document the engine makes for a fixture (those its kernel supports)."""
    k = shared_kernel(case)
    yield views.audit(k, with_migratetypes=True)
    yield views.memory_blocks(k)
    yield views.explain(k, f"pfn:{int(present_sections(k).nr[-1]) << k.pfn_section_shift:#x}")
    for view in (views.describe, views.check):
        try:
            yield view(k)
        except VmemdbgError:  # kernels without a simulator profile (5.10, 7.2)
            pass


def integers(v: Any, keys: frozenset[str], key: str = "", hexed: bool = False) -> Iterator[tuple[str, bool]]:
    """(key, declared an address) of every integer in ``v``, by jsonout's rules for containers."""
    if isinstance(v, dict):
        for k, x in v.items():
            if k not in jsonout.VERBATIM_KEYS:
                child = k in jsonout.HEX_MAPS if isinstance(x, dict) else hexed or k in keys
                yield from integers(x, jsonout.HEX_KEYS_IN.get(k, jsonout.HEX_KEYS), k, child)
    elif isinstance(v, list):
        for x in v:
            yield from integers(x, keys, key, hexed)
    elif isinstance(v, int) and not isinstance(v, bool):
        yield key, hexed


@pytest.mark.parametrize("case", CASES)
def test_every_integer_is_classified(case: str) -> None:
    """Each integer key is declared an address/word (jsonout.HEX_KEYS) or a count (INTEGER_KEYS),
    never both; the JSON text reads back to the engine's document exactly."""
    assert not (jsonout.HEX_KEYS & INTEGER_KEYS) - {"section"}  # "section": see HEX_KEYS_IN
    for doc in documents(case):
        unclassified = {k for k, hexed_ in integers(doc, jsonout.HEX_KEYS) if not hexed_ and k not in INTEGER_KEYS}
        assert unclassified == set(), (doc["command"], unclassified)
        text = jsonout.dumps(doc)
        assert jsonout.decode(json.loads(text)) == json.loads(json.dumps(doc)), doc["command"]


def test_addresses_are_strings_counts_are_integers() -> None:
    """The issue's jq example: section 40's mem_map 0xfffff1d845000000 (drgn's truth) stays exact."""
    truth = real_truth("6g-2node-kaslr")
    doc = json.loads(jsonout.dumps(views.sections(shared_kernel("6g-2node-kaslr"))))
    s40 = next(s for s in doc["sections"] if s["nr"] == 40)
    assert s40["mem_map"] == "0xfffff1d845000000" == hexed(next(t for t in truth["sections"] if t["nr"] == 40)["mem_map"])
    assert s40["start_pfn"] == 40 << 15 and s40["nid"] == 1 and s40["root"] == 0
    assert s40["pageblock_flags"] and all(re.fullmatch(r"0x[0-9a-f]+", w) for w in s40["pageblock_flags"])
    assert s40["flags"] == ["MARKED_PRESENT", "HAS_MEM_MAP", "IS_ONLINE", "IS_EARLY"]
    assert doc["schema"] == "vmemdbg/2"
    summary = cli_json("summary", real_dump("6g-2node-kaslr"))
    assert summary["kernel"]["kaslr_offset"] == hexed(truth["summary"]["kernel"]["kaslr_offset"]) != "0x0"
    assert summary["kernel"]["page_size"] == 4096 and summary["counts"]["present"] == 48
    assert summary["memmap"]["mapped_bytes"] == 48 << 21


def test_check_differences_name_sections_by_number() -> None:
    """In a check difference ``section`` is a section number (HEX_KEYS_IN), ``va``/``phys`` addresses."""
    doc = {"schema": jsonout.SCHEMA, "command": "check", "differences": [
        {"kind": "usage", "va": [0xffffea0000000000, 0xffffea0000200000], "phys": None, "section": 40}],
        "sections": [{"nr": 40, "section": 0xff11000000001000}]}
    back = json.loads(jsonout.dumps(doc))
    assert back["differences"][0] == {"kind": "usage", "va": ["0xffffea0000000000", "0xffffea0000200000"],
                                      "phys": None, "section": 40}
    assert back["sections"][0] == {"nr": 40, "section": "0xff11000000001000"}


def test_describe_machine_is_written_as_parsed() -> None:
    """The machine TOML's own fields (struct offsets, node ids) are not converted."""
    doc = views.describe(shared_kernel("6g-2node-kaslr"))
    back = json.loads(jsonout.dumps(doc))
    assert back["machine"] == json.loads(json.dumps(doc["machine"]))
    assert back["node_data"] == {n: hexed(p) for n, p in doc["node_data"].items()}


def test_columnwise_tables_equal_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Big tables are encoded column by column in batches; the text is the same as row by row,
    including rows with nulls, booleans, lists, nested objects and other keys."""
    rows: list[dict] = [{"nr": i, "section": 0xff11000000000000 + 16 * i, "usage": None if i % 3 else i << 8,
                         "flags": ["MARKED_PRESENT"] * (i % 3), "pageblock_flags": [i, 2 * i, 0, 1 << 63],
                         "nid": i % 2 or None, "valid": bool(i % 2), "name": f"s\"{i}"} for i in range(300)]
    doc = {"sections": rows, "runs": rows[:5] + [{"nr": 1, "extra": {"phys": 4096}}] + rows[:200]}
    default = jsonout.dumps(doc)
    monkeypatch.setattr(jsonout, "_COLUMNAR_MIN", 10 ** 9)
    assert jsonout.dumps(doc) == default
    monkeypatch.setattr(jsonout, "_COLUMNAR_MIN", 1)
    monkeypatch.setattr(jsonout, "_ROWS_PER_BATCH", 7)
    assert jsonout.dumps(doc) == default
    back = json.loads(default)
    assert back["sections"][4] == {"nr": 4, "section": "0xff11000000000040", "usage": None, "flags": ["MARKED_PRESENT"],
                                   "pageblock_flags": ["0x4", "0x8", "0x0", "0x8000000000000000"], "nid": None,
                                   "valid": False, "name": 's"4'}
    assert back["runs"][5] == {"nr": 1, "extra": {"phys": "0x1000"}}
    lines = default.splitlines()
    assert lines[1] == ' "sections": [' and lines[2].startswith('  {"nr": 0, "section": "0xff11000000000000", ')


def test_stream_writes_dumps_and_a_newline() -> None:
    doc = views.audit(shared_kernel("1000m"))
    buf = io.StringIO()
    jsonout.stream(doc, buf)
    assert buf.getvalue() == jsonout.dumps(doc) + "\n"


def test_cli_json_is_jsonout(tmp_path: Path) -> None:
    """The CLI prints exactly jsonout's text: one section per line, indented one space per level."""
    doc = cli_json("sections", real_dump("1000m"), "--nr", "3")
    assert jsonout.dumps(doc) == jsonout.dumps(jsonout.decode(doc))
    text = jsonout.dumps(views.sections(shared_kernel("1000m"), nr_range=(3, 3)))
    assert '\n  {"nr": 3, "root": 0, "section": "0xff1100003e7de030", ' in text


def test_word_reads_both_schemas() -> None:
    assert jsonout.word(0xffd4000000000000) == jsonout.word("0xffd4000000000000") == 0xffd4000000000000
    for bad in (True, "12", "0xzz", None, [1]):
        with pytest.raises(ValueError):
            jsonout.word(bad)  # type: ignore[arg-type]
