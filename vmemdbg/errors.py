"""Exceptions. Every error the CLI can meet is a :class:`VmemdbgError` with a one-line message."""


class VmemdbgError(Exception):
    """Base class: the message is one line naming what is wrong."""


class DumpError(VmemdbgError):
    """The dump file itself is unusable (not ELF, wrong architecture, truncated headers...)."""


class LayoutError(VmemdbgError):
    """The kernel layout cannot be determined (missing VMCOREINFO key, absurd value...)."""


class MemoryFault(VmemdbgError):
    """A physical or virtual address is not readable from the source."""

    def __init__(self, addr: int, size: int, what: str = "physical", why: str = "not in the dump"):
        super().__init__(f"cannot read {size} bytes at {what} address {addr:#x}: {why}")
        self.addr = addr
        self.size = size
        self.what = what
