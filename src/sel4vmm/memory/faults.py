"""Memory faults and what a fault callback may answer.

A guest access to a guest-physical address with no frame behind it traps to the VMM.  The
VMM looks up the reservation that owns the address and asks its callback, which answers
with one of libsel4vm's ``memory_fault_result_t`` values:

* ``HANDLED``   the access was emulated; a read's value is in :attr:`MemoryFault.read_value`
  and the guest moves past the instruction.
* ``UNHANDLED`` nobody claims it; the VM's unhandled-fault handler gets a go.
* ``RESTART``   the mapping was fixed (a deferred map); re-execute the instruction.
* ``IGNORE``    skip the instruction without emulating it.
* ``ERROR``     stop the VM.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any


class FaultResult(Enum):
    HANDLED = "handled"
    UNHANDLED = "unhandled"
    RESTART = "restart"
    IGNORE = "ignore"
    ERROR = "error"


#: Access width in bytes -> the mask of a value of that width.
_MASKS = {width: (1 << (8 * width)) - 1 for width in (1, 2, 4, 8, 16)}


class MemoryFault:
    """One trapped guest access.

    Written out by hand (``__slots__``, no dataclass machinery) because one is made for
    every emulated device access: it is on the hot path of every backend.
    """

    __slots__ = ("address", "is_write", "read_value", "reservation", "value", "vcpu", "width")

    def __init__(
        self,
        address: int,
        width: int,
        is_write: bool,
        value: int = 0,
        vcpu: object | None = None,
    ) -> None:
        mask = _MASKS.get(width)
        if mask is None:
            raise ValueError(f"fault width {width} is not 1, 2, 4, 8 or 16 bytes")
        self.address = address
        self.width = width
        self.is_write = is_write
        #: The value a write stores (masked to ``width`` bytes); 0 for reads.
        self.value = value & mask
        #: The vCPU that faulted (backend object), if any.
        self.vcpu = vcpu
        #: Set by a callback that HANDLED a read.
        self.read_value: int | None = None
        #: Set by the dispatcher to the reservation that answered, for diagnostics.  A
        #: plain slot: the native fast paths refill reused faults through the slots'
        #: offsets (``native/faultslots.h``), this one included.
        self.reservation: object | None = None

    def reply(self, value: int) -> None:
        """Give a read its value (masked to the access width)."""
        self.read_value = value & _MASKS[self.width]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryFault):
            return NotImplemented
        return (self.address, self.width, self.is_write, self.value) == (
            other.address,
            other.width,
            other.is_write,
            other.value,
        ) and self.read_value == other.read_value

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MemoryFault(address={self.address:#x}, width={self.width}, "
            f"is_write={self.is_write}, value={self.value:#x}, read_value={self.read_value})"
        )

    def __str__(self) -> str:
        if self.is_write:
            return f"write of {self.width} bytes to {self.address:#x} (value {self.value:#x})"
        return f"read of {self.width} bytes from {self.address:#x}"


#: ``callback(vm, fault, cookie) -> FaultResult`` — libsel4vm's ``memory_fault_callback_fn``.
FaultCallback = Callable[[Any, MemoryFault, Any], FaultResult]
