"""The virtio-mmio transport, version 2 (modern) register layout (virtio 1.2, section 4.2).

A :class:`VirtioMmioTransport` claims a page-granular window of guest-physical space with
``vm.memory.reserve_at`` and serves every register from the fault path: identification,
feature negotiation through selectors, the status handshake, queue setup, QueueNotify,
the interrupt status/acknowledge pair, ConfigGeneration and the device configuration
space at 0x100.  The interrupt is a level: the line is up while InterruptStatus is not 0.

A driver that breaks the rules (a bad ring address, a descriptor loop, a buffer outside
RAM) does not get an exception into the VMM: the transport records a diagnostic in
:attr:`VirtioMmioTransport.errors`, sets DEVICE_NEEDS_RESET and, if DRIVER_OK was set,
sends a configuration-change interrupt (2.1.2); the device then ignores its queues until
the driver resets it by writing 0 to Status.
"""

from __future__ import annotations

from typing import Any

from sel4vmm.devices.irq import IrqLine
from sel4vmm.devices.virtio.device import (
    TRANSPORT_FEATURES,
    VIRTIO_F_VERSION_1,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VirtioDevice,
)
from sel4vmm.devices.virtio.virtqueue import SplitVirtqueue
from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.faults import FaultResult, MemoryFault
from sel4vmm.memory.guest_ram import GuestRam
from sel4vmm.memory.reservation import Reservation

#: "0x74726976 (a Little Endian equivalent of the “virt” string)" (virtio 1.2, 4.2.2).
MAGIC_VALUE = 0x74726976
#: "0x2. Note: Legacy devices (see 4.2.4 Legacy interface) used 0x1." (virtio 1.2, 4.2.2).
VERSION = 2
#: Vendor ID: "QEMU" would be 0x554D4551; sel4vmm reads "sel4" little-endian.
VENDOR_ID = int.from_bytes(b"sel4", "little")
#: The register window (0x100 of registers, then the configuration space).
WINDOW_SIZE = 0x200
CONFIG_OFFSET = 0x100

# Register offsets (virtio 1.2, 4.2.2, table "MMIO Device Register Layout").
MAGIC = 0x000
VERSION_REG = 0x004
DEVICE_ID = 0x008
VENDOR = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC
SHM_LEN_LOW = 0x0B0
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC

# Device status bits (virtio 1.2, 2.1).
ACKNOWLEDGE = 1
DRIVER = 2
DRIVER_OK = 4
FEATURES_OK = 8
DEVICE_NEEDS_RESET = 64
FAILED = 128

# InterruptStatus bits (virtio 1.2, 4.2.2).
INTERRUPT_USED_BUFFER = 1
INTERRUPT_CONFIG_CHANGE = 2

#: Diagnostics kept per transport (older ones are dropped: a guest cannot grow VMM memory).
MAX_ERRORS = 64

_ADDRESS_REGISTERS = {
    QUEUE_DESC_LOW: ("desc_addr", 0),
    QUEUE_DESC_HIGH: ("desc_addr", 32),
    QUEUE_DRIVER_LOW: ("driver_addr", 0),
    QUEUE_DRIVER_HIGH: ("driver_addr", 32),
    QUEUE_DEVICE_LOW: ("device_addr", 0),
    QUEUE_DEVICE_HIGH: ("device_addr", 32),
}


class VirtioMmioTransport:
    """One virtio-mmio device window: registers, negotiation, queues, interrupt."""

    def __init__(
        self,
        vm: Any,
        base: int,
        device: VirtioDevice,
        irq: IrqLine,
        *,
        label: str = "",
    ) -> None:
        self.vm = vm
        self._ram: GuestRam = vm.ram
        self.base = base
        self.device = device
        self.irq = irq
        self.label = label or f"virtio-mmio@{base:#x}"
        self.device_features = TRANSPORT_FEATURES | device.features
        self.queues = [
            SplitVirtqueue(self._ram, index, device.queue_num_max)
            for index in range(device.num_queues)
        ]
        self.errors: list[str] = []
        self.status = 0
        self.interrupt_status = 0
        self.config_generation = 0
        self._reset_registers()
        self.reservation: Reservation = vm.memory.reserve_at(
            base, WINDOW_SIZE, _fault_callback, self, label=self.label
        )

    def detach(self) -> None:
        """Give the window back to the address space (the device is unplugged)."""
        self.irq.lower_line()
        self.vm.memory.free(self.reservation)

    # -- DeviceContext ---------------------------------------------------------------------
    @property
    def ram(self) -> GuestRam:
        return self._ram

    @property
    def driver_features(self) -> int:
        return self._driver_features

    @property
    def running(self) -> bool:
        live = DRIVER_OK | FEATURES_OK
        return self.status & (live | DEVICE_NEEDS_RESET) == live

    def queue(self, index: int) -> SplitVirtqueue:
        return self.queues[index]

    def used_buffers(self, queue: SplitVirtqueue) -> None:
        if queue.needs_interrupt():
            self._interrupt(INTERRUPT_USED_BUFFER)

    def config_changed(self) -> None:
        self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
        if self.status & DRIVER_OK:
            self._interrupt(INTERRUPT_CONFIG_CHANGE)

    # -- state -----------------------------------------------------------------------------
    def _reset_registers(self) -> None:
        self.status = 0
        self._device_features_sel = 0
        self._driver_features_sel = 0
        self._driver_features = 0
        self._queue_sel = 0
        for queue in self.queues:
            queue.reset()
        self.interrupt_status = 0
        self.irq.lower_line()

    def reset(self) -> None:
        """Status 0: everything back to its initial state (the device's host side stays)."""
        self._reset_registers()
        self.device.reset()

    def _interrupt(self, bits: int) -> None:
        self.interrupt_status |= bits
        self.irq.raise_line()

    def device_error(self, reason: str) -> None:
        """The driver broke a rule: record why, stop the device, tell the driver."""
        if len(self.errors) >= MAX_ERRORS:
            del self.errors[0]
        self.errors.append(f"{self.label}: {reason}")
        already = self.status & DEVICE_NEEDS_RESET
        self.status |= DEVICE_NEEDS_RESET
        if not already and self.status & DRIVER_OK:
            self.config_changed()

    def needs_reset(self) -> bool:
        return bool(self.status & DEVICE_NEEDS_RESET)

    # -- guest accesses ----------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        if offset >= CONFIG_OFFSET:
            config = self.device.config()
            start = offset - CONFIG_OFFSET
            return int.from_bytes(config[start : start + width].ljust(width, b"\0"), "little")
        if width != 4:
            self.device_error(f"{width}-byte read of register {offset:#x} (registers are 32-bit)")
            return 0
        return self._read_register(offset)

    def _read_register(self, offset: int) -> int:
        queue = self._selected_queue()
        simple = {
            MAGIC: MAGIC_VALUE,
            VERSION_REG: VERSION,
            DEVICE_ID: self.device.device_id,
            VENDOR: VENDOR_ID,
            STATUS: self.status,
            INTERRUPT_STATUS: self.interrupt_status,
            CONFIG_GENERATION: self.config_generation,
            # "Reading from a non-existent region ... results in a length of -1" (4.2.2).
            SHM_LEN_LOW: 0xFFFFFFFF,
            SHM_LEN_HIGH: 0xFFFFFFFF,
        }
        if offset in simple:
            return simple[offset]
        if offset == DEVICE_FEATURES:
            return (self.device_features >> (32 * self._device_features_sel)) & 0xFFFFFFFF
        if queue is None:
            return 0
        if offset == QUEUE_NUM_MAX:
            return queue.num_max
        if offset == QUEUE_READY:
            return int(queue.ready)
        if offset in _ADDRESS_REGISTERS:
            attribute, shift = _ADDRESS_REGISTERS[offset]
            return int((getattr(queue, attribute) >> shift) & 0xFFFFFFFF)
        return 0

    def _selected_queue(self) -> SplitVirtqueue | None:
        if self._queue_sel < len(self.queues):
            return self.queues[self._queue_sel]
        return None

    def write(self, offset: int, width: int, value: int) -> None:
        if offset >= CONFIG_OFFSET:
            data = value.to_bytes(width, "little")
            self.device.write_config(offset - CONFIG_OFFSET, data, self)
            return
        if width != 4:
            self.device_error(f"{width}-byte write of register {offset:#x} (registers are 32-bit)")
            return
        if offset == STATUS:
            self._write_status(value)
        elif offset == DEVICE_FEATURES_SEL:
            self._device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self._driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == QUEUE_SEL:
            self._queue_sel = value
        elif offset == QUEUE_NOTIFY:
            self._notify(value)
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self.irq.set(self.interrupt_status != 0)
        elif offset == SHM_SEL:
            pass  # no shared-memory regions: every region reads as length -1
        else:
            self._write_queue_register(offset, value)

    def _write_driver_features(self, value: int) -> None:
        if self.status & FEATURES_OK or self._driver_features_sel > 1:
            return  # features are fixed once FEATURES_OK is set; only 64 bits exist
        shift = 32 * self._driver_features_sel
        self._driver_features = (self._driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)

    def _write_queue_register(self, offset: int, value: int) -> None:
        queue = self._selected_queue()
        if queue is None:
            self.device_error(
                f"register {offset:#x} written with QueueSel {self._queue_sel}, "
                f"but the device has {len(self.queues)} queues"
            )
            return
        if offset == QUEUE_READY:
            if value & 1 and not queue.ready:
                self._enable(queue)
            elif not value & 1:
                queue.ready = False
            return
        if queue.ready:
            return  # 4.2.3.2: the driver must not change a live queue's layout
        if offset == QUEUE_NUM:
            queue.num = value
        elif offset in _ADDRESS_REGISTERS:
            attribute, shift = _ADDRESS_REGISTERS[offset]
            old = getattr(queue, attribute)
            setattr(queue, attribute, (old & ~(0xFFFFFFFF << shift)) | (value << shift))

    def _enable(self, queue: SplitVirtqueue) -> None:
        queue.indirect = bool(self._driver_features & VIRTIO_RING_F_INDIRECT_DESC)
        queue.event_idx = bool(self._driver_features & VIRTIO_RING_F_EVENT_IDX)
        try:
            queue.check_layout()
        except Sel4VmmError as error:
            self.device_error(str(error))
            return
        queue.ready = True

    def _write_status(self, value: int) -> None:
        value &= 0xFF
        if value == 0:
            self.reset()
            return
        added = value & ~self.status
        if added & FEATURES_OK and not self._features_acceptable():
            value &= ~FEATURES_OK  # the driver reads Status back and sees it refused
        self.status = value | (self.status & DEVICE_NEEDS_RESET)
        if added & DRIVER_OK and self.running:
            self._guarded(self.device.activate, self)

    def _features_acceptable(self) -> bool:
        if not self._driver_features & VIRTIO_F_VERSION_1:
            self.device_error(
                "the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers "
                "are not served by a version 2 device)"
            )
            return False
        extra = self._driver_features & ~self.device_features
        if extra:
            self.device_error(f"the driver accepted features {extra:#x} the device never offered")
            return False
        return True

    def _notify(self, index: int) -> None:
        if index >= len(self.queues):
            self.device_error(f"QueueNotify for queue {index}; the device has {len(self.queues)}")
            return
        queue = self.queues[index]
        if self.running and queue.ready:
            self._guarded(self.device.notify, queue, self)

    def _guarded(self, action: Any, *arguments: Any) -> None:
        """Run a device action; a driver error inside it stops the device, not the VMM."""
        try:
            action(*arguments)
        except Sel4VmmError as error:
            self.device_error(str(error))

    def poll(self) -> None:
        """Let the device make progress outside a notify (host input for console or net)."""
        if self.running:
            self._guarded(self.device.poll, self)


def _fault_callback(vm: Any, fault: MemoryFault, transport: VirtioMmioTransport) -> FaultResult:
    """The reservation's callback: one guest load or store into the window."""
    del vm
    offset = fault.address - transport.base
    if offset + fault.width > WINDOW_SIZE:
        transport.device_error(f"{fault} runs past the end of the {WINDOW_SIZE:#x}-byte window")
        if not fault.is_write:
            fault.reply(0)
        return FaultResult.HANDLED
    if fault.is_write:
        transport.write(offset, fault.width, fault.value)
    else:
        fault.reply(transport.read(offset, fault.width))
    return FaultResult.HANDLED
