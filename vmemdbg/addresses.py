"""The address forms ``explain`` accepts, and their classification for one kernel.

``pfn:N``, ``phys:A``, ``direct:VA`` (alias ``virt:VA``), ``page:VA`` or a bare address, which is
classified by the region it falls in: the vmemmap (a ``struct page``), the direct map
(``page_offset_base``), or else a physical address below ``MAX_PHYSMEM_BITS``. Front ends list
:data:`FORMS` in help and completion.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import VmemdbgError

if TYPE_CHECKING:
    from .kernel import Kernel

#: (form, meaning) of every accepted address form, in the order help lists them.
FORMS: tuple[tuple[str, str], ...] = (
    ("pfn:N", "a page frame number"),
    ("phys:A", "a physical address"),
    ("direct:VA", "a direct-map address; virt:VA is the same"),
    ("page:VA", "a struct page address in the vmemmap"),
    ("ADDR", "a bare address, classified by the region it falls in"),
)

#: The prefixes of the explicit forms (what completion offers).
PREFIXES: tuple[str, ...] = ("pfn:", "phys:", "direct:", "virt:", "page:")

_PREFIXED = re.compile(r"^(pfn|phys|direct|virt|page):(0x[0-9a-fA-F]+|\d+)$")


def parse_address(kernel: "Kernel", text: str) -> tuple[str, int]:
    """Classify ``text`` as ``("pfn" | "phys" | "direct" | "page", value)``.

    An explicit prefix (``pfn:``, ``phys:``, ``direct:``/``virt:``, ``page:``) overrides the guess.
    """
    m = _PREFIXED.match(text.strip())
    if m:
        kind = "direct" if m.group(1) == "virt" else m.group(1)
        return kind, int(m.group(2), 0)
    try:
        value = int(text, 0)
    except ValueError:
        raise VmemdbgError(f"cannot parse address {text!r}: use pfn:N, 0xPHYS, a direct-map or a struct page address") from None
    if kernel.in_vmemmap(value):
        return "page", value
    if kernel.in_direct_map(value):
        return "direct", value
    if value < (1 << kernel.max_physmem_bits):
        return "phys", value
    raise VmemdbgError(f"{value:#x} is not a pfn, physical, direct-map or vmemmap address of this kernel")
