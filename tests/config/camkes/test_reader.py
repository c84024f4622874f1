"""Finding the platform's devices.camkes and the files a configuration imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.camkes.reader import platform_directories, platform_of_devices_file
from sel4vmm.errors import Sel4VmmError

from .conftest import WriteFile

APP = """#include <configurations/vm.h>
import <std_connector.camkes>;
import <devices.camkes>;
assembly {
    composition { VM_COMPOSITION_DEF(0) }
    configuration { vm0.simple_untyped24_pool = 12; }
}
"""
DEVICES = """#include <configurations/vm.h>
#define VM_RAM_BASE 0x40000000
assembly {
    composition {}
    configuration {
        vm0.vm_address_config = {
            "ram_base" : VAR_STRINGIZE(VM_RAM_BASE),
            "ram_paddr_base" : VAR_STRINGIZE(VM_RAM_BASE),
            "ram_size" : VAR_STRINGIZE(RAM_SIZE),
        };
        vm0.simple_untyped24_pool = 2;
    }
}
"""


@pytest.fixture
def app(write: WriteFile) -> Path:
    write("app/qemu-arm-virt/devices.camkes", DEVICES.replace("RAM_SIZE", "0x20000000"))
    write("app/exynos5422/devices.camkes", DEVICES.replace("RAM_SIZE", "0x10000000"))
    return write("app/app.camkes", APP)


def test_platform_define_picks_the_devices_file(app: Path) -> None:
    qemu = read_camkes(app, defines={"PLAT": "qemu-arm-virt"})
    exynos = read_camkes(app, defines={"KernelARMPlatform": "exynos5422"})
    assert qemu.vms[0].ram_size == 0x20000000
    assert exynos.vms[0].ram_size == 0x10000000
    assert (qemu.board, exynos.board) == ("qemu_virt_aarch64", "exynos5422")


def test_include_dir_picks_the_devices_file(app: Path) -> None:
    spec = read_camkes(app, include_dirs=[app.parent / "exynos5422"])
    assert spec.vms[0].ram_size == 0x10000000
    assert spec.board == "exynos5422"


def test_application_settings_override_the_platform_file(app: Path) -> None:
    spec = read_camkes(app, defines={"PLAT": "qemu-arm-virt"})
    assert [(p.size_bits, p.count) for p in spec.vms[0].pools] == [(24, 12)]


def test_unresolved_devices_import_names_file_line_and_choices(app: Path) -> None:
    with pytest.raises(Sel4VmmError) as caught:
        read_camkes(app)
    error = caught.value
    assert error.location is not None
    assert (error.location.path, error.location.line) == (str(app), 3)
    assert "exynos5422, qemu-arm-virt" in error.message
    assert error.fix is not None and "--define PLAT=" in error.fix and "--include" in error.fix


def test_unknown_import_is_a_warning_not_an_error(write: WriteFile) -> None:
    path = write(
        "x/devices.camkes",
        'import "components/uart/uart.camkes";\n' + DEVICES.replace("RAM_SIZE", "0x1000"),
    )
    spec = read_camkes(path)
    assert [f.severity for f in spec.findings] == ["warning"]
    assert "uart.camkes" in spec.findings[0].message


def test_imports_are_read_once(write: WriteFile) -> None:
    write("loop/a.camkes", 'import "b.camkes";\nassembly { configuration { vm0.num_vcpus = 2; } }')
    write("loop/b.camkes", 'import "a.camkes";\n' + DEVICES.replace("RAM_SIZE", "0x1000"))
    spec = read_camkes(write("loop/top.camkes", 'import "a.camkes";\n'))
    assert spec.vms[0].num_vcpus == 2


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="does not exist"):
        read_camkes(tmp_path / "nope.camkes")


def test_platform_names_of_devices_files(tmp_path: Path) -> None:
    assert platform_of_devices_file(tmp_path / "vm" / "tx2" / "devices.camkes") == "tx2"
    assert (
        platform_of_devices_file(tmp_path / "vm" / "zcu102" / "2022_1" / "devices.camkes")
        == "zcu102/2022_1"
    )


def test_platform_directories_lists_nested_ones(app: Path) -> None:
    (app.parent / "zcu102" / "2022_1").mkdir(parents=True)
    (app.parent / "zcu102" / "2022_1" / "devices.camkes").write_text("")
    assert platform_directories(app.parent) == ["exynos5422", "qemu-arm-virt", "zcu102/2022_1"]


def test_platform_headers_follow_a_devices_file_found_through_include(realworld: Path) -> None:
    examples = realworld / "camkes-vm-examples" / "vm_minimal"
    spec = read_camkes(
        examples / "vm_minimal.camkes", include_dirs=[examples / "zcu102" / "2022_1"]
    )
    assert spec.board == "zcu102"
    assert spec.vms[0].extra["allowed_smc_functions"][0] == 0xC2000001  # type: ignore[index]
