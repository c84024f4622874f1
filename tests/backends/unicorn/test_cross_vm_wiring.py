"""The multi-VM wiring of shared regions and doorbells, without running a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.cross_vm import RunningGuest, wire_cross_vm
from sel4vmm.config.load import load_system
from sel4vmm.config.spec import SystemSpec
from sel4vmm.devices.crossvm_init import TEST_STRING
from sel4vmm.devices.irq import IrqLine, LevelSource, LineLevels
from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import REALWORLD, make_platform

TWO_VMS = Path(__file__).parents[2] / "config/microkit/data/shared_two_vms.system"
CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


class Lines(LineLevels):
    """A recording interrupt controller with VgicLines' two methods."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[LevelSource] = []

    def line(self, intid: int) -> IrqLine:
        return IrqLine(self, intid)


def _guests(system: SystemSpec) -> dict[str, RunningGuest]:
    platform = make_platform(ram_size=256 << 20)
    return {
        vm.name: RunningGuest(
            vm, VirtualMachine.create(vm.name, platform, pools=[PoolRequest(22, 2)]), Lines()
        )
        for vm in system.vms
    }


def _physical(vm: VirtualMachine, addr: int, size: int) -> list[tuple[int, int]]:
    return vm.memory.translate(addr, size)


def test_both_vms_map_the_same_frames_and_the_vmm_sees_them() -> None:
    system = load_system(TWO_VMS)
    guests = _guests(system)
    wiring = wire_cross_vm(system, guests)
    alpha, beta = guests["alpha"].vm, guests["beta"].vm
    assert _physical(alpha, 0x2000_0000, 0x2000) == _physical(beta, 0x2800_0000, 0x2000)
    paddr = _physical(alpha, 0x2000_0000, 8)[0][0]
    alpha.physmem.view(paddr, 8)[:] = b"from a!!"
    assert wiring.regions["shared_buf"].read(0, 8) == b"from a!!"
    wiring.regions["mailbox"].write(0, b"vmm")
    box = _physical(alpha, 0x2100_0000, 3)[0][0]
    assert bytes(alpha.physmem.view(box, 3)) == b"vmm"
    with pytest.raises(Sel4VmmError, match="outside the 0x1000-byte shared region"):
        wiring.regions["mailbox"].read(0xFFF, 2)


def test_a_ring_in_one_vm_raises_the_peers_doorbell_interrupt() -> None:
    system = load_system(TWO_VMS)
    guests = _guests(system)
    wire_cross_vm(system, guests)
    fault = MemoryFault(0x0B10_0000, 4, True, 1)
    assert guests["alpha"].vm.memory.handle_fault(fault) is FaultResult.HANDLED
    lines = guests["beta"].lines
    assert isinstance(lines, Lines)
    assert lines.changes == [(82, True)]


def test_a_channel_to_a_vm_that_is_not_running_is_not_given() -> None:
    system = load_system(TWO_VMS)
    guests = _guests(system)
    del guests["beta"]
    wire_cross_vm(system, guests)
    alpha = guests["alpha"].vm
    assert alpha.memory.handle_fault(MemoryFault(0x0B10_0000, 4, True, 1)) is FaultResult.ERROR
    assert "gives it no channel 1 to another VM" in alpha.memory.last_error


def test_camkes_crossvm_init_is_modelled_on_the_vmm_side() -> None:
    system = load_system(CROSS, defines={"PLAT": "qemu-arm-virt"})
    guests = _guests(system)
    wiring = wire_cross_vm(system, guests)
    wiring.start()
    vm0 = guests["vm0"].vm
    dataport = _physical(vm0, 0xDF00_1000, len(TEST_STRING))[0][0]
    assert bytes(vm0.physmem.view(dataport, len(TEST_STRING))) == TEST_STRING
    # The guest emits through connection 0's event page; CrossvmInit answers with done.
    assert vm0.memory.handle_fault(MemoryFault(0xDF00_0000, 4, True, 1)) is FaultResult.HANDLED
    component = wiring.components["crossvm_init"]
    assert component.output == b"Got an event\n"
    lines = guests["vm0"].lines
    assert isinstance(lines, Lines) and lines.is_raised(82)
    count = MemoryFault(0xDF00_0004, 4, False)
    assert vm0.memory.handle_fault(count) is FaultResult.HANDLED and count.read_value == 1
