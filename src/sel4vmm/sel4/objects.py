"""seL4 kernel objects as runs: ``count`` objects of one type made by one retype.

A 4 GiB guest backed by 4 KiB frames has a million frame caps; keeping a Python object per
frame would cost more host memory than the guest touches.  seL4's ``Untyped_Retype`` makes
up to ``CONFIG_RETYPE_FAN_OUT_LIMIT`` objects of one type in consecutive slots and at
consecutive physical addresses, so a run of objects is exactly what one invocation creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sel4vmm.sel4.untyped import Untyped

#: seL4's default ``CONFIG_RETYPE_FAN_OUT_LIMIT``: objects one retype invocation may create.
RETYPE_FAN_OUT_LIMIT = 256


class ObjectKind(Enum):
    """The object types the guest-memory system creates."""

    UNTYPED = "untyped"
    FRAME = "frame"
    PAGE_TABLE = "page table"
    VSPACE = "vspace"
    TCB = "tcb"
    VCPU = "vcpu"
    ENDPOINT = "endpoint"
    NOTIFICATION = "notification"


#: Object sizes in bits that do not depend on the architecture.
ENDPOINT_BITS = 4
NOTIFICATION_BITS = 5


@dataclass(eq=False)
class ObjectRun:
    """``count`` objects of ``2**size_bits`` bytes at ``paddr``, caps at ``first_cptr``..."""

    kind: ObjectKind
    paddr: int
    size_bits: int
    count: int
    first_cptr: int
    untyped: Untyped | None
    device: bool = False
    #: For frames: which of them are mapped now (a frame cap maps once; copies map more).
    mapped: bytearray | None = None

    @property
    def object_size(self) -> int:
        return 1 << self.size_bits

    @property
    def size(self) -> int:
        return self.count << self.size_bits

    @property
    def end(self) -> int:
        return self.paddr + self.size

    def cptr(self, index: int) -> int:
        return self.first_cptr + index

    def paddr_of(self, index: int) -> int:
        return self.paddr + (index << self.size_bits)

    def __str__(self) -> str:
        return (
            f"{self.count} x {self.kind.value} 2^{self.size_bits} at {self.paddr:#x} "
            f"(caps {self.first_cptr}..{self.first_cptr + self.count - 1})"
        )


def human_size(size: int) -> str:
    """``0x20000000`` -> ``512 MiB``; exact, because users compare these numbers."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"
