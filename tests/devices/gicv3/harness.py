"""A VM with a GICv3 attached, and guest accesses that go through its fault dispatch."""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.devices.gicv3 import Gicv3, Gicv3Layout
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

#: QEMU virt's GICv3 addresses (hw/arm/virt.c: VIRT_GIC_DIST, VIRT_GIC_REDIST).
GICD = 0x0800_0000
GICR = 0x080A_0000
SGI_BASE = 0x1_0000
STRIDE = 0x2_0000


@dataclass
class Guest:
    """What a guest kernel does to its GIC: loads and stores that fault, MRS and MSR."""

    vm: VirtualMachine
    gic: Gicv3

    def _access(self, address: int, width: int, write: bool, value: int = 0) -> MemoryFault:
        fault = MemoryFault(address, width, write, value)
        result = self.vm.memory.handle_fault(fault)
        assert result is FaultResult.HANDLED, self.vm.memory.last_error
        return fault

    def read(self, address: int, width: int = 4) -> int:
        value = self._access(address, width, False).read_value
        assert value is not None
        return value

    def write(self, address: int, value: int, width: int = 4) -> None:
        self._access(address, width, True, value)

    def gicd(self, offset: int, value: int | None = None, width: int = 4) -> int:
        if value is not None:
            self.write(GICD + offset, value, width)
            return value
        return self.read(GICD + offset, width)

    def rd(self, cpu: int, offset: int) -> int:
        return GICR + cpu * STRIDE + offset

    def sgi(self, cpu: int, offset: int) -> int:
        return GICR + cpu * STRIDE + SGI_BASE + offset

    def mrs(self, cpu: int, name: str) -> int:
        return self.gic.read_sysreg(cpu, name)

    def msr(self, cpu: int, name: str, value: int) -> None:
        self.gic.write_sysreg(cpu, name, value)


def make_guest(num_cpus: int = 4, *, affinities: list[int] | None = None) -> Guest:
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)])
    gic = Gicv3(num_cpus, affinities=affinities)
    gic.attach(vm, Gicv3Layout(GICD, ((GICR, num_cpus * STRIDE),)))
    return Guest(vm, gic)
