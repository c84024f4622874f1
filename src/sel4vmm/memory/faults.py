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
from dataclasses import dataclass
from enum import Enum
from typing import Any


class FaultResult(Enum):
    HANDLED = "handled"
    UNHANDLED = "unhandled"
    RESTART = "restart"
    IGNORE = "ignore"
    ERROR = "error"


@dataclass(slots=True)
class MemoryFault:
    """One trapped guest access."""

    address: int
    width: int
    is_write: bool
    #: The value a write stores (masked to ``width`` bytes); 0 for reads.
    value: int = 0
    #: The vCPU that faulted (backend object), if any.
    vcpu: object | None = None
    #: Set by a callback that HANDLED a read.
    read_value: int | None = None
    #: Set by the dispatcher to the reservation that answered, for diagnostics.
    reservation: object | None = None

    def __post_init__(self) -> None:
        if self.width not in (1, 2, 4, 8, 16):
            raise ValueError(f"fault width {self.width} is not 1, 2, 4, 8 or 16 bytes")
        self.value &= (1 << (8 * self.width)) - 1

    def reply(self, value: int) -> None:
        """Give a read its value (masked to the access width)."""
        self.read_value = value & ((1 << (8 * self.width)) - 1)

    def __str__(self) -> str:
        if self.is_write:
            return f"write of {self.width} bytes to {self.address:#x} (value {self.value:#x})"
        return f"read of {self.width} bytes from {self.address:#x}"


#: ``callback(vm, fault, cookie) -> FaultResult`` — libsel4vm's ``memory_fault_callback_fn``.
FaultCallback = Callable[[Any, MemoryFault, Any], FaultResult]
