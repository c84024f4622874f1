"""Timer, PSCI and device tree models of the unicorn backend, without a CPU."""

from __future__ import annotations

import pytest

from sel4vmm.backends.unicorn.devicetree import GuestDeviceTree, build_device_tree
from sel4vmm.backends.unicorn.psci import (
    PSCI_ALREADY_ON,
    PSCI_CPU_ON,
    PSCI_FEATURES,
    PSCI_INVALID_PARAMETERS,
    PSCI_NOT_SUPPORTED,
    PSCI_SYSTEM_OFF,
    PSCI_VERSION,
    PsciAction,
    handle_psci,
)
from sel4vmm.backends.unicorn.timer import (
    CNTFRQ_EL0,
    CNTV_CTL_EL0,
    CNTV_CVAL_EL0,
    CNTV_TVAL_EL0,
    CNTVCT_EL0,
    CTL_ENABLE,
    CTL_IMASK,
    CTL_ISTATUS,
    GuestClock,
    VirtualTimer,
)
from sel4vmm.images.fdt_tree import read_fdt

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")


class FakeHost:
    """A host clock the test moves by hand (nanoseconds)."""

    def __init__(self) -> None:
        self.ns = 1_000

    def __call__(self) -> int:
        return self.ns


# -- timer ---------------------------------------------------------------------------------
def make_timer() -> tuple[VirtualTimer, FakeHost]:
    host = FakeHost()
    return VirtualTimer(GuestClock(frequency_hz=1_000_000_000, host_ns=host)), host


def test_counter_follows_host_time_and_idle_skips() -> None:
    timer, host = make_timer()
    assert timer.read(CNTVCT_EL0) == 0
    host.ns += 500
    assert timer.read(CNTVCT_EL0) == 500
    timer.clock.advance_to(10_000)
    assert timer.read(CNTVCT_EL0) == 10_000
    timer.clock.advance_to(5)  # never backwards
    assert timer.read(CNTVCT_EL0) == 10_000
    assert timer.read(CNTFRQ_EL0) == 1_000_000_000


def test_tval_sets_a_deadline_and_the_line_asserts_when_reached() -> None:
    timer, host = make_timer()
    timer.write(CNTV_TVAL_EL0, 100)
    timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    assert timer.next_deadline() == 100
    assert not timer.line_asserted()
    assert timer.read(CNTV_TVAL_EL0) == 100
    host.ns += 100
    assert timer.line_asserted()
    assert timer.read(CNTV_CTL_EL0) == CTL_ENABLE | CTL_ISTATUS
    timer.write(CNTV_CTL_EL0, CTL_ENABLE | CTL_IMASK)
    assert not timer.line_asserted()
    assert timer.next_deadline() is None
    assert timer.read(CNTV_CVAL_EL0) == 100


def test_negative_tval_is_a_deadline_in_the_past() -> None:
    timer, host = make_timer()
    host.ns += 50
    timer.write(CNTV_TVAL_EL0, 0xFFFF_FFFF)  # -1: CVAL = counter - 1
    timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    assert timer.line_asserted()


def test_registers_the_vmm_does_not_own_are_left_to_the_cpu() -> None:
    timer, _ = make_timer()
    sctlr = (3, 0, 1, 0, 0)
    assert timer.read(sctlr) is None
    assert not timer.write(sctlr, 0)


# -- PSCI ----------------------------------------------------------------------------------
def test_psci_answers() -> None:
    assert handle_psci(PSCI_VERSION, (0, 0, 0)).result == 0x10000
    off = handle_psci(PSCI_SYSTEM_OFF, (0, 0, 0))
    assert off.action is PsciAction.SYSTEM_OFF
    assert handle_psci(PSCI_CPU_ON, (0, 0x4000_0000, 0)).result == PSCI_ALREADY_ON
    assert handle_psci(PSCI_CPU_ON, (1, 0x4000_0000, 0)).result == PSCI_INVALID_PARAMETERS
    assert handle_psci(PSCI_FEATURES, (PSCI_SYSTEM_OFF, 0, 0)).result == 0
    unknown = handle_psci(0x8400_00FF, (0, 0, 0))
    assert unknown.result == PSCI_NOT_SUPPORTED
    assert unknown.x0 == (1 << 64) - 1


# -- device tree ---------------------------------------------------------------------------
def test_device_tree_describes_memory_chosen_and_devices() -> None:
    blob = build_device_tree(
        GuestDeviceTree(
            ram_base=0x4000_0000,
            ram_size=0x1000_0000,
            uart_base=0x0900_0000,
            uart_spi=33,
            gicd_base=0x0800_0000,
            gicc_base=0x0801_0000,
            bootargs="console=ttyAMA0",
            dma_base=0x0B00_0000,
        )
    )
    fdt = read_fdt(blob)

    def prop(path: str, name: str) -> bytes:
        node = fdt.find(path)
        assert node is not None, path
        return node.properties[name]

    assert prop("/memory@40000000", "reg") == bytes.fromhex("00000000400000000000000010000000")
    assert prop("/chosen", "bootargs") == b"console=ttyAMA0\0"
    assert prop("/chosen", "stdout-path") == b"/pl011@9000000\0"
    assert prop("/pl011@9000000", "interrupts") == bytes.fromhex("000000000000000100000004")
    assert len(prop("/intc@8000000", "reg")) == 32
    assert prop("/psci", "method") == b"hvc\0"
    assert fdt.find("/dma@b000000") is not None
