"""The engine's layering: the layout-and-reader modules never import a concept module.

:class:`vmemdbg.kernel.Kernel` is the layout and the reader only; the concept modules (mmzone,
vmemmap, census, ...) take a Kernel and keep their results in ``kernel.cache``. These tests parse
every import statement with :mod:`ast` -- at module level, inside functions and under
``TYPE_CHECKING`` alike -- so neither a lazy import nor a type-only one can bring the cycle back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "vmemdbg"

#: The layout-and-reader layer: what kernel.py may depend on, directly or not.
LAYER = {"abi", "errors", "intervals", "kallsyms", "kernel", "memory", "pagetable", "versions", "vmcoreinfo"}
#: Modules the issue names: each must stay inside the layer.
CHECKED = ("kernel", "memory", "vmcoreinfo", "versions")


def vmemdbg_imports(module: str, root: Path = PKG) -> set[str]:
    """Top-level ``vmemdbg`` modules imported anywhere in ``<root>/<module>.py``."""
    tree = ast.parse((root / f"{module}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y / from .x.z import y
                out.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                out.update(a.name for a in node.names)
            elif node.level == 0 and node.module and node.module.split(".")[0] == "vmemdbg":
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
            elif node.level > 1:
                raise AssertionError(f"{module}.py imports from outside the package: level {node.level}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "vmemdbg" and len(parts) > 1:
                    out.add(parts[1])
    return out


def test_import_parser_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """The parser finds an import inside a function and one under TYPE_CHECKING (else the
    layering test below could not fail)."""
    (tmp_path / "probe.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .errors import LayoutError\nif TYPE_CHECKING:\n"
        "    from .census import Census\ndef f():\n    from .mmzone import present_sections\n"
        "    import vmemdbg.vmemmap\n    from . import hvo\n")
    assert vmemdbg_imports("probe", tmp_path) == {"errors", "census", "mmzone", "vmemmap", "hvo"}


@pytest.mark.parametrize("module", CHECKED)
def test_layer_module_imports_no_concept_module(module: str) -> None:
    """kernel.py, memory.py, vmcoreinfo.py and versions.py import, directly or through other
    modules, only the layout-and-reader layer."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        deps = vmemdbg_imports(m)
        assert deps <= LAYER, f"{m}.py imports {sorted(deps - LAYER)}, outside the layout-and-reader layer"
        todo.extend(deps)
    assert seen <= LAYER


def test_concept_results_live_in_kernel_cache() -> None:
    """A concept module computes its result once per Kernel and keeps it in ``kernel.cache``; a
    fresh Kernel starts with an empty cache (nothing is computed behind the caller's back)."""
    from conftest import real_dump

    from vmemdbg.census import vmemmap_census
    from vmemdbg.dump import open_dump
    from vmemdbg.kernel import Kernel
    from vmemdbg.mmzone import present_sections
    from vmemdbg.vmemmap import vmemmap_mapping

    k = Kernel(open_dump(real_dump("1000m")))
    assert k.cache == {}
    secs = present_sections(k)
    assert present_sections(k) is secs and len(secs) == 8  # 1000 MiB of RAM: sections 0-7
    assert vmemmap_mapping(k) is vmemmap_mapping(k)
    census = vmemmap_census(k)
    assert vmemmap_census(k) is census
    assert set(k.cache) == {"mmzone.present_sections", "vmemmap.vmemmap_mapping", "census.vmemmap_census"}
