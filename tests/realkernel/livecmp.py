"""Compare vmemdbg's views of a live kernel (``/proc/kcore``, inside the guest) with the same
views of a dump of that guest taken right after (live.py; the offline test
tests/test_live_kernel.py re-runs it on the committed outputs and extracted dump).

Every leaf value of every JSON document is compared, addresses as integers whichever schema wrote
them (documents recorded before vmemdbg/2 hold integers; :func:`vmemdbg.jsonout.decode`). A difference is a *problem* unless its path
is in :data:`MAY_DIFFER`, the fields that can legitimately change between the two moments or
between two front ends, each with the reason. Keys that exist only on the dump side (computed by a
newer engine than the one that ran in the guest) are counted as ``added`` and not compared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vmemdbg.jsonout import decode

#: CLI commands run on both sides: output name -> vmemdbg arguments (``DUMP`` is inserted after
#: the view). The explain addresses come from the live run (:func:`explain_inputs`).
CLI_COMMANDS: dict[str, list[str]] = {
    "cli-audit-json": ["audit", "--json"],
    "cli-summary-json": ["summary", "--json"],
    "cli-sections-json": ["sections", "--json"],
    "cli-vmemmap-json": ["vmemmap", "--json"],
    "cli-memblock-json": ["memblock", "--json"],
    "cli-e820-json": ["e820", "--json"],
    "cli-sections-v-json": ["sections", "-v", "--json"],
    "cli-explain-json": ["explain", "--json"],
}

#: What each live document is compared with: live name -> [(sub-key of the live doc or None,
#: dump document name, sub-key of it or None)]. drgn-api holds four views in one document, and
#: the vmemmap page-table pages (the engine's ``vmemmap_mapping(kernel).leaves.tables``).
PAIRS: dict[str, list[tuple[str | None, str, str | None]]] = {
    **{name: [(None, name, None)] for name in CLI_COMMANDS},
    **{f"{p}-api": [("summary", "cli-summary-json", None), ("sections", "cli-sections-json", None),
                    ("vmemmap", "cli-vmemmap-json", None), ("explain", "cli-explain-json", "results"),
                    ("table_pages", "table_pages", None)]
       for p in ("drgn", "drgn-nodebug")},
    **{f"{p}-cmd-audit-json": [(None, "cli-audit-json", None)] for p in ("drgn", "drgn-nodebug")},
}

#: Text outputs (lines) of the guest compared with the dump's ``audit`` text: the CLI's, and the
#: drgn command's through ``run_command``. The interactive ``%vmemdbg`` session (``drgn-repl``) is
#: compared command by command.
TEXT_PAIRS: dict[str, str] = {"cli-audit-text": "cli-audit.out", "drgn-cmd-audit-text": "drgn-cmd-audit.out"}
PAIRS.update({name: [(None, "text audit", None)] for name in TEXT_PAIRS})

#: Paths (regular expressions over ``a.b[3].c``) whose values may differ, and why.
MAY_DIFFER: tuple[tuple[str, str], ...] = (
    (r"(^|\.)sections\[\d+\]\.(pageblock_flags|migratetypes)",
     "runtime: the pageblock bits in mem_section_usage change while the kernel runs "
     "(set_pageblock_migratetype() when the allocator steals a pageblock for another migratetype, "
     "mm/page_alloc.c steal_suitable_fallback(); PB_migrate_skip set and cleared by compaction)"),
    (r"(^|\.)(flags_reason|usage_reason|reason|origin)$",
     "front end: with the -dbg vmlinux, drgn's DWARF settles the layout, so the reason text names "
     "DWARF instead of the kernel-version rule the CLI uses (the layout itself is compared)"),
    (r"(^|\.)schema$",
     "encoding: a guest run recorded before vmemdbg/2 printed addresses as JSON integers, today's dump "
     "side prints \"0x…\" strings; both are compared as the integers they write (docs/json.md)"),
    (r"(^|\.)symbols$",
     "front end: drgn hands the engine the -dbg vmlinux's symbol table, the CLI decodes the dump's "
     "kallsyms; summary.symbols names that source (the addresses themselves are compared); the live "
     "captures also predate its count of kallsyms_num_syms entries (they counted distinct names)"),
)


#: Text spellings a guest run recorded before vmemdbg/2 printed, and today's: Python reprs became
#: words, "no node" became "-" (docs/json.md, vmemdbg/render.py). Applied to the live text of a run
#: whose documents say vmemdbg/1, so that the values in the text are still compared line by line.
RESPELLED_V1: tuple[tuple[str, str], ...] = (
    (r"^memblock: discarded=True \(", "memblock: discarded ("),
    (r"^memblock: discarded=False \(", "memblock: not discarded ("),
    (r"^memblock: discarded=None \(", "memblock: discard state unknown ("),
    (r"  pfn_valid True$", "  pfn_valid: yes"),
    (r"  pfn_valid False$", "  pfn_valid: no"),
    (r"  node \?$", "  node -"),
    (r" on node \?$", " on node -"),
)


def respell_v1(docs: dict[str, Any]) -> dict[str, Any]:
    """``docs`` (live documents) with :data:`RESPELLED_V1` applied to their text, if they were
    written by a vmemdbg/1 engine."""
    if docs.get("cli-audit-json", {}).get("schema") != "vmemdbg/1":
        return docs

    def lines(text: list[str]) -> list[str]:
        out = []
        for line in text:
            for old, new in RESPELLED_V1:
                line = re.sub(old, new, line)
            out.append(line)
        return out

    out = {k: lines(v) if k in TEXT_PAIRS else v for k, v in docs.items()}
    if "drgn-repl" in docs:
        out["drgn-repl"] = {cmd: lines(v) for cmd, v in docs["drgn-repl"].items()}
    return out


def explain_inputs(live: dict[str, Any]) -> list[str]:
    """The addresses the guest explained, in order."""
    doc = live["cli-explain-json"]
    return [d["input"] for d in doc.get("results", [doc])]


def repl_commands(text: str) -> dict[str, list[str]]:
    """``%vmemdbg ...`` commands typed in the interactive drgn session, with their output lines."""
    out: dict[str, list[str]] = {}
    for chunk in text.split(">>> "):
        first, _, rest = chunk.partition("\n")
        if first.startswith("%vmemdbg "):
            out[first[1:]] = rest.splitlines()
    return out


def live_documents(files: dict[str, bytes]) -> dict[str, Any]:
    """The outputs of the guest, by name: JSON documents (``cli-audit-json``, ``drgn-api``...),
    text outputs as lists of lines, and ``drgn-repl`` (:func:`repl_commands`)."""
    docs: dict[str, Any] = {}
    for name, data in files.items():
        stem = re.sub(r"\.(out|json)$", "", name)
        if stem in PAIRS and (name.endswith(".json") or stem.endswith("-json")) and data.strip():
            docs[stem] = decode(json.loads(data))
    for name, fname in TEXT_PAIRS.items():
        if files.get(fname, b"").strip():
            docs[name] = files[fname].decode().splitlines()
    if files.get("drgn-repl.out", b"").strip():
        docs["drgn-repl"] = repl_commands(files["drgn-repl.out"].decode())
    return docs


def dump_documents(path: Path, live: dict[str, Any]) -> dict[str, Any]:
    """The same commands on a dump, computed in-process exactly as the CLI prints them (the
    explain addresses and interactive commands are those of the live run)."""
    from vmemdbg.dump import open_dump
    from vmemdbg.commands import COMMANDS, output, parser
    from vmemdbg.kernel import Kernel
    from vmemdbg.vmemmap import vmemmap_mapping

    def command_output(argv: list[str]) -> str:
        command = COMMANDS[argv[0]]
        return output(kernel, command, parser(command, f"vmemdbg {argv[0]}").parse_args(argv[1:]))

    kernel = Kernel(open_dump(path))
    docs: dict[str, Any] = {}
    for name, argv in CLI_COMMANDS.items():
        if name == "cli-explain-json":
            argv = ["explain", *explain_inputs(live), "--json"]
        docs[name] = decode(json.loads(command_output(argv)))
    docs["table_pages"] = sorted(vmemmap_mapping(kernel).leaves.tables)  # not in the JSON views
    for cmd in ("vmemdbg audit", *live.get("drgn-repl", {})):
        docs[f"text {cmd.removeprefix('vmemdbg ')}"] = command_output(cmd.split()[1:]).splitlines()
    return docs


def _walk(live: Any, dump: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(live, dict) and isinstance(dump, dict):
        for k in live:
            if k in dump:
                _walk(live[k], dump[k], f"{path}.{k}" if path else k, out)
            else:
                out["diffs"].append((f"{path}.{k}", live[k], "<missing>"))
        out["added"] += sum(1 for k in dump if k not in live)
    elif isinstance(live, list) and isinstance(dump, list) and len(live) == len(dump):
        for i, (a, b) in enumerate(zip(live, dump)):
            _walk(a, b, f"{path}[{i}]", out)
    else:
        out["compared"] += 1
        if live != dump:
            out["diffs"].append((path, live, dump))


def _reason(path: str) -> str | None:
    for pattern, why in MAY_DIFFER:
        if re.search(pattern, path):
            return why
    return None


def compare_all(live: dict[str, Any], dump: dict[str, Any]) -> dict[str, Any]:
    """Compare every live document with its dump counterpart.

    Returns ``{"pairs": [...], "problems": [...]}``; each pair gives the number of leaf values
    compared and equal, keys added on the dump side, and the allowed differences (path, both
    values, reason). ``problems`` lists every other difference, and live documents missing.
    """
    result: dict[str, Any] = {"pairs": [], "problems": []}
    for name, parts in PAIRS.items():
        if name not in live:
            result["problems"].append(f"{name}: no live output")
            continue
        for lkey, dname, dkey in parts:
            a = live[name] if lkey is None else live[name].get(lkey)
            b = dump[dname] if dkey is None else dump[dname].get(dkey)
            acc: dict[str, Any] = {"compared": 0, "added": 0, "diffs": []}
            _walk(a, b, "", acc)
            label = f"{name}{'.' + lkey if lkey else ''} vs dump {dname}{'.' + dkey if dkey else ''}"
            allowed = []
            for path, x, y in acc["diffs"]:
                why = _reason(path)
                if why is None:
                    result["problems"].append(f"{label}: {path}: live {x!r} != dump {y!r}")
                else:
                    allowed.append({"path": path, "live": x, "dump": y, "reason": why})
            result["pairs"].append({"pair": label, "compared": acc["compared"],
                                    "equal": acc["compared"] - len(acc["diffs"]),
                                    "added_on_dump_side": acc["added"], "allowed": allowed})
    if not live.get("drgn-repl"):
        result["problems"].append("drgn-repl: no %vmemdbg command in the interactive session")
    for cmd, lines in live.get("drgn-repl", {}).items():
        theirs = dump[f"text {cmd.removeprefix('vmemdbg ')}"]
        label = f"drgn-repl %{cmd} vs dump text"
        same = sum(a == b for a, b in zip(lines, theirs))
        if lines != theirs:
            result["problems"].append(f"{label}: {len(lines)} lines, dump {len(theirs)}, {same} equal")
        result["pairs"].append({"pair": label, "compared": len(lines), "equal": same,
                                "added_on_dump_side": 0, "allowed": []})
    return result


def format_result(result: dict[str, Any]) -> str:
    """Human-readable report of :func:`compare_all`."""
    lines = []
    for p in result["pairs"]:
        lines.append(f"{p['pair']}: {p['equal']}/{p['compared']} values equal"
                     + (f", {len(p['allowed'])} allowed differences" if p["allowed"] else "")
                     + (f", {p['added_on_dump_side']} keys only on the dump side" if p["added_on_dump_side"] else ""))
        for d in p["allowed"]:
            lines.append(f"    {d['path']}: live {d['live']!r} dump {d['dump']!r}")
    reasons = sorted({d["reason"] for p in result["pairs"] for d in p["allowed"]})
    if reasons:
        lines.append("allowed differences, why:")
        lines += [f"  - {r}" for r in reasons]
    total = sum(p["compared"] for p in result["pairs"])
    if result["problems"]:
        lines.append(f"PROBLEMS ({len(result['problems'])}):")
        lines += [f"  {p}" for p in result["problems"]]
    else:
        lines.append(f"OK: {total} values compared, no difference outside the allowed fields")
    return "\n".join(lines)


def write_fixture(dest: Path, files: dict[str, bytes], result: dict[str, Any], serial: str) -> None:
    """Write the live JSON outputs, the recorded comparison and the guest's console lines."""
    live = dest / "live"
    live.mkdir(parents=True, exist_ok=True)
    for name, doc in live_documents(files).items():
        (live / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (dest / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    (dest / "console.txt").write_text(
        "\n".join(ln for ln in serial.splitlines() if ln.startswith("vmemdbg-live:")) + "\n")


def load_fixture(src: Path) -> dict[str, Any]:
    """The live documents of a fixture written by :func:`write_fixture`."""
    return respell_v1({p.stem: decode(json.loads(p.read_text())) for p in sorted((src / "live").glob("*.json"))})
