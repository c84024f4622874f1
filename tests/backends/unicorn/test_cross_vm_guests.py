"""Running guests that share memory and ring doorbells (issue 14, item 4).

The bundled ``share`` guest (guests/aarch64/share.c) plays every part from its command
line; these tests run it on the emulated board with the cross-VM wiring
(:mod:`sel4vmm.backends.unicorn.cross_vm`) and read the outcome off its console and off the
VMM's own view of the shared frames.
"""

from __future__ import annotations

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.cross_vm import RunningGuest, wire_cross_vm
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.config.load import load_system
from sel4vmm.devices.crossvm_init import TEST_STRING
from tests.helpers import REALWORLD

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


def test_vm_cross_connector_guest_and_crossvm_init_talk() -> None:
    """vm_cross_connector's cross_vm_test, with CrossvmInit modelled on the VMM side: the
    guest reads the component's string from crossvm_dp_0, writes its own, emits ready; the
    component prints "Got an event" and emits done, which arrives as INTID 82."""
    system = load_system(CROSS, defines={"PLAT": "qemu-arm-virt"})
    layout = GuestLayout(
        name="vm0",
        ram_size=16 << 20,
        bootargs="role=camkes shm=0xdf001000 bell=0xdf000000 irq=82",
    )
    board = EmulatedBoard(layout, Console())
    try:
        wiring = wire_cross_vm(system, {"vm0": RunningGuest(system.vms[0], board.vm, board.lines)})
        board.loop.sources.extend(board.lines.sources)
        wiring.start()
        assert wiring.regions["cross_vm_conn_0"].read(0, len(TEST_STRING)) == TEST_STRING
        reason = board.loop.run(board.load_file(bundled_guest("share")), time_limit=60)
    finally:
        board.close()
    console = board.console.output.decode().replace("\r\n", "\n")
    assert reason is StopReason.SYSTEM_OFF, (console, board.vcpu.diagnostic)
    assert "share: connection cross_vm_conn_0\n" in console
    assert "share: dataport string ok\n" in console
    assert "share: event consumed, count 1\n" in console
    assert "FAIL" not in console
    assert wiring.components["crossvm_init"].output == b"Got an event\n"
    written = b"This is a test user string\n\0"
    assert wiring.regions["cross_vm_conn_0"].read(0, len(written)) == written


def test_an_emit_on_a_connection_without_emit_function_stops_the_guest() -> None:
    """Connection 1 has no emit function (the example's table: NULL): the guest is stopped
    with cross_vm_connection.c's message instead of the store vanishing."""
    system = load_system(CROSS, defines={"PLAT": "qemu-arm-virt"})
    layout = GuestLayout(
        name="vm0",
        ram_size=16 << 20,
        # Connection 1's event page and dataport: its dataport holds no string, so the
        # guest fails its check first unless the VMM wrote one; write it below.
        bootargs="role=camkes shm=0xdf003000 bell=0xdf002000 irq=82",
    )
    board = EmulatedBoard(layout, Console())
    try:
        wiring = wire_cross_vm(system, {"vm0": RunningGuest(system.vms[0], board.vm, board.lines)})
        board.loop.sources.extend(board.lines.sources)
        wiring.regions["cross_vm_conn_1"].write(0, TEST_STRING + b"\0")
        reason = board.loop.run(board.load_file(bundled_guest("share")), time_limit=60)
    finally:
        board.close()
    assert reason is StopReason.GUEST_FAULT
    diagnostic = board.vcpu.diagnostic
    assert diagnostic is not None
    assert diagnostic.message.endswith(
        "cross_vm_conn_1 (event page at 0xdf002000): Connection is not configured with an "
        "emit function"
    ), diagnostic.message
