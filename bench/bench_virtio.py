"""virtio device models driven through the memory core's fault path, against baselines
measured in the same run.

* **virtio-blk sequential read**: a driver loop (the same as a guest's, in Python) puts
  one request at a time — header, data buffer, status byte, as three descriptors — on the
  device's queue in guest RAM and writes QueueNotify through ``vm.memory.handle_fault``;
  the device reads the host file with ``pread`` and copies the data into guest RAM.
  Baseline: the host reading the same file with ``pread`` in requests of the same size
  (page cache warm for both).  Reported: bytes/s of each and the ratio.
* **console output**: bytes/s of guest output through virtio-console (one chain of N bytes
  per QueueNotify) vs the PL011 model (one 32-bit store to UARTDR per byte, each a fault
  through the same ``handle_fault``, the best case for a PL011 driver — Linux also polls
  UARTFR per byte).

The in-guest ``dd`` benchmark comes when Linux runs with virtio.  Two cores are shared
with other developers: expect noise; every figure is the best of ``--repeat`` runs,
interleaved.  Run: ``PYTHONPATH=src python bench/bench_virtio.py [--size MiB] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

from sel4vmm.devices.irq import IrqLine, LineLevels
from sel4vmm.devices.pl011 import UARTDR, Pl011
from sel4vmm.devices.virtio import mmio
from sel4vmm.devices.virtio.block import VirtioBlock
from sel4vmm.devices.virtio.console import TRANSMITQ, VirtioConsole
from sel4vmm.devices.virtio.device import VirtioDevice
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.devices.virtio.virtqueue import VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine
from timing import best_of

RAM = 0x4000_0000
RAM_SIZE = 8 << 20
DEVICE = 0x0A00_0000
UART = 0x0900_0000
QUEUE = 0x4000_0000  # rings at the start of RAM; buffers from 0x4010_0000
BUFFERS = 0x4010_0000
NUM = 16


def make_vm() -> VirtualMachine:
    platform = Sel4Platform(
        PhysicalMemory([MemoryRange(RAM, 256 << 20, name="ram")]), AARCH64, board_name="bench"
    )
    vm = VirtualMachine.create("bench", platform, pools=[PoolRequest(24, 2)])
    vm.ram.register_at(RAM, RAM_SIZE)
    return vm


class RingDriver:
    """The driver side of one virtqueue: registers through faults, rings in guest RAM."""

    def __init__(self, vm: VirtualMachine, device: VirtioDevice, queue: int) -> None:
        self.vm = vm
        self.transport = VirtioMmioTransport(vm, DEVICE, device, IrqLine(LineLevels(), 42))
        self.queue = queue
        self.desc, self.avail, self.used = QUEUE, QUEUE + 16 * NUM, QUEUE + 0x1000
        self.avail_idx = 0
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER)
        for selector, value in ((0, 0), (1, 1)):  # VIRTIO_F_VERSION_1 only: plain rings
            self.write(mmio.DRIVER_FEATURES_SEL, selector)
            self.write(mmio.DRIVER_FEATURES, value)
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK)
        for index in range(device.num_queues):
            self.write(mmio.QUEUE_SEL, index)
            self.write(mmio.QUEUE_NUM, NUM)
            base = QUEUE + 0x4000 * index
            for register, addr in (
                (mmio.QUEUE_DESC_LOW, base),
                (mmio.QUEUE_DRIVER_LOW, base + 16 * NUM),
                (mmio.QUEUE_DEVICE_LOW, base + 0x1000),
            ):
                self.write(register, addr)
            self.write(mmio.QUEUE_READY, 1)
        self.desc, self.avail, self.used = (
            QUEUE + 0x4000 * queue,
            QUEUE + 0x4000 * queue + 16 * NUM,
            QUEUE + 0x4000 * queue + 0x1000,
        )
        self.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK | mmio.DRIVER_OK)
        assert not self.transport.errors, self.transport.errors

    def write(self, offset: int, value: int) -> None:
        fault = MemoryFault(DEVICE + offset, 4, True, value)
        assert self.vm.memory.handle_fault(fault) is FaultResult.HANDLED

    def descriptors(self, spans: list[tuple[int, int, int]]) -> None:
        for index, (addr, length, flags) in enumerate(spans):
            last = index == len(spans) - 1
            self.vm.ram.write(
                self.desc + 16 * index,
                struct.pack(
                    "<QIHH", addr, length, flags | (0 if last else VIRTQ_DESC_F_NEXT), index + 1
                ),
            )

    def submit(self) -> None:
        """Make chain 0 available and notify."""
        self.vm.ram.write(self.avail + 4 + 2 * (self.avail_idx % NUM), b"\0\0")
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.vm.ram.write(self.avail + 2, struct.pack("<H", self.avail_idx))
        self.write(mmio.QUEUE_NOTIFY, self.queue)


def bench_block(path: Path, request: int, repeat: int) -> tuple[float, float]:
    size = path.stat().st_size
    vm = make_vm()
    device = VirtioBlock(path, read_only=True)
    driver = RingDriver(vm, device, 0)
    header, data, status = BUFFERS, BUFFERS + 0x1000, BUFFERS + 0x1000 + request
    driver.descriptors(
        [(header, 16, 0), (data, request, VIRTQ_DESC_F_WRITE), (status, 1, VIRTQ_DESC_F_WRITE)]
    )

    def device_read() -> None:
        for offset in range(0, size, request):
            vm.ram.write(header, struct.pack("<IIQ", 0, 0, offset // 512))
            driver.submit()
        assert vm.ram.read(status, 1) == b"\0" and not driver.transport.errors
        # The last request's data really is the file's last bytes.
        last = (size - 1) // request * request
        assert vm.ram.read(data, size - last) == os.pread(fd, size - last, last)

    fd = os.open(path, os.O_RDONLY)
    buffer = bytearray(request)

    def host_read() -> None:
        for offset in range(0, size, request):
            os.preadv(fd, [buffer], offset)

    host_read()
    times: dict[str, list[float]] = {"device": [], "host": []}
    for _ in range(repeat):
        times["device"].append(best_of(1, device_read))
        times["host"].append(best_of(1, host_read))
    os.close(fd)
    device.close()
    return size / min(times["device"]), size / min(times["host"])


def bench_console(total: int, chunk: int, repeat: int) -> tuple[float, float]:
    sink: list[int] = []

    def count(data: bytes) -> None:
        sink.append(len(data))

    vm = make_vm()
    driver = RingDriver(vm, VirtioConsole(count), TRANSMITQ)
    vm.ram.write(BUFFERS, bytes(range(256)) * (chunk // 256 + 1))
    driver.descriptors([(BUFFERS, chunk, 0)])

    def virtio_output() -> None:
        for _ in range(total // chunk):
            driver.submit()

    uart_vm = make_vm()
    uart = Pl011(count)

    def uart_callback(_vm: Any, fault: MemoryFault, cookie: Pl011) -> FaultResult:
        offset = fault.address - UART
        if fault.is_write:
            cookie.write(offset, fault.width, fault.value)
        else:
            fault.reply(cookie.read(offset, fault.width))
        return FaultResult.HANDLED

    uart_vm.memory.reserve_at(UART, 0x1000, uart_callback, uart, label="pl011")
    handle = uart_vm.memory.handle_fault

    def pl011_output() -> None:
        for byte in range(total):
            handle(MemoryFault(UART + UARTDR, 4, True, byte & 0xFF))

    times: dict[str, list[float]] = {"virtio": [], "pl011": []}
    for _ in range(repeat):
        times["virtio"].append(best_of(1, virtio_output))
        times["pl011"].append(best_of(1, pl011_output))
    return total / min(times["virtio"]), total / min(times["pl011"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="disk image size in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "disk.img"
        with path.open("wb") as handle:
            for _ in range(args.size):
                handle.write(os.urandom(1 << 20))
        print(f"virtio-blk sequential read of {args.size} MiB (best of {args.repeat}):")
        for request in (4096, 128 << 10, 1 << 20):
            device, host = bench_block(path, request, args.repeat)
            print(
                f"  {request >> 10:5d} KiB requests: device {device / 1e6:8.1f} MB/s, "
                f"host pread {host / 1e6:8.1f} MB/s, device/host {device / host:.3f}x"
            )
    total = 256 << 10
    print(f"console output of {total >> 10} KiB (best of {args.repeat}):")
    for chunk in (64, 4096):
        virtio, pl011 = bench_console(total, chunk, args.repeat)
        print(
            f"  virtio-console {chunk:4d}-byte writes {virtio / 1e6:8.2f} MB/s, "
            f"PL011 one store per byte {pl011 / 1e6:6.2f} MB/s, virtio/PL011 {virtio / pl011:.1f}x"
        )


if __name__ == "__main__":
    main()
