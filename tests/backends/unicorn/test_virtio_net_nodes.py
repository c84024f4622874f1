"""The virtio-net card on a guest DTB's net node (``run --net``): which node, MAC, peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.devices.net_peers import mac_for_vm
from sel4vmm.devices.net_switch import VirtualSwitch
from sel4vmm.devices.virtio.mmio import DEVICE_ID
from sel4vmm.devices.virtio.net import VirtioNet
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import compile_dts
from sel4vmm.memory import MemoryFault

TREE = """/dts-v1/;
/ {{
	#address-cells = <2>;
	#size-cells = <2>;
	{nodes}
}};
"""


def _dtb(tmp_path: Path, nodes: str) -> bytes:
    source = tmp_path / "guest.dts"
    source.write_text(TREE.format(nodes=nodes))
    return compile_dts(source)


def _node(name: str, base: int, spi: int, extra: str = "") -> str:
    return (
        f'{name}@{base:x} {{ compatible = "virtio,mmio"; reg = <0 {base:#x} 0 0x200>; '
        f"interrupts = <0 {spi} 4>; {extra} }};"
    )


def _device_id(board: EmulatedBoard, base: int) -> int:
    fault = MemoryFault(base + DEVICE_ID, 4, False)
    board.vm.memory.handle_fault(fault)
    return fault.read_value


NET = _node("virtio-net", 0x160000, 44)
UNNAMED = _node("virtio_mmio", 0x100000, 40)


@pytest.mark.parametrize(
    ("nodes", "backends", "device_ids", "backend"),
    [
        # The default: a named net node gets a card on a switch of the VM's own.
        (NET, VirtioBackends(), {0x160000: 1}, "switch"),
        (NET, VirtioBackends(net="loopback", net_required=True), {0x160000: 1}, "loopback"),
        (NET, VirtioBackends(net="none"), {0x160000: 0}, None),
        # Unnamed (QEMU-style) nodes get a card only when --net was given.
        (UNNAMED, VirtioBackends(), {0x100000: 0}, None),
        (UNNAMED, VirtioBackends(net="switch", net_required=True), {0x100000: 1}, "switch"),
    ],
)
def test_the_net_node_gets_a_card_on_the_peer_net_names(
    tmp_path: Path,
    nodes: str,
    backends: VirtioBackends,
    device_ids: dict[int, int],
    backend: str | None,
) -> None:
    board = EmulatedBoard(GuestLayout(name="vm_a"), Console())
    try:
        board.attach_virtio(_dtb(tmp_path, nodes), "guest.dts", backends)
        assert {base: _device_id(board, base) for base in device_ids} == device_ids
        net = board.virtio.net
        assert (net.backend if net is not None else None) == backend
        if net is not None:
            assert isinstance(net.device, VirtioNet) and net.device.mac == mac_for_vm("vm_a")
            if backend == "switch":
                assert net.port is not None and net.port.name == "vm_a"
    finally:
        board.close()


def test_an_explicit_net_needs_a_free_node(tmp_path: Path) -> None:
    board = EmulatedBoard(GuestLayout(), Console())
    try:
        with pytest.raises(Sel4VmmError, match="no free virtio,mmio node for the virtio net"):
            board.attach_virtio(
                _dtb(tmp_path, _node("virtio-blk", 0x150000, 43)),
                "guest.dts",
                VirtioBackends(net="loopback", net_required=True),
            )
    finally:
        board.close()


def test_two_vms_on_one_switch_use_their_local_mac_address_and_must_differ(
    tmp_path: Path,
) -> None:
    switch = VirtualSwitch()
    backends = VirtioBackends(switch=switch)
    mac = "local-mac-address = [02 00 00 00 00 0a];"
    first = EmulatedBoard(GuestLayout(name="vm_a"), Console())
    second = EmulatedBoard(GuestLayout(name="vm_b"), Console())
    try:
        first.attach_virtio(_dtb(tmp_path, _node("net", 0x160000, 44, mac)), "a.dts", backends)
        assert first.virtio.net is not None
        assert first.virtio.net.report()["mac"] == "02:00:00:00:00:0a"
        with pytest.raises(Sel4VmmError) as caught:
            second.attach_virtio(_dtb(tmp_path, _node("net", 0x160000, 44, mac)), "b.dts", backends)
        assert "already the address of switch port 'vm_a'" in caught.value.message
        assert caught.value.location is not None and caught.value.location.path == "b.dts"
        assert second.virtio.transports == [] and set(switch.ports) == {"vm_a"}
        second.attach_virtio(_dtb(tmp_path, NET), "b.dts", backends)
        assert set(switch.ports) == {"vm_a", "vm_b"}
    finally:
        first.close()
        second.close()
    # A stopped VM's card is unplugged: the switch keeps the port, without a device.
    assert all(port.device is None for port in switch.ports.values())


def test_a_bad_local_mac_address_is_refused_by_node(tmp_path: Path) -> None:
    board = EmulatedBoard(GuestLayout(), Console())
    try:
        nodes = _node("virtio-net", 0x160000, 44, "local-mac-address = [02 00 00];")
        with pytest.raises(Sel4VmmError, match="/virtio-net@160000: local-mac-address is 3"):
            board.attach_virtio(_dtb(tmp_path, nodes), "guest.dts", VirtioBackends())
    finally:
        board.close()
