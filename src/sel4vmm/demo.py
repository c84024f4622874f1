"""The embedded default job: seed 000's CAmkES VM built on the memory system.

``sel4vmm demo`` builds the configuration from the DornerWorks VM-memory document — a
512 MiB guest at 0x40000000 whose frames come from ``simple_untyped24_pool = 33`` on a
QEMU virt board — writes and reads guest RAM through the libsel4vm API, and shows the
guest-physical map and the seL4 resources it took.  It also shows the failure users hit
with 32 untyped objects, and the 1:1 variant for DMA.
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.errors import ResourceExhausted
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import DeviceUntypedRequest, PoolRequest, VirtualMachine

VM_RAM_BASE = 0x40000000
VM_RAM_SIZE = 0x20000000
#: QEMU virt with ``-m 2G``: RAM at 0x40000000, devices (GIC, UART, ...) below it.
BOARD_RAM_SIZE = 2 << 30


@dataclass
class DemoResult:
    vm: VirtualMachine
    one_to_one_vm: VirtualMachine
    pattern_ok: bool
    bytes_checked: int
    shortfall: str


def qemu_virt_platform(device_reserved: list[MemoryRange] | None = None) -> Sel4Platform:
    physmem = PhysicalMemory(
        [
            MemoryRange(0x08000000, 0x02000000, device=True, name="qemu virt devices"),
            MemoryRange(VM_RAM_BASE, BOARD_RAM_SIZE, name="ram"),
        ]
    )
    return Sel4Platform(
        physmem, AARCH64, device_reserved=device_reserved or [], board_name="qemu-arm-virt"
    )


def run_demo() -> DemoResult:
    """Build seed 000 both ways and exercise guest RAM; returns what to show."""
    platform = qemu_virt_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 33)])
    vm.ram.register_at(VM_RAM_BASE, VM_RAM_SIZE)

    # Write a pattern across the whole of guest RAM and read it back.
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for offset in range(0, VM_RAM_SIZE, len(chunk)):
        vm.ram.write(VM_RAM_BASE + offset, chunk)
    ok = all(
        vm.ram.read(VM_RAM_BASE + offset, len(chunk)) == chunk
        for offset in range(0, VM_RAM_SIZE, len(chunk))
    )

    # What users see when they give the VM 32 untyped objects instead of 33.
    small = VirtualMachine.create("vm-small", qemu_virt_platform(), pools=[PoolRequest(24, 32)])
    try:
        small.ram.register_at(VM_RAM_BASE, VM_RAM_SIZE)
        shortfall = "32 untyped objects were enough (unexpected)"
    except ResourceExhausted as error:
        shortfall = str(error)

    # Seed 000's 1:1 variant: untyped_mmios = ["0x40000000:29"], pool of 1, map_one_to_one.
    reserved = [MemoryRange(VM_RAM_BASE, VM_RAM_SIZE, name="vm0 1:1 RAM")]
    one = VirtualMachine.create(
        "vm0 (1:1)",
        qemu_virt_platform(reserved),
        pools=[PoolRequest(24, 1)],
        device_untypeds=[DeviceUntypedRequest(VM_RAM_BASE, 29)],
    )
    one.ram.register_at(VM_RAM_BASE, VM_RAM_SIZE, one_to_one=True)
    return DemoResult(vm, one, ok, VM_RAM_SIZE, shortfall)
