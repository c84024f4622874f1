"""From CAmkES settings to SystemSpec, on the real camkes-vm-examples and small files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.camkes.reader import platform_directories
from sel4vmm.config.spec import RegionKind, SystemSpec
from sel4vmm.errors import Sel4VmmError
from tests.helpers import REALWORLD

from .conftest import WriteFile

EXAMPLES = REALWORLD / "camkes-vm-examples"


def _cases() -> list[tuple[str, str | None]]:
    """Every .camkes file; application files once per platform directory beside them."""
    cases: list[tuple[str, str | None]] = []
    for path in sorted(EXAMPLES.glob("**/*.camkes")):
        relative = str(path.relative_to(EXAMPLES))
        platforms = [] if path.name == "devices.camkes" else platform_directories(path.parent)
        cases += [(relative, platform) for platform in platforms] or [(relative, None)]
    return cases


def _read(realworld: Path, relative: str, platform: str | None = None) -> SystemSpec:
    defines = {"PLAT": platform} if platform else {}
    return read_camkes(realworld / "camkes-vm-examples" / relative, defines=defines)


@pytest.mark.parametrize(("relative", "platform"), _cases())
def test_every_real_configuration_is_read(
    realworld: Path, relative: str, platform: str | None
) -> None:
    spec = _read(realworld, relative, platform)
    assert spec.format == "camkes"
    assert spec.vms, "every example configures at least one VM"
    assert [f for f in spec.findings if f.severity == "error"] == []
    for finding in spec.findings:
        assert finding.location is not None
    for vm in spec.vms:
        assert vm.ram_size > 0 and vm.ram_base % 0x1000 == 0
        (ram,) = [r for r in vm.regions if r.kind is RegionKind.RAM]
        assert (ram.guest_addr, ram.size) == (vm.ram_base, vm.ram_size)
        assert ram.location is not None and ram.location.line > 0
        for untyped in vm.device_untypeds:
            assert untyped.location is not None and untyped.paddr % (1 << 12) == 0


def test_there_are_real_configurations_to_read() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip("the real-world files are not beside the repository")
    assert len(_cases()) >= 30


def test_vm_minimal_on_qemu_arm_virt(realworld: Path) -> None:
    spec = _read(realworld, "vm_minimal/vm_minimal.camkes", "qemu-arm-virt")
    assert spec.board == "qemu_virt_aarch64"
    (vm,) = spec.vms
    assert (vm.name, vm.ram_base, vm.ram_size) == ("vm0", 0x40000000, 0x20000000)
    assert [(p.size_bits, p.count) for p in vm.pools] == [(24, 12)]
    assert [(u.paddr, u.size_bits) for u in vm.device_untypeds] == [
        (0x8040000, 12),
        (0x40000000, 29),
    ]
    assert vm.num_vcpus == 2
    assert vm.dtb_passthrough == ["/pl011@9000000"]
    assert vm.images.stdout == "/pl011@9000000"
    assert (vm.images.dtb_addr, vm.images.initrd_addr) == (0x4F000000, 0x4D700000)
    assert vm.images.kernel_entry_addr is None
    assert (vm.images.kernel, vm.images.dtb, vm.images.initrd) == (
        "linux",
        "linux-dtb",
        "linux-initrd",
    )
    assert vm.one_to_one is False and vm.ram_paddr_base is None
    assert vm.extra["address_config"] == "linux_address_config"
    assert vm.extra["cnode_size_bits"] == 23
    ram_location = vm.ram_location
    assert ram_location is not None
    assert ram_location.path.endswith("qemu-arm-virt/devices.camkes")
    assert (ram_location.line, ram_location.column) == (21, 13)  # the "linux_ram_base" key


def test_zcu102_uses_the_new_attribute_names(realworld: Path) -> None:
    spec = _read(realworld, "vm_minimal/zcu102/2022_1/devices.camkes")
    assert spec.board == "zcu102"
    (vm,) = spec.vms
    assert (vm.ram_base, vm.ram_size) == (0x10000000, 0x10000000)
    images = vm.images
    assert images.kernel_entry_addr == 0x10080000
    assert (images.generate_dtb, images.provide_dtb, images.provide_initrd) == (True, False, True)
    assert images.dtb_base == "linux-dtb"
    assert images.bootargs is not None and images.bootargs.startswith("console=ttyPS0,115200")
    assert images.stdout == "serial0:115200n8"
    assert images.locations["kernel_entry_addr"].line == 28
    assert [(p.size_bits, p.count) for p in vm.pools] == [(28, 1)]
    assert vm.num_vcpus == 4
    smc = vm.extra["allowed_smc_functions"]
    assert isinstance(smc, list) and smc[0] == 0xC2000001  # SMC_PM_GET_API_VERSION
    assert vm.extra["clean_cache"] is False


def test_vm_multi_has_three_vms(realworld: Path) -> None:
    spec = _read(realworld, "vm_multi/vm_multi.camkes", "qemu-arm-virt")
    assert [(vm.name, vm.ram_base) for vm in spec.vms] == [
        ("vm0", 0x40000000),
        ("vm1", 0x48000000),
        ("vm2", 0x50000000),
    ]
    vm0 = spec.vms[0]
    assert vm0.extra["dtb_irqs"] == [35, 36, 37, 38]
    assert [(f.paddr, f.size, f.page_bits) for f in vm0.device_frames] == [(0x8040000, 0x1000, 12)]
    assert vm0.images.initrd == "linux-initrd-vm0"
    assert vm0.images.dtb is None  # "dtb_name" : "" means no DTB image
    assert [(p.size_bits, p.count) for p in vm0.pools] == [(21, 12), (12, 12)]


def test_older_single_vm_assembly_from_vm_common(realworld: Path) -> None:
    spec = _read(realworld, "odroid_vm/vm_odroid.camkes")
    (vm,) = spec.vms
    assert vm.name == "vm"
    assert [(p.size_bits, p.count) for p in vm.pools] == [(24, 12)]  # vm_common's default
    assert "/soc/usb@12110000" in vm.dtb_passthrough  # #ifndef FEATURE_VUSB
    vusb = read_camkes(
        realworld / "camkes-vm-examples/odroid_vm/vm_odroid.camkes", defines={"FEATURE_VUSB": "1"}
    )
    assert "/soc/usb@12110000" not in vusb.vms[0].dtb_passthrough
    assert all(f.severity == "warning" for f in spec.findings)


def test_tx2_dtb_nodes_without_path_are_kept(realworld: Path) -> None:
    spec = _read(realworld, "vm_minimal/tx2/devices.camkes")
    assert spec.vms[0].extra["dtb_nodes"] == [
        {"properties": {"compatible[0]": "nvidia,tegra186-bpmp"}}
    ]


SEED_ONE_TO_ONE = """
#include <configurations/vm.h>
#define VM_RAM_BASE 0x40000000
#define VM_RAM_SIZE 0x20000000
assembly { composition {} configuration {
vm0.vm_address_config = {
    "ram_base" : VAR_STRINGIZE(VM_RAM_BASE),
    "ram_paddr_base" : VAR_STRINGIZE(VM_RAM_BASE),
    "ram_size" : VAR_STRINGIZE(VM_RAM_SIZE),
};
vm0.vm_image_config = {
    "map_one_to_one" : true,
};
vm0.untyped_mmios = [
    "0x40000000:29", // Linux kernel memory regions
];
vm0.simple_untyped24_pool = 1;
} }
"""


def test_seed_one_to_one_configuration(write: WriteFile) -> None:
    spec = read_camkes(write("seed/devices.camkes", SEED_ONE_TO_ONE))
    (vm,) = spec.vms
    assert vm.one_to_one and vm.ram_paddr_base == 0x40000000
    (ram,) = vm.regions
    assert (ram.kind, ram.guest_addr, ram.size, ram.phys_addr) == (
        RegionKind.RAM,
        0x40000000,
        0x20000000,
        0x40000000,
    )
    assert [(u.paddr, u.size_bits) for u in vm.device_untypeds] == [(0x40000000, 29)]
    assert [(p.size_bits, p.count) for p in vm.pools] == [(24, 1)]
    assert spec.findings == []


def test_seed_default_configuration_is_not_one_to_one(write: WriteFile) -> None:
    text = SEED_ONE_TO_ONE.replace('"map_one_to_one" : true', '"map_one_to_one" : false')
    (vm,) = read_camkes(write("seed/devices.camkes", text)).vms
    assert not vm.one_to_one and vm.ram_paddr_base is None
    assert vm.regions[0].phys_addr is None
    assert vm.extra["ram_paddr_base"] == 0x40000000


def test_misspelt_key_is_a_located_warning(write: WriteFile) -> None:
    text = SEED_ONE_TO_ONE.replace('"ram_paddr_base"', '"ram_padr_base"')
    spec = read_camkes(write("typo/devices.camkes", text))
    (finding,) = spec.findings
    assert finding.severity == "warning" and "ram_padr_base" in finding.message
    assert finding.fix == "did you mean 'ram_paddr_base'?"
    assert finding.location is not None and finding.location.line == 8


def test_bad_number_is_an_error_at_the_entry(write: WriteFile) -> None:
    text = SEED_ONE_TO_ONE.replace("#define VM_RAM_SIZE 0x20000000", "#define VM_RAM_SIZE lots")
    path = write("bad/devices.camkes", text)
    with pytest.raises(Sel4VmmError, match="'lots' is not a number") as caught:
        read_camkes(path)
    assert caught.value.location is not None
    assert (caught.value.location.path, caught.value.location.line) == (str(path), 9)


def test_expressions_in_stringized_values_are_evaluated(write: WriteFile) -> None:
    text = SEED_ONE_TO_ONE.replace(
        "#define VM_RAM_SIZE 0x20000000", "#define VM_RAM_SIZE (256 * 1024 * 1024)"
    )
    (vm,) = read_camkes(write("expr/devices.camkes", text)).vms
    assert vm.ram_size == 0x10000000


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('vm0.untyped_mmios = ["0x1000"];', "0xADDR:size_bits"),
        ('vm0.untyped_mmios = ["0xzz:12"];', "not an integer"),
        ('vm0.mmios = ["0x1000:12"];', "0xADDR:0xSIZE:page_bits"),
        ("vm0.untyped_mmios = 5;", "list of strings"),
        ("vm0.simple_untyped24_pool = -1;", "negative"),
        ("vm0.num_vcpus = 0;", "at least one vCPU"),
        ('vm0.vm_image_config = { "kernel_name" : 3 };', "must be a string"),
        ('vm0.vm_address_config = "x";', "must be a dictionary"),
    ],
)
def test_bad_values_are_located_errors(write: WriteFile, setting: str, message: str) -> None:
    text = SEED_ONE_TO_ONE.replace("vm0.simple_untyped24_pool = 1;", setting)
    with pytest.raises(Sel4VmmError, match=message) as caught:
        read_camkes(write("bad/devices.camkes", text))
    assert caught.value.location is not None and caught.value.location.line > 0


def test_vm_without_address_config_is_an_error_finding(write: WriteFile) -> None:
    text = "#include <configurations/vm.h>\nassembly { composition { VM_COMPOSITION_DEF(0) } }\n"
    spec = read_camkes(write("noram/app.camkes", text))
    (vm,) = spec.vms
    assert vm.ram_size == 0 and vm.regions == []
    (finding,) = spec.findings
    assert finding.severity == "error" and "vm_address_config" in finding.message


def test_file_without_vms_is_an_error_finding(write: WriteFile) -> None:
    spec = read_camkes(write("novm/app.camkes", "assembly { configuration { x.y = 1; } }"))
    assert spec.vms == []
    assert [f.severity for f in spec.findings] == ["error"]


def test_both_address_attributes_warn_and_the_new_one_wins(write: WriteFile) -> None:
    text = (
        SEED_ONE_TO_ONE
        + """assembly { configuration {
vm0.linux_address_config = { "linux_ram_base" : "0x80000000", "linux_ram_size" : "0x1000" };
} }"""
    )
    spec = read_camkes(write("both/devices.camkes", text))
    assert spec.vms[0].ram_base == 0x40000000
    assert any("both" in f.message for f in spec.findings)


def test_32_bit_boards_are_noted(realworld: Path) -> None:
    spec = _read(realworld, "vm_minimal/exynos5422/devices.camkes")
    assert spec.board == "exynos5422"
    assert [f.severity for f in spec.findings] == ["note"]
    assert "aarch32" in spec.findings[0].message
    assert spec.vms[0].arch == "aarch64"
