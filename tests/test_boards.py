"""The board table: every board loads, its ranges build PhysicalMemory, aliases resolve."""

from __future__ import annotations

import pytest

from sel4vmm.boards import Board, board_names, canonical_board_name, load_board, normalise
from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4.physmem import PhysicalMemory

REQUIRED = {
    "qemu_virt_aarch64",
    "odroidc2",
    "odroidc4",
    "imx8mm_evk",
    "maaxboard",
    "zcu102",
    "tx2",
    "exynos5422",
    "x86_64_generic",
    "tk1",
    "tx1",
    "rpi4b",
    "imx8mq_evk",
    "imx8mp_evk",
    "qemu_virt_riscv64",
    "cheshire",
    "rk3288",
}
RISCV = {"qemu_virt_riscv64", "cheshire"}


def test_the_required_boards_are_known() -> None:
    assert set(board_names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_board_builds_physical_memory(name: str) -> None:
    board = load_board(name)
    ranges = board.memory_ranges()
    memory = PhysicalMemory(ranges)
    assert [r.base for r in ranges] == sorted(r.base for r in ranges)
    assert board.ram_size == sum(r.size for r in ranges if not r.device) > 0
    ram = ranges[[r.device for r in ranges].index(False)]
    view = memory.view(ram.base, 16)
    view[:4] = b"sel4"
    assert bytes(memory.view(ram.base, 4)) == b"sel4"


@pytest.mark.parametrize("name", sorted(REQUIRED - {"x86_64_generic"} - RISCV))
def test_arm_boards_have_a_gic_and_a_mapped_uart(name: str) -> None:
    board = load_board(name)
    assert board.gic is not None and board.gic.version in (2, 3)
    if board.gic.version == 2:
        assert board.gic.vcpu_interface is not None, "GICv2 VMs need GICV to pass through"
    else:
        assert board.gic.redistributor is not None
    assert not board.uart.io_port
    assert any(
        r.device and r.contains(board.uart.base, board.uart.size) for r in board.memory_ranges()
    )
    assert board.uart.irq >= 32  # a shared peripheral interrupt
    assert board.uart.compatible


def test_qemu_virt_facts_match_the_realworld_device_tree() -> None:
    board = load_board("qemu_virt_aarch64")
    assert board.arch == "aarch64" and board.ram_configurable
    assert [(r.base, r.size) for r in board.ram] == [(0x40000000, 2 << 30)]
    assert board.gic is not None and board.gic.vcpu_interface is not None
    assert board.gic.distributor.base == 0x08000000
    assert board.gic.vcpu_interface.base == 0x08040000
    assert (board.uart.base, board.uart.irq) == (0x09000000, 33)
    assert "arm,pl011" in board.uart.compatible


def test_qemu_ram_size_is_a_parameter() -> None:
    board = load_board("qemu-arm-virt", ram_size=256 << 20)
    assert [(r.base, r.size) for r in board.ram] == [(0x40000000, 256 << 20)]


def test_x86_ram_fills_the_windows_around_the_holes() -> None:
    board = load_board("x86_64_generic", ram_size=4 << 30)
    assert [(r.base, r.end) for r in board.ram] == [
        (0x0, 0xA0000),
        (0x100000, 0xC0000000),
        (0x100000000, 0x100000000 + (4 << 30) - 0xA0000 - (0xC0000000 - 0x100000)),
    ]
    assert board.uart.io_port and board.uart.base == 0x3F8
    assert all(r.base != 0x3F8 for r in board.memory_ranges())


def test_fixed_boards_can_be_limited_but_not_grown() -> None:
    board = load_board("zcu102", ram_size=3 << 30)
    assert [(r.base, r.size) for r in board.ram] == [(0x0, 2 << 30), (0x800000000, 1 << 30)]
    with pytest.raises(Sel4VmmError, match="has 0x100000000 bytes of RAM"):
        load_board("zcu102", ram_size=8 << 30)


def test_bad_ram_sizes_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="multiple of 4 KiB"):
        load_board("qemu_virt_aarch64", ram_size=12345)
    with pytest.raises(Sel4VmmError, match="cannot hold"):
        load_board("qemu_virt_aarch64", ram_size=1 << 40)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("qemu-arm-virt", "qemu_virt_aarch64"),
        ("qemu_arm_virt", "qemu_virt_aarch64"),
        ("QEMU_VIRT_AARCH64", "qemu_virt_aarch64"),
        ("odroid-c4", "odroidc4"),
        ("odroid-c2", "odroidc2"),
        ("imx8mm-evk", "imx8mm_evk"),
        ("zynqmp", "zcu102"),
        ("x86_64_generic_vtx", "x86_64_generic"),
        ("odroid-xu4", "exynos5422"),
    ],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert canonical_board_name(alias) == canonical
    assert load_board(alias).name == canonical


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(Sel4VmmError) as caught:
        load_board("raspberry-pi-9")
    assert "raspberry-pi-9" in caught.value.message
    for name in REQUIRED:
        assert name in caught.value.message
    assert canonical_board_name("raspberry-pi-9") is None


def test_normalise() -> None:
    assert normalise(" Odroid-C4 ") == "odroid_c4"


def test_boards_are_immutable_values() -> None:
    board = load_board("odroidc4")
    assert isinstance(board, Board)
    with pytest.raises(AttributeError):
        board.name = "other"  # type: ignore[misc]
    assert load_board("odroidc4") == board


# The RAM each board's kernel device tree gives, copied from seL4/seL4 at
# 1326364bc9135d9445d936ebc01e38a402c1f4c6 (file and node in each comment).
SEL4_RAM = {
    # tools/dts/maaxboard.dts memory@40000000 reg = <0x00 0x40000000 0x00 0x80000000>
    "maaxboard": [(0x40000000, 0x80000000)],
    # tools/dts/odroidc4.dts memory@0 reg = <0x00 0x00 0x00 0xf5800000>
    "odroidc4": [(0x0, 0xF5800000)],
    # tools/dts/tk1.dts memory@80000000 reg = < 0x00 0x80000000 0x00 0x80000000 >
    "tk1": [(0x80000000, 0x80000000)],
    # src/plat/tx1/overlay-tx1.dts memory reg = <0x00 0x80000000 0x00 0x7f000000>,
    # <0x01 0x00000000 0x00 0x80000000>
    "tx1": [(0x80000000, 0x7F000000), (0x100000000, 0x80000000)],
    # src/plat/bcm2711/overlay-rpi4-8gb.dts memory@0
    "rpi4b": [
        (0x0, 0x3B400000),
        (0x40000000, 0xBC000000),
        (0x100000000, 0x80000000),
        (0x180000000, 0x80000000),
    ],
    # src/plat/bcm2711/overlay-rpi4-1gb.dts memory@0 reg = < 0x00000000 0x00000000 0x3b400000 >
    "rpi4b_1gb": [(0x0, 0x3B400000)],
    # tools/dts/imx8mq-evk.dts memory@40000000 reg = < 0x00 0x40000000 0x00 0xc0000000 >
    "imx8mq_evk": [(0x40000000, 0xC0000000)],
    # tools/dts/imx8mp-evk.dts memory@40000000
    # reg = <0x00 0x40000000 0x00 0xc0000000 0x01 0x00 0x00 0xc0000000>
    "imx8mp_evk": [(0x40000000, 0xC0000000), (0x100000000, 0xC0000000)],
    # tools/dts/cheshire.dts memory@80000000 reg = <0x0 0x80000000 0x0 0x40000000>
    "cheshire": [(0x80000000, 0x40000000)],
    # branch rk3288 (91bd40d3) tools/dts/rk3288-ntablet.dts memory reg = <0x00 0x00 0x00
    # 0x80000000>; its overlay gives the kernel only 0x200000+0x7fe00000 (TrustZone).
    "rk3288": [(0x0, 0x80000000)],
}


@pytest.mark.parametrize(("name", "ram"), sorted(SEL4_RAM.items()))
def test_board_ram_is_the_kernel_device_tree_s(name: str, ram: list[tuple[int, int]]) -> None:
    assert [(r.base, r.size) for r in load_board(name).ram] == ram


def test_reserved_memory_overlays() -> None:
    # src/plat/qemu-arm-virt/overlay-reserve-vm-memory.dts vm-memory@40000000
    # reg = <0x0 0x40000000 0x0 0x20000000>; odroidc4.dts secmon@5000000
    # reg = <0x00 0x5000000 0x00 0x300000>; overlay-cheshire.dts sbi@80000000
    # reg = <0x80000000 0x200000>; overlay-tk1.dts: kernel memory 0x80000000+0x27f00000 only.
    expected = {
        "qemu_virt_aarch64": [(0x40000000, 0x20000000)],
        "odroidc4": [(0x5000000, 0x300000)],
        "cheshire": [(0x80000000, 0x200000)],
        "tk1": [(0xA7F00000, 0x100000000 - 0xA7F00000)],
    }
    for name, ranges in expected.items():
        assert [(r.base, r.size) for r in load_board(name).reserved_memory] == ranges, name


def test_riscv_boards() -> None:
    qemu = load_board("qemu_virt_riscv64")
    assert qemu.arch == "riscv64" and qemu.ram_configurable and qemu.gic is None
    assert [(r.base, r.size) for r in qemu.ram] == [(0x80000000, 2 << 30)]
    # QEMU hw/riscv/virt.c: VIRT_UART0 0x10000000 size 0x100, UART0_IRQ 10.
    assert (qemu.uart.base, qemu.uart.size, qemu.uart.irq) == (0x10000000, 0x100, 10)
    cheshire = load_board("cheshire")
    assert (cheshire.uart.base, cheshire.uart.irq) == (0x3002000, 1)


def test_gic_and_uart_of_the_added_arm_boards() -> None:
    tk1 = load_board("tk1")
    assert tk1.gic is not None and tk1.gic.vcpu_interface is not None
    assert (tk1.gic.distributor.base, tk1.gic.vcpu_interface.base) == (0x50041000, 0x50046000)
    assert (tk1.uart.base, tk1.uart.irq) == (0x70006300, 90 + 32)
    rpi = load_board("rpi4")
    assert rpi.name == "rpi4b" and rpi.gic is not None
    assert rpi.gic.distributor.base == 0xFF841000  # 0x40041000 through the soc ranges
    assert (rpi.uart.base, rpi.uart.irq) == (0xFE215040, 0x5D + 32)
    assert load_board("imx8mp_evk").uart.base == 0x30890000  # serial1, seL4's console


def test_smp_cores_follow_the_microkit_sdk() -> None:
    # microkit build_sdk.py (cfd521630a52f718b8140d504c695edbaf27a915): smp_cores=4.
    for name in ("qemu_virt_aarch64", "odroidc4", "maaxboard", "zcu102", "rpi4b"):
        assert load_board(name).smp_cores == 4
    assert load_board("cheshire").smp_cores == 1
