"""Convenience functions for gdb expressions, like the ``$lx_*`` ones of Linux's scripts/gdb.

``p *$vmemdbg_pfn_to_page(0x1000)``, ``p $vmemdbg_page_to_pfn($page)``,
``p *$vmemdbg_pfn_to_section(0x140000)``, ``p $vmemdbg_readable($vmemdbg_pfn_to_page(0x1000))->flags``.
The arithmetic is the kernel's for SPARSEMEM_VMEMMAP (include/asm-generic/memory_model.h,
include/linux/mmzone.h, arch/x86/include/asm/page_64.h) on the analysed kernel's bases, so it
works without a vmlinux and on KASLR kernels. With the kernel's types in gdb the results are
typed (``struct page *``, ``struct mem_section *``), otherwise ``unsigned long``.
"""

from __future__ import annotations

import gdb

from ..errors import VmemdbgError
from ..kernel import Kernel
from .commands import one_line
from .memory import GdbSource
from .target import current_kernel


def _pointer(addr: int, type_name: str) -> gdb.Value:
    """``(type_name *)addr`` if gdb knows the type, else ``(unsigned long)addr``."""
    value = gdb.Value(addr).cast(gdb.lookup_type("unsigned long"))
    try:
        return value.cast(gdb.lookup_type(type_name).pointer())
    except gdb.error:
        return value


def _pfn(kernel: Kernel, arg: gdb.Value) -> int:
    pfn = int(arg)
    if not 0 <= pfn < 1 << (kernel.max_physmem_bits - 12):
        raise VmemdbgError(f"pfn {pfn:#x} is outside MAX_PHYSMEM_BITS={kernel.max_physmem_bits}")
    return pfn


class _Function(gdb.Function):
    """A ``$vmemdbg_*`` function: one integer argument, errors as one line."""

    name = ""

    def __init__(self) -> None:
        super().__init__(self.name)

    def invoke(self, *args: gdb.Value) -> gdb.Value:
        """Check the argument count, compute on the current kernel."""
        if len(args) != 1:
            raise gdb.GdbError(f"${self.name} takes one argument, got {len(args)}")
        return one_line(lambda: self.compute(current_kernel(), args[0]))

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """The function's value."""
        raise NotImplementedError


class PfnToPage(_Function):
    """$vmemdbg_pfn_to_page(PFN): the struct page of PFN, vmemmap_base + PFN * sizeof(struct page).

The kernel's pfn_to_page (SPARSEMEM_VMEMMAP); struct page * when gdb has the kernel's types."""

    name = "vmemdbg_pfn_to_page"

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """``__pfn_to_page``."""
        return _pointer(kernel.pfn_to_page(_pfn(kernel, arg)), "struct page")


class PageToPfn(_Function):
    """$vmemdbg_page_to_pfn(PAGE): the pfn a struct page address describes, (PAGE - vmemmap_base) / sizeof(struct page).

The kernel's page_to_pfn (SPARSEMEM_VMEMMAP); PAGE must lie in the vmemmap."""

    name = "vmemdbg_page_to_pfn"

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """``__page_to_pfn``."""
        page = int(arg) & (1 << 64) - 1
        if not kernel.in_vmemmap(page):
            raise VmemdbgError(f"{page:#x} is not a struct page address: the vmemmap is "
                               f"{kernel.vmemmap_base:#x}-{kernel.vmemmap_base + kernel.vmemmap_span:#x}")
        return gdb.Value(kernel.page_to_pfn(page)).cast(gdb.lookup_type("unsigned long"))


class VirtToPage(_Function):
    """$vmemdbg_virt_to_page(VA): the struct page of a direct-map or kernel-image address.

The kernel's virt_to_page: pfn_to_page(__pa(VA) >> PAGE_SHIFT), __pa as x86-64's __phys_addr
(VA - page_offset_base, or VA - __START_KERNEL_map + phys_base in the kernel image)."""

    name = "vmemdbg_virt_to_page"

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """``virt_to_page``."""
        va = int(arg) & (1 << 64) - 1
        if not (kernel.in_direct_map(va) or kernel.in_kernel_image(va)):
            raise VmemdbgError(f"{va:#x} is neither a direct-map address (page_offset_base "
                               f"{kernel.page_offset_base:#x}) nor a kernel-image address: virt_to_page "
                               "does not apply")
        return _pointer(kernel.pfn_to_page(kernel.virt_to_phys(va) >> 12), "struct page")


class PfnToSection(_Function):
    """$vmemdbg_pfn_to_section(PFN): the struct mem_section of PFN's section (0 if its root is not allocated).

The kernel's __pfn_to_section: &mem_section[SECTION_NR_TO_ROOT(nr)][nr & SECTION_ROOT_MASK] with
nr = PFN >> PFN_SECTION_SHIFT (SPARSEMEM_EXTREME)."""

    name = "vmemdbg_pfn_to_section"

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """``__pfn_to_section``."""
        return _pointer(kernel.nr_to_section(_pfn(kernel, arg) >> kernel.pfn_section_shift), "struct mem_section")


class Readable(_Function):
    """$vmemdbg_readable(ADDR): the address gdb reads kernel address ADDR's memory at, ADDR's type kept.

In a vmcore gdb reads only what the core maps by virtual address (the direct map and the kernel
image): ADDR is translated through the kernel's page tables and the result is the alias gdb can
read, e.g. p $vmemdbg_readable($vmemdbg_pfn_to_page(PFN))->flags (on a live target, where gdb
reads through the MMU, the alias holds the same bytes)."""

    name = "vmemdbg_readable"

    def compute(self, kernel: Kernel, arg: gdb.Value) -> gdb.Value:
        """ADDR's physical address through the page tables, at the source's alias."""
        va = int(arg) & (1 << 64) - 1
        source = kernel.source
        assert isinstance(source, GdbSource)
        alias = gdb.Value(source.alias(kernel.virt_to_phys(va))).cast(gdb.lookup_type("unsigned long"))
        return alias.cast(arg.type) if arg.type.strip_typedefs().code == gdb.TYPE_CODE_PTR else alias


def register() -> None:
    """Define (or redefine) the ``$vmemdbg_*`` functions."""
    for function in (PfnToPage, PageToPfn, VirtToPage, PfnToSection, Readable):
        function()
