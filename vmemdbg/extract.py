"""``vmemdbg extract``: a minimal ELF vmcore holding only the pages the views read.

The engine runs every view over a :class:`RecordingSource`; each page it touched (VMCOREINFO
stays in the note; kallsyms tables, section roots, usage arrays, page-table pages, the struct
pages read for node lookup, e820 and pglist_data) is copied whole into the new dump. Every view
on the result equals the view on the original (tests/test_realkernel_fixtures.py checks it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from .dump import open_dump
from .elfwrite import write_elf_core
from .errors import LayoutError, MemoryFault, VmemdbgError
from .kernel import Kernel
from .memory import MemorySource, RecordingSource
from .views import all_views, explain

#: Kernel variables other tools read first: makedumpfile/crash identify the kernel by init_uts_ns;
#: gdb with a vmlinux reads the layout variables (else it silently takes the vmlinux file's values).
_IDENTITY_SYMBOLS = ("init_uts_ns", "_stext", "phys_base", "mem_section", "__pgtable_l5_enabled", "sme_me_mask",
                     "page_offset_base", "vmemmap_base", "vmalloc_base", "node_data", "node_states")


#: The kallsyms tables of a real kernel span a few MiB; a larger span means absurd symbols.
_KALLSYMS_MAX = 64 << 20


def _keep_for_other_tools(kernel: Kernel) -> None:
    """Keep those variables and the page-table path to them (those tools translate kernel-image
    addresses through init_top_pgt)."""
    ks = []
    for key in kernel.info.entries:
        if key.startswith("SYMBOL(kallsyms_") and key.endswith(")"):
            try:
                v = kernel.info.symbol(key[7:-1])
            except LayoutError:
                continue
            if v is not None and kernel.in_kernel_image(v):
                ks.append(v)
    if ks and max(ks) - min(ks) <= _KALLSYMS_MAX:  # the whole kallsyms area, so other kallsyms decoders (crash, drgn) work on the result
        lo, hi = min(ks), max(ks) + 4096
        try:
            kernel.read(lo, hi - lo)
        except MemoryFault:
            kernel.unreadable.append(f"kallsyms tables {lo:#x}-{hi:#x}")
    for name in _IDENTITY_SYMBOLS:
        try:
            va = kernel.symbol(name) or kernel.info.symbol(name)
        except LayoutError:
            continue
        if va is not None and kernel.in_kernel_image(va):
            try:
                kernel.read(va, 512)
                kernel.translate(va)
            except MemoryFault:
                kernel.unreadable.append(f"{name} at {va:#x}")


def _copy_pages(src: MemorySource, pages: list[int]) -> list[tuple[int, bytes]]:
    """Whole pages where the source has them; otherwise the pieces of the page it does hold
    (sparse dumps such as simulated fixtures keep 64-byte struct pages, not whole pages)."""
    ranges = src.ranges()
    starts = np.array([r[0] for r in ranges], dtype=np.uint64)
    ends = np.array([r[1] for r in ranges], dtype=np.uint64)
    chunks: list[tuple[int, bytes]] = []
    for page in pages:
        try:
            chunks.append((page, src.read_phys(page, 4096)))
            continue
        except MemoryFault:
            pass
        i = int(np.searchsorted(ends, np.uint64(page), side="right"))
        while i < len(starts) and int(starts[i]) < page + 4096:
            a, b = max(page, int(starts[i])), min(page + 4096, int(ends[i]))
            try:
                chunks.append((a, src.read_phys(a, b - a)))
            except MemoryFault:
                pass
            i += 1
    return chunks


def _kernel_image(kernel: Kernel) -> tuple[int, int, int] | None:
    """Physical extent and virtual start of the kernel image (``_text``.. ``_end``), if known."""
    text, end = kernel.symbol("_text"), kernel.symbol("_end")
    if text is None or end is None or end <= text:
        return None
    return kernel.kimg_to_phys(text), kernel.kimg_to_phys(end), text


def extract(dump: str | os.PathLike, out: str | os.PathLike, *, vmcoreinfo: bytes | None = None,
            symbols: dict[str, int] | None = None, explain_addrs: Iterable[str] = ()) -> dict:
    """Write the minimal dump and check it: every view on it must equal the view on ``dump``.

    Returns ``{"pages": n, "bytes": size_on_disk}``. If a view would differ the output is removed and
    a :class:`VmemdbgError` names the first difference.
    """
    src = open_dump(dump)
    try:
        rec = RecordingSource(src)
        kernel = Kernel(rec, vmcoreinfo=vmcoreinfo, symbols=symbols)
        want = _views(kernel, explain_addrs)
        if symbols is not None:  # the result also answers without them (what the dump alone gives)
            all_views(Kernel(rec, vmcoreinfo=vmcoreinfo))
        _keep_for_other_tools(kernel)
        chunks = _copy_pages(src, rec.pages().tolist())
        write_elf_core(out, chunks, kernel.info.text.encode("latin-1"), page_offset=kernel.page_offset_base,
                       kernel_image=_kernel_image(kernel))
    finally:
        src.close()
    _verify(out, want, vmcoreinfo, symbols, explain_addrs)
    return {"pages": len({a & ~0xFFF for a, _ in chunks}), "bytes": os.path.getsize(out)}


def _views(kernel: Kernel, explain_addrs: Iterable[str]) -> dict:
    """Every view and each kept ``explain``, as one comparable document."""
    doc = {"all": all_views(kernel)}
    for a in explain_addrs:
        doc[f"explain {a}"] = explain(kernel, a)
    return doc


def _verify(out: str | os.PathLike, want: dict, vmcoreinfo: bytes | None, symbols: dict[str, int] | None,
            explain_addrs: Iterable[str]) -> None:
    """Reopen the written dump and compare every view with the original's."""
    try:
        small = open_dump(out)
        try:
            got = _views(Kernel(small, vmcoreinfo=vmcoreinfo, symbols=symbols), explain_addrs)
        finally:
            small.close()
        diff = _first_difference(want, got)
    except VmemdbgError as e:
        diff = f"it cannot be analysed ({e})"
    if diff is not None:
        os.unlink(out)
        raise VmemdbgError(f"extract: the views on the minimal dump would differ from the views on the input "
                           f"({diff}); nothing written")


def _first_difference(a: object, b: object, path: str = "") -> str | None:
    """Path and values of the first difference between two view documents, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    if a != b:
        show = lambda v: (repr(v)[:60] + "...") if len(repr(v)) > 60 else repr(v)  # noqa: E731
        return f"{path or 'document'}: {show(a)} on the input, {show(b)} on the minimal dump"
    return None
