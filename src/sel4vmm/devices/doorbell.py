"""Doorbells: how a guest rings a notification and how its peer hears it as an interrupt.

seL4 notifications are kernel objects a guest cannot touch; a VMM turns them into a
device.  A guest's store to a doorbell register faults into the VMM (a reservation with no
frames behind it), the VMM signals the peer, and the peer's VMM makes its guest's interrupt
pending.  Two register layouts are modelled, one per configuration language:

**Microkit** (:class:`MicrokitDoorbell`; sel4vmm's convention, libvmm has no such device:
its VMMs call ``microkit_notify`` from their own fault handlers and ``virq_inject`` in
``notified``).  One 4 KiB page per VM, at guest-physical ``0x0b100000``, and one SPI,
INTID 82 (the placement is :mod:`sel4vmm.config.microkit.sharing`'s, stated in README).
Channel ids are the ids of the *VM's VMM* end of each ``<channel>`` (0 to 62):

====== ===== ======================================================================
offset access register
====== ===== ======================================================================
0x00   W 32  RING: write a channel id to notify the peer at the other end
0x08   R 64  PENDING: bit *n* set when the peer rang channel *n* (32-bit reads: halves)
0x10   W 64  ACK: write 1s to clear PENDING bits (32-bit writes: halves)
0x18   R 64  CHANNELS: bit *n* set for every channel id this VM may ring
====== ===== ======================================================================

The interrupt is a level: high while PENDING is not zero.

**CAmkES** (:class:`CrossVmEventBar`), libsel4vmmplatsupport's ``cross_vm_connection.c``
(seL4_projects_libs 0e06beb): one event page per cross-VM connection, all connections
sharing one interrupt (:class:`CrossVmEvents`).  A write to offset 0 (``EMIT``) calls the
connection's emit function; offset 4 (``CONSUME_EVENT``) counts events delivered to the
guest and a write sets it (the guest's driver writes 0 once it has consumed them); offset 8
holds the connection's name (48 bytes).  camkes-vm injects the interrupt once per event and
expects the driver to clear the counter; this model keeps the line high while any counter is
not zero, which a guest that clears the counter sees identically.

A guest can never ring what its system does not give it: a RING of a channel id that is no
channel to a peer, or an EMIT on a connection without an emit function, stops the VM with a
diagnostic naming the doorbell and the id (the fault callback answers ``ERROR`` with the
address space's ``last_error`` set), instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sel4vmm.devices.irq import IrqLine
from sel4vmm.memory.faults import FaultResult, MemoryFault

DOORBELL_PAGE_SIZE = 0x1000
RING = 0x00
PENDING = 0x08
ACK = 0x10
CHANNELS = 0x18
#: Microkit channel ids are 0..62 (``PD_MAX_ID``).
MAX_CHANNEL_ID = 62

#: ``cross_vm_connection.c``'s event page registers.
EVENT_BAR_EMIT_REGISTER = 0x0
EVENT_BAR_CONSUME_EVENT_REGISTER = 0x4
EVENT_BAR_DEVICE_NAME_REGISTER = 0x8
EVENT_BAR_DEVICE_NAME_MAX_LEN = 48


def _refuse(vm: Any, why: str) -> FaultResult:
    """Stop the VM with ``why`` as the diagnostic (the dispatcher reports ``last_error``)."""
    memory = getattr(vm, "memory", None)
    if memory is not None:
        memory.last_error = why
    return FaultResult.ERROR


def _read_64(value: int, offset: int, register: int, width: int) -> int:
    shift = 8 * (offset - register)
    return (value >> shift) & ((1 << (8 * width)) - 1)


class MicrokitDoorbell:
    """One VM's doorbell page: ring a channel, read and acknowledge what the peers rang.

    ``channels`` maps each channel id the VM may ring to the function that notifies the
    peer (the multi-VM wiring passes the peer doorbell's :meth:`deliver`, bound to the id
    the *peer* knows the channel by).
    """

    def __init__(
        self,
        name: str,
        base: int,
        line: IrqLine,
        channels: Mapping[int, Callable[[], None]],
    ) -> None:
        for channel in channels:
            if not 0 <= channel <= MAX_CHANNEL_ID:
                raise ValueError(f"channel id {channel} is not 0 to {MAX_CHANNEL_ID}")
        self.name = name
        self.base = base
        self.line = line
        self.channels = dict(channels)
        self.pending = 0
        #: Rings this VM made and notifications it received, for reports and tests.
        self.rung = 0
        self.received = 0

    @property
    def channel_mask(self) -> int:
        mask = 0
        for channel in self.channels:
            mask |= 1 << channel
        return mask

    def deliver(self, channel: int) -> None:
        """A peer rang ``channel`` (this VM's id for it): pending, and the line goes up."""
        if not 0 <= channel <= MAX_CHANNEL_ID:
            raise ValueError(f"channel id {channel} is not 0 to {MAX_CHANNEL_ID}")
        self.pending |= 1 << channel
        self.received += 1
        self.line.raise_line()

    def fault(self, vm: Any, fault: MemoryFault, cookie: object = None) -> FaultResult:
        """The reservation's fault callback (cookie unused)."""
        del cookie
        offset = fault.address - self.base
        if fault.is_write:
            return self._write(vm, offset, fault)
        if PENDING <= offset < PENDING + 8 and offset + fault.width <= PENDING + 8:
            fault.reply(_read_64(self.pending, offset, PENDING, fault.width))
        elif CHANNELS <= offset < CHANNELS + 8 and offset + fault.width <= CHANNELS + 8:
            fault.reply(_read_64(self.channel_mask, offset, CHANNELS, fault.width))
        else:
            fault.reply(0)
        return FaultResult.HANDLED

    def _write(self, vm: Any, offset: int, fault: MemoryFault) -> FaultResult:
        if offset == RING:
            notify = self.channels.get(fault.value)
            if notify is None:
                given = sorted(self.channels) or "none"
                return _refuse(
                    vm,
                    f"{self.name} rang channel {fault.value} through its doorbell at "
                    f"{self.base:#x}, but its system gives it no channel {fault.value} to "
                    f"another VM (its channels: {given})",
                )
            self.rung += 1
            notify()
            return FaultResult.HANDLED
        if ACK <= offset < ACK + 8 and offset + fault.width <= ACK + 8:
            self.pending &= ~(fault.value << (8 * (offset - ACK)))
            if not self.pending:
                self.line.lower_line()
            return FaultResult.HANDLED
        return _refuse(
            vm,
            f"{self.name}: write to offset {offset:#x} of the doorbell at {self.base:#x}, "
            "which has no register there (RING 0x0, ACK 0x10)",
        )


class CrossVmEvents:
    """The one interrupt camkes-vm gives all of a VM's cross-VM connections."""

    def __init__(self, line: IrqLine) -> None:
        self.line = line
        self.bars: list[CrossVmEventBar] = []

    def update(self) -> None:
        self.line.set(any(bar.consume_count for bar in self.bars))


class CrossVmEventBar:
    """One connection's event page (``reserve_event_bar``) in a CAmkES VM."""

    def __init__(
        self,
        events: CrossVmEvents,
        connection: str,
        base: int,
        emit: Callable[[], None] | None,
    ) -> None:
        self.events = events
        self.connection = connection
        self.base = base
        self.emit = emit
        self.consume_count = 0
        self.emitted = 0
        events.bars.append(self)

    def consume(self) -> None:
        """``consume_connection_event``: the peer signalled; count it, raise the line."""
        self.consume_count = (self.consume_count + 1) & 0xFFFF_FFFF
        self.events.update()

    def _page(self) -> bytes:
        name = self.connection.encode()[:EVENT_BAR_DEVICE_NAME_MAX_LEN]
        return (
            bytes(4)
            + self.consume_count.to_bytes(4, "little")
            + name.ljust(EVENT_BAR_DEVICE_NAME_MAX_LEN, b"\0")
        )

    def fault(self, vm: Any, fault: MemoryFault, cookie: object = None) -> FaultResult:
        """The reservation's fault callback; reads see the page the C code fills."""
        del cookie
        offset = fault.address - self.base
        if not fault.is_write:
            page = self._page()
            chunk = page[offset : offset + fault.width] if offset < len(page) else b""
            fault.reply(int.from_bytes(chunk.ljust(fault.width, b"\0"), "little"))
            return FaultResult.HANDLED
        if offset == EVENT_BAR_EMIT_REGISTER:
            if self.emit is None:
                # cross_vm_connection.c logs exactly this and carries on; sel4vmm stops
                # the VM, since the guest rang something its system does not give it.
                return _refuse(
                    vm,
                    f"{self.connection} (event page at {self.base:#x}): Connection is not "
                    "configured with an emit function",
                )
            self.emitted += 1
            self.emit()
            return FaultResult.HANDLED
        if offset == EVENT_BAR_CONSUME_EVENT_REGISTER:
            self.consume_count = fault.value & 0xFFFF_FFFF
            self.events.update()
            return FaultResult.HANDLED
        return _refuse(
            vm,
            f"{self.connection} (event page at {self.base:#x}): Event Bar register "
            f"unsupported (offset {offset:#x})",
        )
