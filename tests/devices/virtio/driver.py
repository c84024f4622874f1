"""A little virtio-mmio guest driver for tests: it talks to a device only as a guest would.

Every register access is a :class:`MemoryFault` sent through the VM's real fault dispatch
(``vm.memory.handle_fault``); rings and buffers are bytes in guest RAM written with
``vm.ram``.  Nothing reaches into the device model's state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sel4vmm.devices.irq import IrqLine, LineLevels
from sel4vmm.devices.virtio import mmio
from sel4vmm.devices.virtio.device import (
    VIRTIO_F_VERSION_1,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VirtioDevice,
)
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.devices.virtio.virtqueue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

DEVICE_BASE = 0x0A000000
SPI = 42
RAM_SIZE = 4 << 20
RAM_BASE = 0x40000000


def make_vm() -> tuple[VirtualMachine, int]:
    """A VM with 4 MiB of guest RAM; returns it and the RAM's guest address."""
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 2)])
    vm.ram.register_at(RAM_BASE, RAM_SIZE)
    return vm, RAM_BASE


def attach(vm: VirtualMachine, device: VirtioDevice) -> tuple[VirtioMmioTransport, LineLevels]:
    gic = LineLevels()
    transport = VirtioMmioTransport(vm, DEVICE_BASE, device, IrqLine(gic, SPI))
    return transport, gic


@dataclass
class DriverQueue:
    index: int
    num: int
    desc: int
    avail: int
    used: int
    free: list[int] = field(default_factory=list)
    avail_idx: int = 0
    last_used: int = 0


class GuestDriver:
    """Register accesses through faults, rings in guest RAM, a bump allocator for buffers."""

    def __init__(self, vm: VirtualMachine, ram_base: int, base: int = DEVICE_BASE) -> None:
        self.vm = vm
        self.base = base
        self.cursor = ram_base
        self.ram_end = ram_base + RAM_SIZE
        self.queues: dict[int, DriverQueue] = {}
        #: Head descriptor -> every descriptor of its direct chain (freed when used).
        self._chains: dict[int, list[int]] = {}
        self.last_writable: list[int] = []

    # -- registers -----------------------------------------------------------------------
    def read(self, offset: int, width: int = 4) -> int:
        fault = MemoryFault(self.base + offset, width, False)
        assert self.vm.memory.handle_fault(fault) is FaultResult.HANDLED, self.vm.memory.last_error
        assert fault.read_value is not None
        return fault.read_value

    def write(self, offset: int, value: int, width: int = 4) -> None:
        fault = MemoryFault(self.base + offset, width, True, value)
        assert self.vm.memory.handle_fault(fault) is FaultResult.HANDLED, self.vm.memory.last_error

    def config(self, offset: int, width: int) -> int:
        return self.read(mmio.CONFIG_OFFSET + offset, width)

    # -- memory --------------------------------------------------------------------------
    def alloc(self, size: int, align: int = 16) -> int:
        addr = -(-self.cursor // align) * align
        self.cursor = addr + size
        assert self.cursor <= self.ram_end
        return addr

    def buffer(self, data: bytes) -> int:
        addr = self.alloc(max(len(data), 1))
        self.vm.ram.write(addr, data)
        return addr

    # -- initialisation (virtio 1.2, 3.1.1) ----------------------------------------------
    def device_features(self) -> int:
        self.write(mmio.DEVICE_FEATURES_SEL, 0)
        low = self.read(mmio.DEVICE_FEATURES)
        self.write(mmio.DEVICE_FEATURES_SEL, 1)
        return low | self.read(mmio.DEVICE_FEATURES) << 32

    def negotiate(self, wanted: int | None = None) -> int:
        """Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the accepted features."""
        self.write(mmio.STATUS, 0)
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE)
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER)
        offered = self.device_features()
        accepted = offered if wanted is None else offered & wanted
        for selector in (0, 1):
            self.write(mmio.DRIVER_FEATURES_SEL, selector)
            self.write(mmio.DRIVER_FEATURES, (accepted >> (32 * selector)) & 0xFFFFFFFF)
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK)
        return accepted

    def setup_queue(self, index: int, num: int = 16) -> DriverQueue:
        self.write(mmio.QUEUE_SEL, index)
        assert self.read(mmio.QUEUE_READY) == 0
        assert num <= self.read(mmio.QUEUE_NUM_MAX)
        queue = DriverQueue(
            index,
            num,
            desc=self.alloc(16 * num, 16),
            avail=self.alloc(6 + 2 * num, 2),
            used=self.alloc(6 + 8 * num, 4),
            free=list(range(num)),
        )
        self.vm.ram.write(queue.desc, bytes(16 * num))
        self.vm.ram.write(queue.avail, bytes(6 + 2 * num))
        self.vm.ram.write(queue.used, bytes(6 + 8 * num))
        self.write(mmio.QUEUE_NUM, num)
        for low, addr in (
            (mmio.QUEUE_DESC_LOW, queue.desc),
            (mmio.QUEUE_DRIVER_LOW, queue.avail),
            (mmio.QUEUE_DEVICE_LOW, queue.used),
        ):
            self.write(low, addr & 0xFFFFFFFF)
            self.write(low + 4, addr >> 32)
        self.write(mmio.QUEUE_READY, 1)
        self.queues[index] = queue
        return queue

    def start(self, queues: int, features: int | None = None, num: int = 16) -> int:
        accepted = self.negotiate(features)
        assert self.read(mmio.STATUS) & mmio.FEATURES_OK
        for index in range(queues):
            self.setup_queue(index, num)
        self.write(mmio.STATUS, self.read(mmio.STATUS) | mmio.DRIVER_OK)
        return accepted

    # -- buffers -------------------------------------------------------------------------
    def write_descriptor(
        self, table: int, index: int, addr: int, length: int, flags: int, following: int = 0
    ) -> None:
        self.vm.ram.write(table + 16 * index, struct.pack("<QIHH", addr, length, flags, following))

    def make_available(self, queue: DriverQueue, head: int) -> None:
        slot = queue.avail_idx % queue.num
        self.vm.ram.write(queue.avail + 4 + 2 * slot, struct.pack("<H", head))
        queue.avail_idx = (queue.avail_idx + 1) & 0xFFFF
        self.vm.ram.write(queue.avail + 2, struct.pack("<H", queue.avail_idx))

    def add(
        self,
        index: int,
        readable: list[bytes],
        writable: list[int],
        *,
        indirect: bool = False,
        notify: bool = True,
    ) -> int:
        """Put a chain of buffers on queue ``index``; returns its head descriptor."""
        queue = self.queues[index]
        spans = [(self.buffer(data), len(data), 0) for data in readable]
        spans += [(self.alloc(size), size, VIRTQ_DESC_F_WRITE) for size in writable]
        # The guest addresses of the last chain's writable buffers, for the caller to read.
        self.last_writable = [addr for addr, _length, flags in spans if flags]
        if indirect:
            table = self.alloc(16 * len(spans))
            for i, (addr, length, flags) in enumerate(spans):
                last = i == len(spans) - 1
                self.write_descriptor(
                    table, i, addr, length, flags | (0 if last else VIRTQ_DESC_F_NEXT), i + 1
                )
            head = queue.free.pop(0)
            self.write_descriptor(queue.desc, head, table, 16 * len(spans), VIRTQ_DESC_F_INDIRECT)
        else:
            heads = [queue.free.pop(0) for _ in spans]
            for i, (addr, length, flags) in enumerate(spans):
                last = i == len(spans) - 1
                following = 0 if last else heads[i + 1]
                self.write_descriptor(
                    queue.desc,
                    heads[i],
                    addr,
                    length,
                    flags | (0 if last else VIRTQ_DESC_F_NEXT),
                    following,
                )
            head = heads[0]
            self._chains[head] = heads
        self.make_available(queue, head)
        if notify:
            self.write(mmio.QUEUE_NOTIFY, index)
        return head

    def used(self, index: int) -> list[tuple[int, int]]:
        """The (head, length) elements the device returned since the last call."""
        queue = self.queues[index]
        (used_idx,) = struct.unpack("<H", self.vm.ram.read(queue.used + 2, 2))
        out = []
        while queue.last_used != used_idx:
            slot = queue.last_used % queue.num
            head, length = struct.unpack("<II", self.vm.ram.read(queue.used + 4 + 8 * slot, 8))
            out.append((head, length))
            queue.free.extend(self._chains.pop(head, [head]))
            queue.last_used = (queue.last_used + 1) & 0xFFFF
        return out

    def ack_interrupt(self) -> int:
        status = self.read(mmio.INTERRUPT_STATUS)
        self.write(mmio.INTERRUPT_ACK, status)
        return status


MODERN = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX
