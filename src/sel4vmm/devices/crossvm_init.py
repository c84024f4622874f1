"""camkes-vm-examples' ``CrossvmInit`` component, on the VMM side of a cross-VM connection.

``vm_cross_connector`` joins ``vm0`` to a native CAmkES component whose whole program
(``components/CrossvmInit/crossvm_init.c``, camkes-vm-examples dd7da62) is::

    memset(dest, '\\0', 4096);
    strcpy(dest, "This is a crossvm dataport test string\\n");
    while (1) { ready_wait(); printf("Got an event\\n"); done_emit_underlying(); }

sel4vmm runs no CAmkES components, so a run of that system models this one as the C code
behaves: :meth:`start` fills ``dest`` (the dataport shared with ``vm0.crossvm_dp_0``), and
every ``ready`` event the guest emits prints the line and emits ``done`` back (which the
wiring delivers through the VM's event page as its interrupt).  What the component printed
is kept in :attr:`output`; ``dest`` stays readable, so a test sees what the guest wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: The string ``crossvm_init.c`` copies into ``dest`` (with its newline).
TEST_STRING = b"This is a crossvm dataport test string\n"
DATAPORT_SIZE = 4096


class RegionBytes(Protocol):
    """The VMM's access to a shared region (``plan.shared_frames.SharedRegionMemory``)."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


class CrossvmInit:
    """The component: a ``dest`` dataport, ``ready`` consumed, ``done`` emitted."""

    def __init__(self, name: str, dest: RegionBytes, emit_done: Callable[[], None]) -> None:
        self.name = name
        self.dest = dest
        self.emit_done = emit_done
        self.output = bytearray()
        self.events = 0

    def start(self) -> None:
        """``run()``'s first two lines: clear the dataport, copy the test string in."""
        self.dest.write(0, bytes(min(DATAPORT_SIZE, self.dest.size)))
        self.dest.write(0, TEST_STRING + b"\0")

    def ready(self) -> None:
        """One ``ready_wait()`` returning: print, then ``done_emit_underlying()``."""
        self.events += 1
        self.output += b"Got an event\n"
        self.emit_done()
