"""JSON text of the engine documents, schema ``vmemdbg/2`` (docs/json.md): the one place where the
plain-int documents of :mod:`vmemdbg.views` become JSON.

The rule a ``jq`` user can predict: **an address or a raw kernel word is a ``"0x…"`` string** (lowercase
hex; ``"-0x…"`` for the one signed difference, a ``phys_base`` of a kernel loaded below its link
address); **counts, sizes, indexes, section numbers, pfns and node ids are JSON integers.** Which keys hold
addresses or words is declared here, by name (:data:`HEX_KEYS`), with the one key whose meaning
depends on where it is (``section``: a ``struct mem_section *`` in a section row, a section number in a
``check`` difference) declared per container (:data:`HEX_KEYS_IN`). tests/test_jsonout.py checks that
every integer the views produce on the committed fixtures is declared one way or the other.

Layout: objects nest with one space of indentation per level (as ``json.dumps(doc, indent=1)``), but
an element of an array that holds only scalars and arrays of scalars is written on one line: a
section, a vmemmap run, a memblock region is one line each, which ``grep`` can find. Big tables (the
half million sections of a 64 TiB machine) are encoded column by column and written in batches, so
that the document never exists as one string (:func:`stream`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import islice
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

#: The schema of every document the front ends print. /1 printed every integer as a JSON number.
SCHEMA = "vmemdbg/2"

#: Keys whose integer values (or whose arrays' integer elements) are addresses or raw kernel words,
#: printed as "0x…" strings.
HEX_KEYS: frozenset[str] = frozenset({
    # summary: kernel bases and the roots array (kaslr_offset and phys_base are address differences)
    "kaslr_offset", "phys_base", "page_offset_base", "vmemmap_base", "vmalloc_base", "init_top_pgt",
    "sme_mask", "roots_addr", "pgdat",
    # sections: struct mem_section *, section_mem_map (raw and decoded), usage and its bitmaps
    "section", "coded_mem_map", "map_mask", "mem_map", "usage", "subsection_map", "pageblock_flags",
    # vmemmap: runs and findings [start, end) in the vmemmap, backing frames, HVO pages
    "start", "end", "phys", "va", "head_page", "shared_page_phys", "shared_page_va",
    # explain: addresses of the pfn, its struct page, the page-table walk
    "direct_map", "page", "page_phys", "table", "entry",
    # memblock and e820: struct addresses, region bases, the flags word, limits
    "addr", "base", "flags", "current_limit", "memblock_memory", "regions_addr",
})

#: Keys whose value is an object mapping names to addresses (describe: NODE_DATA(nid) per node id).
HEX_MAPS: frozenset[str] = frozenset({"node_data"})

#: Containers whose elements use another key set: the key of an array (its object elements) ->
#: the hex keys of those objects. A ``check`` difference names a section by number.
HEX_KEYS_IN: dict[str, frozenset[str]] = {"differences": frozenset({"va", "phys"})}

#: Keys whose value is written as it is, never converted: the parsed machine TOML of ``describe``
#: (docs/machine-format.md), whose own addresses are already strings.
VERBATIM_KEYS: frozenset[str] = frozenset({"machine"})

_INDENT = " "
_ROWS_PER_BATCH = 1 << 14   # rows of a big table encoded (and written) at a time
_COLUMNAR_MIN = 64          # tables at least this long are encoded column by column


def dumps(doc: Any) -> str:
    """The JSON text of ``doc`` (no final newline, like :func:`json.dumps`)."""
    return "".join(_encode(doc, HEX_KEYS, 0))


def stream(doc: Any, file: TextIO) -> None:
    """Write the JSON text of ``doc`` and a final newline to ``file``, in batches of about 1 MiB."""
    batch: list[str] = []
    size = 0
    for chunk in _encode(doc, HEX_KEYS, 0):
        batch.append(chunk)
        size += len(chunk)
        if size >= 1 << 20:
            file.write("".join(batch))
            batch.clear()
            size = 0
    batch.append("\n")
    file.write("".join(batch))


def word(value: int | str) -> int:
    """An address or word as read back from either schema: an integer (/1) or a "0x…" string (/2)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an address")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(("0x", "-0x")):
        return int(value, 16)
    raise ValueError(f"{value!r} is not an integer or a 0x hex string")


def decode(doc: Any) -> Any:
    """A parsed document with every "0x…" string of a declared address key turned back into an
    integer: the plain-int engine document, for readers of both /1 (unchanged) and /2."""
    return _decode(doc, HEX_KEYS, False)


def _decode(v: Any, keys: frozenset[str], hexed: bool) -> Any:
    if isinstance(v, dict):
        return {k: x if k in VERBATIM_KEYS else _decode(x, HEX_KEYS_IN.get(k, HEX_KEYS), _hex_child(k, x, keys, hexed))
                for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x, keys, hexed) for x in v]
    if hexed and isinstance(v, str) and v.startswith(("0x", "-0x")):
        return int(v, 16)
    return v


# -- encoding -------------------------------------------------------------------------------------------

_NULL = "null"


def _hex_child(key: str, value: Any, keys: frozenset[str], in_map: bool) -> bool:
    """Whether the integers of ``value``, the member ``key`` of an object whose hex keys are ``keys``
    (``in_map``: an object of :data:`HEX_MAPS`), are addresses; for an object: whether it is a map."""
    return key in HEX_MAPS if isinstance(value, dict) else in_map or key in keys


def _scalar(v: Any, hexed: bool) -> str:
    if v is None:
        return _NULL
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return f'"{v:#x}"' if hexed else str(v)
    if isinstance(v, str):
        return _quote(v)
    if isinstance(v, float):
        return json.dumps(v)
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def _is_flat(v: Any) -> bool:
    """A scalar, or an array of scalars."""
    if isinstance(v, (list, tuple)):
        return not any(isinstance(x, (list, tuple, dict)) for x in v)
    return not isinstance(v, dict)


def _inline(v: Any, hexed: bool) -> str:
    """A flat value on one line."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join([_scalar(x, hexed) for x in v]) + "]"
    return _scalar(v, hexed)


def _row(obj: dict[str, Any], keys: frozenset[str]) -> str:
    """An object of flat values on one line."""
    return "{" + ", ".join([f"{_quote(str(k))}: {_inline(v, k in keys)}" for k, v in obj.items()]) + "}"


def _encode(v: Any, keys: frozenset[str], depth: int, hexed: bool = False, verbatim: bool = False) -> Iterator[str]:
    """JSON text of ``v`` at nesting ``depth``; ``hexed``: its integers are addresses or words (for
    an object: its values are); ``keys``: the hex keys of the objects in it."""
    if isinstance(v, dict):
        if not v:
            yield "{}"
            return
        inner = "\n" + _INDENT * (depth + 1)
        first = True
        for k, x in v.items():
            yield ("{" if first else ",") + inner + _quote(str(k)) + ": "
            first = False
            if verbatim or k in VERBATIM_KEYS:
                yield from _encode(x, frozenset(), depth + 1, verbatim=True)
            else:
                yield from _encode(x, HEX_KEYS_IN.get(k, HEX_KEYS), depth + 1, _hex_child(k, x, keys, hexed))
        yield "\n" + _INDENT * depth + "}"
    elif isinstance(v, (list, tuple)):
        if _is_flat(v):
            yield _inline(v, hexed)
        elif all(type(x) is dict for x in v):
            yield from _objects(v, keys, depth, verbatim)
        else:
            inner = "\n" + _INDENT * (depth + 1)
            for i, x in enumerate(v):
                yield ("[" if i == 0 else ",") + inner
                yield _inline(x, hexed) if _is_flat(x) else "".join(_encode(x, keys, depth + 1, hexed, verbatim))
            yield "\n" + _INDENT * depth + "]"
    else:
        yield _scalar(v, hexed)


def _objects(rows: Sequence[dict[str, Any]], keys: frozenset[str], depth: int, verbatim: bool) -> Iterator[str]:
    """A non-empty array of objects: one line per object of flat values, big uniform tables column-wise."""
    inner = ",\n" + _INDENT * (depth + 1)
    use = frozenset() if verbatim else keys
    first = rows[0].keys()
    if (len(rows) >= _COLUMNAR_MIN and not verbatim and set(map(len, rows)) == {len(first)}
            and all(_is_flat(x) for x in rows[0].values())):
        names = list(first)
        labels = [_quote(str(k)).replace("%", "%%") + ": " for k in names]
        it = iter(rows)
        sep = "[\n" + _INDENT * (depth + 1)
        while True:
            block = list(islice(it, _ROWS_PER_BATCH))
            if not block:
                break
            try:
                cols = [c for c in (_column([r[k] for r in block], k in use) for k in names) if c is not None]
            except KeyError:  # objects with other keys
                cols = []
            if len(cols) == len(names):
                template = "{" + ", ".join(label + slot for label, (_, slot) in zip(labels, cols)) + "}"
                lines = [template % t for t in zip(*[texts for texts, _ in cols])]
            else:  # a nested value or another key somewhere: row by row
                lines = [_row(r, use) if all(_is_flat(x) for x in r.values())
                         else "".join(_encode(r, use, depth + 1, verbatim=verbatim)) for r in block]
            yield sep + inner.join(lines)
            sep = inner
        yield "\n" + _INDENT * depth + "]"
        return
    for i, r in enumerate(rows):
        yield ("[\n" + _INDENT * (depth + 1)) if i == 0 else inner
        if all(_is_flat(x) for x in r.values()):
            yield _row(r, use)
        else:
            yield from _encode(r, keys, depth + 1, verbatim=verbatim)
    yield "\n" + _INDENT * depth + "]"


def _column(values: list[Any], hexed: bool) -> tuple[list[str], str] | None:
    """The JSON text of each value of one column and the template slot that holds it (``"%s"`` when
    the texts are unquoted hex), or None when a value is not flat."""
    types = set(map(type, values))
    if types == {int}:
        return (list(map(hex, values)), '"%s"') if hexed else (list(map(str, values)), "%s")
    if types <= {int, type(None)}:
        return ([_NULL if x is None else f'"{x:#x}"' for x in values] if hexed else
                [_NULL if x is None else str(x) for x in values]), "%s"
    if types == {str}:
        return list(map(_quote, values)), "%s"
    if types == {list} and len(set(map(len, values))) == 1:  # e.g. pageblock_flags: 4 words per row
        width = len(values[0])
        flat = [x for v in values for x in v]
        kinds = set(map(type, flat))
        if width and kinds in ({int}, {str}):
            texts = map(_quote, flat) if kinds == {str} else map(hex, flat) if hexed else map(str, flat)
            item = '"%s"' if hexed and kinds == {int} else "%s"
            row = "[" + ", ".join([item] * width) + "]"
            return [row % t for t in zip(*[iter(texts)] * width)], "%s"
    if types <= {bool, type(None), str, int, float, list, tuple}:
        memo: dict[Any, str] = {}
        out = []
        for x in values:
            key = (type(x), tuple(x)) if isinstance(x, (list, tuple)) else (type(x), x)
            try:
                s = memo.get(key)
            except TypeError:  # an unhashable element: not flat
                return None
            if s is None:
                if not _is_flat(x):
                    return None
                s = memo[key] = _inline(x, hexed)
            out.append(s)
        return out, "%s"
    return None
