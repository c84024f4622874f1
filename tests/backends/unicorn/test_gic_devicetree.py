"""The guest DTB's GIC node: which GIC the emulator gives the VM, and the refusals.

The trees are libvmm's virtio_mmio client (``../shared/realworld/libvmm/virtio_mmio/
client_vm/``: ``linux.dts`` with ``gic_v2_overlay.dts`` or ``gic_v3_overlay.dts``),
compiled as libvmm's Makefiles do (overlays concatenated after the base).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.gic_devicetree import (
    check_gicv2_placement,
    check_gicv3_frames,
    guest_gic,
)
from sel4vmm.backends.unicorn.linux_boot import use_guest_gic
from sel4vmm.backends.unicorn.virtio_devices import ClaimedWindow
from sel4vmm.devices.gicv3 import Gicv3Layout
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import compile_dts
from tests.debian_guests import CLIENT_VM

pytestmark = pytest.mark.skipif(
    not (CLIENT_VM / "gic_v3_overlay.dts").is_file(),
    reason="libvmm's virtio_mmio/client_vm is not in ../shared/realworld/libvmm",
)


def tree(*overlays: str, extra: str = "", tmp_path: Path | None = None) -> bytes:
    paths = [CLIENT_VM / name for name in overlays]
    if extra:
        assert tmp_path is not None
        (tmp_path / "extra.dts").write_text(extra)
        paths.append(tmp_path / "extra.dts")
    return compile_dts(CLIENT_VM / "linux.dts", paths)


def test_libvmms_gicv3_overlay_is_a_gicv3_at_the_imx8m_addresses() -> None:
    gic = guest_gic(tree("gic_v3_overlay.dts"), "linux.dts")
    assert gic is not None and gic.version == 3
    assert gic.node == "interrupt-controller@38800000"
    assert gic.gicv3 == Gicv3Layout(
        0x38800000, ((0x38880000, 0xC0000),), "interrupt-controller@38800000"
    )


def test_libvmms_gicv2_overlay_sits_where_the_board_emulates_its_gicv2() -> None:
    gic = guest_gic(tree("gic_v2_overlay.dts"), "linux.dts")
    assert gic is not None and gic.version == 2 and gic.node == "intc@8000000"
    assert (gic.distributor, gic.cpu_interface) == (0x8000000, 0x8010000)
    layout = GuestLayout()
    check_gicv2_placement(gic, layout.gicd_base, layout.gic_vcpu.guest_addr, "board", "x")


def test_libvmms_tree_without_its_gic_overlay_is_refused() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        guest_gic(tree(), "linux.dts")
    assert "interrupt-parent is phandle 0x8001, which no node has" in raised.value.message
    assert raised.value.fix is not None and "gic_v3_overlay.dts" in raised.value.fix


def test_an_interrupt_controller_that_is_not_a_gic_is_refused(tmp_path: Path) -> None:
    other = """/ {
	interrupt-controller@c000000 {
		compatible = "riscv,plic0";
		reg = <0x00 0xc000000 0x00 0x4000000>;
		interrupt-controller;
		#interrupt-cells = <0x01>;
		phandle = <0x8001>;
	};
};
"""
    with pytest.raises(Sel4VmmError) as raised:
        guest_gic(tree(extra=other, tmp_path=tmp_path), "plic.dts")
    message = raised.value.message
    assert "interrupt-controller@c000000 (riscv,plic0) is not a GIC" in message


def test_a_tree_with_no_interrupt_parent_and_no_gic_leaves_the_board_as_it_is(
    tmp_path: Path,
) -> None:
    dtb = tree(extra="/ {\n\t/delete-property/ interrupt-parent;\n};\n", tmp_path=tmp_path)
    assert guest_gic(dtb, "linux.dts") is None


def test_two_gics_are_one_error(tmp_path: Path) -> None:
    # Both of libvmm's overlays at once dtc itself refuses (one phandle, 0x8001, twice).
    second = """/ {
	intc@8000000 {
		compatible = "arm,cortex-a15-gic";
		reg = <0x00 0x8000000 0x00 0x10000 0x00 0x8010000 0x00 0x10000>;
		interrupt-controller;
		#interrupt-cells = <0x03>;
	};
};
"""
    dtb = tree("gic_v3_overlay.dts", extra=second, tmp_path=tmp_path)
    with pytest.raises(Sel4VmmError) as raised:
        guest_gic(dtb, "linux.dts")
    assert raised.value.location is not None and raised.value.location.path == "linux.dts"
    assert "2 GIC interrupt controllers" in raised.value.message
    assert raised.value.fix is not None and "keep one GIC node" in raised.value.fix


def test_a_gicv2_elsewhere_is_refused_with_the_boards_addresses(tmp_path: Path) -> None:
    moved = """/ {
	intc@9100000 {
		compatible = "arm,gic-400";
		reg = <0x00 0x9100000 0x00 0x1000 0x00 0x9102000 0x00 0x2000>;
		interrupt-controller;
		#interrupt-cells = <0x03>;
		phandle = <0x8001>;
	};
};
"""
    gic = guest_gic(tree(extra=moved, tmp_path=tmp_path), "moved.dts")
    assert gic is not None and gic.version == 2
    layout = GuestLayout()
    with pytest.raises(Sel4VmmError) as raised:
        check_gicv2_placement(
            gic, layout.gicd_base, layout.gic_vcpu.guest_addr, "the emulated board", "moved.dts"
        )
    error = raised.value
    assert error.location is not None and error.location.path == "moved.dts"
    assert "intc@9100000" in error.message and "0x9100000" in error.message
    assert error.fix is not None and "<0x8000000 ...> <0x8010000 ...>" in error.fix


def test_gicv3_frames_over_guest_ram_or_too_few_redistributors_are_refused() -> None:
    over_ram = Gicv3Layout(0x40000000, ((0x40010000, 0x40000),), "gic@40000000")
    ram = [ClaimedWindow("guest RAM", 0x40000000, 0x10000000)]
    with pytest.raises(Sel4VmmError) as raised:
        check_gicv3_frames(over_ram, 1, ram, "t.dts")
    assert "the GICv3 distributor [0x40000000, 0x40010000) overlap guest RAM" in str(raised.value)
    # libvmm's overlay has 0xc0000 bytes of redistributors: six vCPUs' worth.
    libvmm = Gicv3Layout(0x38800000, ((0x38880000, 0xC0000),), "interrupt-controller@38800000")
    check_gicv3_frames(libvmm, 6, ram, "t.dts")
    with pytest.raises(Sel4VmmError) as raised:
        check_gicv3_frames(libvmm, 7, ram, "t.dts")
    assert "hold 6 vCPU(s) but the VM has 7" in raised.value.message
    assert raised.value.fix is not None and "0xe0000 bytes" in raised.value.fix


def test_the_board_swaps_its_gicv2_for_the_trees_gicv3() -> None:
    board = EmulatedBoard(GuestLayout(num_vcpus=2), Console())
    try:
        memory = board.vm.memory
        assert memory.find(0x8000000) is not None  # the GICv2 distributor
        assert memory.find(0x8010000) is not None  # the GICV passthrough at GICC
        use_guest_gic(board, tree("gic_v3_overlay.dts"), "linux.dts")
        assert board.gicv3 is not None and board.loop.interrupts is board.gicv3
        assert memory.find(0x8000000) is None and memory.find(0x8010000) is None
        distributor = memory.find(0x38800000)
        redistributors = memory.find(0x38880000)
        assert distributor is not None and distributor.label == "GICv3 distributor"
        assert redistributors is not None and redistributors.size == 2 * 0x20000
        names = [window.name for window in board.claimed_windows()]
        assert "the GICv3 distributor" in names and "the vGIC distributor" not in names
        for vcpu in board.vcpus:
            assert vcpu.system_registers is board.gicv3
    finally:
        board.close()


def test_a_gicv3_over_the_uart_is_refused_and_the_gicv2_stays(tmp_path: Path) -> None:
    over_uart = """/ {
	interrupt-controller@9000000 {
		compatible = "arm,gic-v3";
		reg = <0x00 0x9000000 0x00 0x10000 0x00 0x9010000 0x00 0x20000>;
		interrupt-controller;
		#interrupt-cells = <0x03>;
		phandle = <0x8001>;
	};
};
"""
    board = EmulatedBoard(GuestLayout(), Console())
    try:
        with pytest.raises(Sel4VmmError) as raised:
            use_guest_gic(board, tree(extra=over_uart, tmp_path=tmp_path), "uart.dts")
        assert "overlap serial [0x9000000, 0x9001000)" in raised.value.message
        assert board.gicv3 is None and board.vm.memory.find(0x8000000) is not None
    finally:
        board.close()
