"""The shared x86-64 ABI constants and the VMCOREINFO composer, against the kernel's own values."""

from __future__ import annotations

from conftest import REAL, real_dump

from vmemdbg import abi
from vmemdbg.elfcore import ElfCoreSource
from vmemdbg.vmcoreinfo import VmcoreInfo, compose_vmcoreinfo


def test_page_table_entry_values() -> None:
    """The composed protection values equal the literals a 6.1 kernel writes (seen in the real
    dumps' vmemmap and direct-map entries: 0x...163 for 4 KiB leaves, 0x...1e3 for 2 MiB ones)."""
    assert abi.PAGE_TABLE == 0x67 and abi.KERNPG_TABLE == 0x63
    assert abi.PAGE_KERNEL == 0x8000000000000163
    assert abi.PAGE_KERNEL_LARGE == 0x80000000000001E3
    assert abi.PAGE_KERNEL_LARGE_EXEC == 0x1E3


def test_layout_constants_equal_the_real_kernels() -> None:
    """START_KERNEL, SECTION_SIZE_BITS and MAX_PHYSMEM_BITS against a real 6.1 boot without KASLR:
    its System.map's ``_text`` and the NUMBER()s its own VMCOREINFO note carries."""
    info = VmcoreInfo(ElfCoreSource(str(real_dump("1g-nokaslr"))).vmcoreinfo())
    assert info.kernel_offset == 0
    text = next(int(line.split()[0], 16) for line in
                (REAL / "System.map-6.1.0-56-cloud-amd64.subset").read_text().splitlines()
                if line.endswith(" _text"))
    assert text == abi.START_KERNEL
    assert info.number("SECTION_SIZE_BITS") == abi.SECTION_SIZE_BITS
    assert abi.MAX_PHYSMEM_BITS[4] == info.number("MAX_PHYSMEM_BITS")


def test_compose_vmcoreinfo_formats() -> None:
    """Each key in the kernel's format; a u64 with bit 63 set is a negative NUMBER (``%ld``), and
    the parser reads back what the composer wrote."""
    text = compose_vmcoreinfo([
        ("OSRELEASE", "6.1.0-test"), ("PAGESIZE", 4096), ("SYMBOL(init_top_pgt)", 0xFFFFFFFF82A10000),
        ("SIZE(page)", 64), ("NUMBER(phys_base)", (1 << 64) - 0x1000), ("NUMBER(MAX_PHYSMEM_BITS)", 46),
        ("NUMBER(VMALLOC_START)", 0xFFFFC90000000000), ("KERNELOFFSET", 0x2A000000),
        ("OFFSET(page.compound_order)", None)])
    assert text == ("OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff82a10000\nSIZE(page)=64\n"
                    "NUMBER(phys_base)=-4096\nNUMBER(MAX_PHYSMEM_BITS)=46\nNUMBER(VMALLOC_START)=0xffffc90000000000\n"
                    "KERNELOFFSET=2a000000\n")
    info = VmcoreInfo(text)
    assert info.number("phys_base") == -4096 and info.symbol("init_top_pgt") == 0xFFFFFFFF82A10000
    assert info.number("VMALLOC_START") == 0xFFFFC90000000000 and info.kernel_offset == 0x2A000000
