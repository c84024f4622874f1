"""The x86 I/O-port bus: ``in``/``out`` exits routed to the device that claims the port.

Port I/O is a separate 64 KiB address space that never reaches guest memory, so it does not
go through the libsel4vm fault path; KVM reports it as ``KVM_EXIT_IO`` and this bus
dispatches it.  Ports nobody claims behave as on a PC with nothing plugged in: reads float
to all ones and writes vanish (Linux probes many legacy ports at boot and must not be
stopped for it); they are counted so a stuck guest's diagnostic can mention them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sel4vmm.errors import Sel4VmmError

PORT_SPACE_SIZE = 0x10000


class PortDevice(Protocol):
    """A device on the port bus; ``offset`` is relative to the first port it claimed."""

    def port_read(self, offset: int, width: int) -> int: ...

    def port_write(self, offset: int, width: int, value: int) -> None: ...


@dataclass(frozen=True)
class PortClaim:
    first: int
    count: int
    device: PortDevice
    name: str


class PortIoBus:
    """Ports ``0..0xffff`` and who owns which."""

    def __init__(self) -> None:
        self._owner: dict[int, PortClaim] = {}
        self.unclaimed: Counter[int] = Counter()

    def claim(self, first: int, count: int, device: PortDevice, name: str) -> None:
        """Give ports ``[first, first + count)`` to ``device``; overlapping claims are refused."""
        if count <= 0 or first < 0 or first + count > PORT_SPACE_SIZE:
            raise Sel4VmmError(
                f"I/O ports [{first:#x}, {first + count:#x}) for {name} are outside 0..0xffff",
                fix="give the device a port range inside the 64 KiB port space",
            )
        clash = [self._owner[p].name for p in range(first, first + count) if p in self._owner]
        if clash:
            raise Sel4VmmError(
                f"I/O ports [{first:#x}, {first + count:#x}) for {name} overlap {clash[0]}",
                fix="move one of the devices to free ports",
            )
        claim = PortClaim(first, count, device, name)
        for port in range(first, first + count):
            self._owner[port] = claim

    def read(self, port: int, width: int) -> int:
        claim = self._owner.get(port)
        if claim is None:
            self.unclaimed[port] += 1
            return (1 << (8 * width)) - 1
        return claim.device.port_read(port - claim.first, width) & ((1 << (8 * width)) - 1)

    def write(self, port: int, width: int, value: int) -> None:
        claim = self._owner.get(port)
        if claim is None:
            self.unclaimed[port] += 1
            return
        claim.device.port_write(port - claim.first, width, value)


class ExitPort:
    """A write-only port through which a guest ends the run with a status.

    Under KVM with the in-kernel IRQ chip ``hlt`` is handled inside the kernel and never
    exits, so a guest needs a device to say "done"; this mirrors QEMU's ``isa-debug-exit``
    (port 0xf4).
    """

    PORT = 0xF4

    def __init__(self, on_exit: Callable[[int], None]) -> None:
        self._on_exit = on_exit

    def port_read(self, offset: int, width: int) -> int:
        return 0

    def port_write(self, offset: int, width: int, value: int) -> None:
        self._on_exit(value)
