"""virtio-mmio devices from a guest DTB's ``virtio,mmio`` nodes, checked against the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends, VirtioNode, virtio_nodes
from sel4vmm.devices.virtio.mmio import DEVICE_ID, MAGIC, MAGIC_VALUE
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import compile_dts
from sel4vmm.memory import FaultResult, MemoryFault

CLIENT_VM = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "realworld"
    / "libvmm"
    / "virtio_mmio"
    / "client_vm"
)
needs_libvmm = pytest.mark.skipif(
    not (CLIENT_VM / "linux.dts").is_file(),
    reason="libvmm's virtio_mmio/client_vm/linux.dts is not in ../shared/realworld/libvmm",
)

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


def _node(name: str, base: int, spi: int, size: int = 0x200, flags: int = 4) -> str:
    return (
        f'{name}@{base:x} {{ compatible = "virtio,mmio"; reg = <0 {base:#x} 0 {size:#x}>; '
        f"interrupts = <0 {spi} {flags}>; }};"
    )


@needs_libvmm
def test_libvmm_client_vm_nodes_are_read_with_their_intids() -> None:
    dtb = compile_dts(CLIENT_VM / "linux.dts", [CLIENT_VM / "gic_v2_overlay.dts"])
    nodes = virtio_nodes(dtb, "linux.dts")
    assert nodes == [
        VirtioNode("/virtio-console@130000", 0x130000, 0x200, 32 + 42),
        VirtioNode("/virtio-blk@150000", 0x150000, 0x200, 32 + 43),
        VirtioNode("/virtio-net@160000", 0x160000, 0x200, 32 + 44),
    ]
    assert [n.kind for n in nodes] == ["console", "block", "net"]


def _board() -> EmulatedBoard:
    return EmulatedBoard(GuestLayout(), Console())


def test_a_disk_goes_to_the_blk_node_and_unbacked_nodes_read_device_id_0(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    dtb = _dtb(tmp_path, _node("virtio_mmio", 0x100000, 40) + _node("virtio-blk", 0x150000, 43))
    board = _board()
    try:
        board.attach_virtio(dtb, "guest.dts", VirtioBackends(disk=disk))
        first, second = board.virtio.transports
        assert first.device.device_id == 0 and second.device is board.virtio.disk
        for base, device_id in ((0x100000, 0), (0x150000, 2)):
            magic = MemoryFault(base + MAGIC, 4, False)
            assert board.vm.memory.handle_fault(magic) is FaultResult.HANDLED
            assert magic.read_value == MAGIC_VALUE
            ident = MemoryFault(base + DEVICE_ID, 4, False)
            assert board.vm.memory.handle_fault(ident) is FaultResult.HANDLED
            assert ident.read_value == device_id
        assert {s.intid for s in board.loop.sources} >= {72, 75}
    finally:
        board.close()


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (
            _node("virtio-blk", 0x4000_0000, 43),
            "/virtio-blk@40000000: its window [0x40000000, 0x40000200) overlaps guest RAM",
        ),
        (
            _node("virtio-blk", 0x900_0000, 43),
            "/virtio-blk@9000000: its window [0x9000000, 0x9000200) overlaps serial",
        ),
        (
            _node("virtio-blk", 0x150000, 43, size=0x1000) + _node("virtio-net", 0x150800, 44),
            "/virtio-net@150800: its window [0x150800, 0x150a00) overlaps /virtio-blk@150000",
        ),
        (
            _node("virtio-blk", 0x150000, 43) + _node("virtio-net", 0x160000, 43),
            "/virtio-net@160000: SPI 43 is already /virtio-blk@150000's",
        ),
        (
            _node("virtio-blk", 0x150000, 43, flags=1),
            "/virtio-blk@150000: interrupts = <0 43 1> is not a level-high SPI",
        ),
    ],
)
def test_a_node_the_plan_gives_to_something_else_is_refused_by_name(
    tmp_path: Path, nodes: str, message: str
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    board = _board()
    try:
        with pytest.raises(Sel4VmmError) as caught:
            board.attach_virtio(_dtb(tmp_path, nodes), "guest.dts", VirtioBackends(disk=disk))
        assert message in caught.value.message
        assert caught.value.location is not None and caught.value.fix
        assert board.virtio.transports == []
    finally:
        board.close()


def test_a_disk_without_virtio_nodes_says_what_to_add(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    board = _board()
    try:
        with pytest.raises(Sel4VmmError, match="has none"):
            board.attach_virtio(board.device_tree(), "board", VirtioBackends(disk=disk))
    finally:
        board.close()


def test_a_missing_disk_image_is_named_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.img"
    board = _board()
    try:
        with pytest.raises(Sel4VmmError) as caught:
            board.attach_virtio(
                _dtb(tmp_path, _node("virtio-blk", 0x150000, 43)),
                "guest.dts",
                VirtioBackends(disk=missing),
            )
        assert str(caught.value.location) == str(missing)
        assert "cannot open the disk image" in caught.value.message
        assert board.virtio.transports == []
    finally:
        board.close()
