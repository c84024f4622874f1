"""Running guests that share memory and ring doorbells (issue 14, item 4).

The bundled ``share`` guest (guests/aarch64/share.c) finds its part in the device tree the
VMM generates for it (its shared window, its doorbell, the channel and the peer); these
tests run it on the emulated board with the cross-VM wiring
(:mod:`sel4vmm.backends.unicorn.cross_vm`) and read the outcome off its console and off the
VMM's own view of the shared frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn import system_session
from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.cross_vm import (
    CrossVmWiring,
    RunningGuest,
    device_tree_nodes,
    wire_boards,
    wire_cross_vm,
)
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.backends.unicorn.system_loop import SystemLoop, VmOutcome
from sel4vmm.config.load import load_system
from sel4vmm.config.spec import SystemSpec
from sel4vmm.devices.crossvm_init import TEST_STRING
from sel4vmm.errors import Sel4VmmError
from tests.helpers import REALWORLD

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"
TWO_VMS = Path(__file__).parents[2] / "config/microkit/data/shared_two_vms.system"


def _run_two(
    bootargs: dict[str, str] | None = None, *, one_to_one: dict[str, bool] | None = None
) -> tuple[dict[str, str], list[VmOutcome], CrossVmWiring, EmulatedSystem]:
    """Both VMs of shared_two_vms.system on one board, in one system loop; each guest
    learns its part from its DTB (``bootargs`` adds to a VM's command line)."""
    spec = load_system(TWO_VMS)
    layouts = [
        GuestLayout(
            name=name,
            ram_size=16 << 20,
            one_to_one=(one_to_one or {}).get(name, False),
            bootargs=(bootargs or {}).get(name, ""),
        )
        for name in ("alpha", "beta")
    ]
    system = EmulatedSystem(layouts, fix_language="microkit")
    consoles = {layout.name: Console() for layout in layouts}
    for layout in layouts:
        system.add_board(layout, consoles[layout.name])
    try:
        wiring = wire_boards(spec, system.boards)
        entries = [board.load_file(bundled_guest("share")) for board in system.boards]
        outcomes = SystemLoop.of_boards(system.boards).run(entries, time_limit=60)
    finally:
        system.close()
    text = {
        name: console.output.decode().replace("\r\n", "\n") for name, console in consoles.items()
    }
    return text, outcomes, wiring, system


@pytest.mark.parametrize("alpha_one_to_one", [False, True], ids=["pools", "alpha-1:1"])
def test_two_vms_share_a_region_and_ring_each_other(alpha_one_to_one: bool) -> None:
    """alpha writes a pattern over shared_buf and rings channel 1; beta takes INTID 82,
    finds the pattern at its own guest address, inverts it and rings back on its channel
    2; alpha takes the interrupt and finds the answer.  Both power off."""
    text, outcomes, wiring, system = _run_two(one_to_one={"alpha": alpha_one_to_one})
    assert [(o.name, o.stop_reason) for o in outcomes] == [
        ("alpha", StopReason.SYSTEM_OFF),
        ("beta", StopReason.SYSTEM_OFF),
    ], text
    assert text["alpha"] == (
        "share: pattern written, ringing channel 1\n"
        "share: interrupt, pending 0x2\n"
        "share: answer ok\n"
    )
    assert text["beta"] == (
        "share: interrupt, pending 0x4\n"
        "share: pattern ok\n"
        "share: answer written, ringing channel 2\n"
    )
    assert (wiring.doorbells["alpha"].rung, wiring.doorbells["beta"].received) == (1, 1)
    assert (wiring.doorbells["beta"].rung, wiring.doorbells["alpha"].received) == (1, 1)
    # One set of frames: the VMM's view holds beta's answer, word 0 = ~pattern(0).
    first_word = int.from_bytes(wiring.regions["shared_buf"].read(0, 4), "little")
    assert first_word == ~0x5EED_0000 & 0xFFFF_FFFF
    alpha, beta = system.boards
    assert alpha.vm.memory.translate(0x2000_0000, 0x2000) == beta.vm.memory.translate(
        0x2800_0000, 0x2000
    )


def test_a_guest_that_rings_a_channel_it_was_not_given_is_stopped() -> None:
    # The DTB gives alpha channel 1; its command line makes it ring 5 instead.
    text, outcomes, wiring, system = _run_two({"alpha": "ring=5"})
    by_name = {o.name: o for o in outcomes}
    assert by_name["alpha"].stop_reason is StopReason.GUEST_FAULT
    diagnostic = system.boards[0].vcpu.diagnostic
    assert diagnostic is not None
    assert diagnostic.message == (
        "alpha: guest 4-byte write of 0x5 at 0xb100000 stopped the VM: alpha rang channel 5 "
        "through its doorbell at 0xb100000, but its system gives it no channel 5 to another "
        "VM (its channels: [1])"
    )
    # beta never hears anything: it waits until nothing can wake it.
    assert wiring.doorbells["beta"].received == 0
    assert by_name["beta"].stop_reason is not StopReason.SYSTEM_OFF
    assert "share: pattern ok" not in text["beta"]


def test_a_board_whose_vm_the_system_does_not_describe_is_refused() -> None:
    spec = load_system(TWO_VMS)
    system = EmulatedSystem([GuestLayout(name="gamma", ram_size=16 << 20, one_to_one=False)])
    system.add_board(system.layouts[0], Console())
    try:
        with pytest.raises(Sel4VmmError, match=r"VM 'gamma' is not in .*shared_two_vms\.system"):
            wire_boards(spec, system.boards)
    finally:
        system.close()


def test_vm_cross_connector_guest_and_crossvm_init_talk() -> None:
    """vm_cross_connector's cross_vm_test, with CrossvmInit modelled on the VMM side: the
    guest reads the component's string from crossvm_dp_0, writes its own, emits ready; the
    component prints "Got an event" and emits done, which arrives as INTID 82."""
    system = load_system(CROSS, defines={"PLAT": "qemu-arm-virt"})
    layout = GuestLayout(name="vm0", ram_size=16 << 20, bootargs="")
    board = EmulatedBoard(layout, Console())
    try:
        wiring = wire_cross_vm(system, {"vm0": RunningGuest(system.vms[0], board.vm, board.lines)})
        # The guest finds connection 0's event page and dataport in its DTB.
        board.cross_vm_nodes = device_tree_nodes(system, system.vms[0])
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


def test_run_system_wires_the_shared_region_and_doorbells(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sel4vmm run SYSTEM``'s path (run_system) wires every VM it runs."""
    made: list[CrossVmWiring] = []

    def recording(spec: SystemSpec, boards: Sequence[EmulatedBoard]) -> CrossVmWiring:
        wiring = wire_boards(spec, boards)
        made.append(wiring)
        return wiring

    monkeypatch.setattr(system_session, "wire_boards", recording)
    result = system_session.run_system(
        TWO_VMS, bundled_guest("hello"), one_to_one=False, time_limit=60
    )
    assert [vm.stop_reason for vm in result.vms] == [StopReason.SYSTEM_OFF] * 2
    (wiring,) = made
    assert sorted(wiring.doorbells) == ["alpha", "beta"]
    # The passthrough windows (serial, gic_vcpu) are the board's; the wiring adds the rest.
    assert sorted(wiring.regions) == ["mailbox", "shared_buf"]


def test_many_round_trips_keep_to_strict_ping_pong() -> None:
    """rounds=50: after the first exchange, 49 more counter ping-pongs through word 0,
    each a ring, an interrupt in the peer, an answer and a ring back."""
    text, outcomes, wiring, _ = _run_two({"alpha": "rounds=50", "beta": "rounds=50"})
    assert [o.stop_reason for o in outcomes] == [StopReason.SYSTEM_OFF] * 2, text
    assert text["alpha"].endswith("share: answer ok\nshare: 50 rounds ok\n")
    assert "FAIL" not in text["beta"]
    assert (wiring.doorbells["alpha"].rung, wiring.doorbells["alpha"].received) == (50, 50)
    assert (wiring.doorbells["beta"].rung, wiring.doorbells["beta"].received) == (50, 50)


def test_a_guest_whose_tree_gives_it_no_doorbell_says_so() -> None:
    """A board the cross-VM wiring never saw: its DTB has no doorbell and no window, and the
    share guest reports that instead of guessing addresses."""
    board = EmulatedBoard(GuestLayout(name="alone", ram_size=16 << 20, bootargs=""), Console())
    try:
        reason = board.loop.run(board.load_file(bundled_guest("share")), time_limit=60)
    finally:
        board.close()
    console = board.console.output.decode().replace("\r\n", "\n")
    assert console == "share: FAIL the device tree gives no shared region and doorbell\n"
    assert reason is StopReason.SYSTEM_OFF
