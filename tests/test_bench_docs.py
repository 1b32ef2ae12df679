"""The README's benchmark figures and docs/scale.md's targets are generated from bench/results.json
(``bench/bench.py --write-docs``): they must say what the committed results say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "bench" / "bench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _block(path: Path, name: str) -> str:
    text = path.read_text()
    return text.split(f"<!-- bench:{name} -->\n", 1)[1].split(f"<!-- /bench:{name} -->", 1)[0]


def test_docs_blocks_are_generated_from_the_committed_results(tmp_path: Path, monkeypatch) -> None:
    bench = _bench()
    doc = json.loads((ROOT / "bench" / "results.json").read_text())
    for rel in ("README.md", "docs/scale.md"):  # regenerate into a copy of the two files
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    bench.write_docs(doc)
    for rel, name in (("README.md", "results"), ("docs/scale.md", "targets")):
        assert _block(ROOT / rel, name) == _block(tmp_path / rel, name), rel
    targets = bench.targets(doc)
    assert any(t.startswith("64 TiB ELF") for t in targets) and any("summary" in t for t in targets)
    s = doc["startup"]["summary"]
    assert f"{s:.2f} s wall" in _block(ROOT / "README.md", "results")
