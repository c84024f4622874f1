"""The GICv3's frames from a device tree: libvmm's gic_v3_overlay.dts compiled with dtc."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.devices.gicv3 import Gicv3, gicv3_layout_from_dtb
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import DeviceTree, compile_dts
from sel4vmm.images.fdt_tree import read_fdt
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

#: The node's reg, copied from libvmm's examples/virtio_mmio/client_vm/gic_v3_overlay.dts
#: (../shared/realworld/libvmm/virtio_mmio/client_vm/gic_v3_overlay.dts).
OVERLAY_REG = (
    "<0x0 0x38800000 0x0 0x10000 0x0 0x38880000 0x0 0xc0000 0x0 0x31000000 0x0 0x2000 "
    "0x0 0x31010000 0x0 0x2000 0x0 0x31020000 0x0 0x2000>"
)
OVERLAYS = (
    "virtio_mmio/client_vm/gic_v3_overlay.dts",
    "vswitch/client_vm/aarch64/gic_v3_overlay.dts",
    "virtio_pci/client_vm/aarch64/gic_v3_overlay.dts",
)


def libvmm_tree(realworld: Path, overlay: str) -> DeviceTree:
    libvmm = realworld / "libvmm"
    path = libvmm / overlay
    assert OVERLAY_REG in " ".join(path.read_text().split())
    return DeviceTree(compile_dts(libvmm / "virtio_mmio/client_vm/linux.dts", [path]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_libvmm_overlay_gives_the_distributor_and_six_redistributors(
    realworld: Path, overlay: str
) -> None:
    layout = gicv3_layout_from_dtb(libvmm_tree(realworld, overlay))
    assert layout.distributor == 0x38800000
    assert layout.redistributor_regions == ((0x38880000, 0xC0000),)
    assert layout.node == "interrupt-controller@38800000"
    assert layout.capacity() == 6  # 0xc0000 bytes / 128 KiB
    assert [layout.redistributor_base(cpu) for cpu in (0, 1, 5)] == [
        0x38880000,
        0x388A0000,
        0x38920000,
    ]
    with pytest.raises(ValueError):
        layout.redistributor_base(6)


def test_a_vm_on_the_overlay_layout_answers_at_its_addresses(realworld: Path) -> None:
    tree = libvmm_tree(realworld, OVERLAYS[0])
    layout = gicv3_layout_from_dtb(read_fdt(tree.to_bytes()))
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)])
    Gicv3(4).attach(vm, layout)  # libvmm's imx8mm guests: four vCPUs
    fault = MemoryFault(0x38800000 + 0xFFE8, 4, False)  # GICD_PIDR2
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert fault.read_value == 0x3B
    fault = MemoryFault(0x388E0000 + 0x8, 8, False)  # PE 3's GICR_TYPER
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert fault.read_value == 3 << 32 | 3 << 8 | 1 << 4  # affinity 3, PE 3, Last
    # Past the last vCPU's redistributor nothing is reserved: the VMM reports the access.
    assert vm.memory.handle_fault(MemoryFault(0x38900000, 4, False)) is FaultResult.UNHANDLED
    with pytest.raises(Sel4VmmError, match="space for 6 PE") as error:
        Gicv3(8).attach(vm, layout)
    assert error.value.fix is not None and "0x100000" in error.value.fix


def test_a_gicv2_tree_is_a_located_error(realworld: Path) -> None:
    libvmm = realworld / "libvmm/virtio_mmio/client_vm"
    blob = compile_dts(libvmm / "linux.dts", [libvmm / "gic_v2_overlay.dts"])
    with pytest.raises(Sel4VmmError, match="no 'arm,gic-v3'") as error:
        gicv3_layout_from_dtb(blob, "guest.dtb")
    assert error.value.location is not None and error.value.location.path == "guest.dtb"
    assert error.value.fix is not None


@pytest.mark.parametrize(
    ("reg", "message"),
    [
        ("<0x0 0x8000000 0x0 0x10000>", "needs the distributor and 1 redistributor"),
        ("<0x0 0x8000000 0x0 0x1000 0x0 0x80a0000 0x0 0x20000>", "the distributor needs 0x10000"),
        ("<0x0 0x8000000 0x0 0x10000 0x0 0x80a0000 0x0 0x10000>", "at least 0x20000"),
    ],
)
def test_bad_reg_is_one_error(tmp_path: Path, reg: str, message: str) -> None:
    source = tmp_path / "gic.dts"
    source.write_text(
        "/dts-v1/;\n/ {\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n"
        f'\tintc@8000000 {{\n\t\tcompatible = "arm,gic-v3";\n\t\treg = {reg};\n\t}};\n}};\n'
    )
    with pytest.raises(Sel4VmmError, match=message) as error:
        gicv3_layout_from_dtb(DeviceTree(compile_dts(source), str(source)))
    assert error.value.location is not None and error.value.location.path == str(source)


def test_redistributor_regions_property_and_32_bit_cells(tmp_path: Path) -> None:
    source = tmp_path / "gic.dts"
    source.write_text(
        "/dts-v1/;\n/ {\n\t#address-cells = <1>;\n\t#size-cells = <1>;\n"
        "\tsoc {\n\t\t#address-cells = <1>;\n\t\t#size-cells = <1>;\n\t\tgic@8000000 {\n"
        '\t\t\tcompatible = "arm,gic-v3";\n\t\t\t#redistributor-regions = <2>;\n'
        "\t\t\treg = <0x8000000 0x10000 0x80a0000 0x40000 0x9000000 0x20000>;\n"
        "\t\t};\n\t};\n};\n"
    )
    layout = gicv3_layout_from_dtb(compile_dts(source))
    assert layout.redistributor_regions == ((0x80A0000, 0x40000), (0x9000000, 0x20000))
    assert layout.capacity() == 3
    assert layout.redistributor_base(2) == 0x9000000


def gic_source(tmp_path: Path, extra: str) -> Path:
    source = tmp_path / "gic.dts"
    source.write_text(
        "/dts-v1/;\n/ {\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n"
        '\tintc@8000000 {\n\t\tcompatible = "arm,gic-v3";\n'
        "\t\treg = <0x0 0x8000000 0x0 0x10000 0x0 0x80a0000 0x0 0x40000>;\n"
        f"{extra}\t}};\n}};\n"
    )
    return source


def test_a_disabled_gicv3_node_is_not_used(tmp_path: Path) -> None:
    source = gic_source(tmp_path, '\t\tstatus = "disabled";\n')
    with pytest.raises(Sel4VmmError, match="no 'arm,gic-v3'"):
        gicv3_layout_from_dtb(compile_dts(source))
    okay = gic_source(tmp_path, '\t\tstatus = "okay";\n')
    assert gicv3_layout_from_dtb(compile_dts(okay)).capacity() == 2


def test_a_stride_other_than_128k_is_refused(tmp_path: Path) -> None:
    source = gic_source(tmp_path, "\t\tredistributor-stride = <0x0 0x40000>;\n")
    with pytest.raises(Sel4VmmError, match="redistributor-stride is 0x40000") as error:
        gicv3_layout_from_dtb(compile_dts(source))
    assert error.value.fix is not None and "delete redistributor-stride" in error.value.fix
    same = gic_source(tmp_path, "\t\tredistributor-stride = <0x0 0x20000>;\n")
    assert gicv3_layout_from_dtb(compile_dts(same)).capacity() == 2
