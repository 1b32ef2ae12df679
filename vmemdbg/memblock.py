"""memblock after boot: regions, flags, nids, and whether the data can still be trusted.

Structures (include/linux/memblock.h, x86-64): ``struct memblock { bool bottom_up; phys_addr_t
current_limit; struct memblock_type memory; struct memblock_type reserved; }`` (96 bytes, types at
+16 and +56); ``struct memblock_type { unsigned long cnt, max; phys_addr_t total_size; struct
memblock_region *regions; char *name; }`` (40 bytes); ``struct memblock_region { phys_addr_t base,
size; enum memblock_flags flags; int nid; }`` (24 bytes with NUMA, 16 without the nid field).

Trust (docs/memblock.md#after-boot-can-the-memblock-data-be-trusted): x86 does not select ARCH_KEEP_MEMBLOCK (only INTEL_TDX_HOST does,
which excludes kexec), so memblock_discard() (mm/memblock.c, called from page_alloc_init_late)
runs after boot: it frees region arrays that were doubled away from the static
``memblock_*_init_regions`` and, since 5.10, sets ``memblock_memory = NULL``. With
MEMORY_HOTPLUG the ``memblock`` struct and the static arrays are never freed, so a static array is
intact but frozen at discard time; a doubled one dangles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import VmemdbgError
from .versions import (
    MEMBLOCK_FLAGS,
    MEMBLOCK_MEMORY_OFFSET,
    MEMBLOCK_REGION_FLAT,
    MEMBLOCK_REGION_NUMA,
    MEMBLOCK_RESERVED_OFFSET,
    system_state_names,
)

if TYPE_CHECKING:
    from .kernel import Kernel

MAX_REGIONS = 1 << 20


def decode_memblock_flags(flags: int) -> list[str]:
    """Names of ``enum memblock_flags`` bits."""
    return [n for n, b in MEMBLOCK_FLAGS if flags & b] + ([f"{flags & ~0x7F:#x}"] if flags & ~0x7F else [])


def _system_state(kernel: "Kernel") -> dict | None:
    addr = kernel.symbol("system_state")
    if addr is None:
        return None
    try:
        v = kernel.read_u32(addr)
    except VmemdbgError:
        kernel.unreadable.append(f"system_state at {addr:#x}")
        return None
    names = system_state_names(kernel.version)
    return {"value": v, "name": "SYSTEM_" + names[v] if v < len(names) else f"?{v}"}


def _read_type(kernel: "Kernel", addr: int, static: int | None, discarded: bool | None) -> dict:
    """One ``struct memblock_type`` and its regions, with a trust verdict."""
    cnt, mx, total, regions = np.frombuffer(kernel.read(addr, 32), dtype="<u8").tolist()
    out: dict = {"cnt": cnt, "max": mx, "total_size": total, "regions_addr": regions,
                 "regions_is_static": static is not None and regions == static, "regions": None}
    if out["regions_is_static"]:
        out["trust"] = "frozen" if discarded else "live"
        out["trust_reason"] = ("static array, intact; frozen when memblock_discard() ran" if discarded
                               else "static array; memblock not discarded (boot-time dump or ARCH_KEEP_MEMBLOCK)")
    elif discarded:
        out["trust"] = "dangling"
        out["trust_reason"] = "array was doubled away from the static one and freed by memblock_discard()"
    else:
        out["trust"] = "live" if discarded is False else "unknown"
        out["trust_reason"] = "doubled array, memblock not discarded" if discarded is False else "discard state unknown"
    if not cnt <= mx <= MAX_REGIONS:
        out["trust"] = "corrupt"
        out["trust_reason"] = f"cnt={cnt} max={mx} is absurd"
        return out
    dtype = MEMBLOCK_REGION_NUMA if kernel.nodes_shift else MEMBLOCK_REGION_FLAT
    try:
        raw = np.frombuffer(kernel.read(regions, dtype.itemsize * cnt), dtype=dtype)
    except VmemdbgError:
        kernel.unreadable.append(f"memblock regions at {regions:#x}")
        return out
    bad = raw["base"] + raw["size"] < raw["base"]  # memblock_cap_size keeps base + size within 2^64
    if kernel.nodes_shift:
        bad |= (raw["nid"] < -1) | (raw["nid"] > 1 << kernel.nodes_shift)  # NUMA_NO_NODE .. MAX_NUMNODES
    if np.any(bad):
        out["trust"] = "corrupt"
        out["trust_reason"] = f"region {int(np.argmax(bad))} wraps past 2^64 or has an impossible nid"
        return out
    out["regions"] = [{"base": int(r["base"]), "size": int(r["size"]), "flags": int(r["flags"]),
                       "flag_names": decode_memblock_flags(int(r["flags"])),
                       "nid": int(r["nid"]) if kernel.nodes_shift else None} for r in raw]
    return out


def read_memblock(kernel: "Kernel") -> dict:
    """The memblock state and its trustworthiness (plain data; shape in docs/json.md)."""
    mb = kernel.require_symbol("memblock", "memblock")
    mm_ptr_addr = kernel.symbol("memblock_memory")
    memblock_memory = None
    if mm_ptr_addr is not None:
        try:
            memblock_memory = kernel.read_u64(mm_ptr_addr)
        except VmemdbgError:
            kernel.unreadable.append(f"memblock_memory at {mm_ptr_addr:#x}")
    state = _system_state(kernel)
    if memblock_memory is not None:
        discarded: bool | None = memblock_memory == 0
        why = f"memblock_memory = {memblock_memory:#x}" + (" (NULL: memblock_discard() ran)" if discarded else "")
    elif state is not None:
        discarded = state["name"] in ("SYSTEM_FREEING_INITMEM", "SYSTEM_RUNNING")
        why = f"system_state = {state['name']}"
    else:
        discarded, why = None, "no memblock_memory or system_state symbol"
    try:
        head = kernel.read(mb, 16)
    except VmemdbgError as e:
        raise VmemdbgError(f"memblock at {mb:#x} is unreadable ({e})") from None
    return {
        "addr": mb, "bottom_up": bool(head[0]), "current_limit": int.from_bytes(head[8:16], "little"),
        "memblock_memory": memblock_memory, "system_state": state, "discarded": discarded, "discarded_reason": why,
        "memory": _read_type(kernel, mb + MEMBLOCK_MEMORY_OFFSET, kernel.symbol("memblock_memory_init_regions"), discarded),
        "reserved": _read_type(kernel, mb + MEMBLOCK_RESERVED_OFFSET, kernel.symbol("memblock_reserved_init_regions"), discarded),
    }
