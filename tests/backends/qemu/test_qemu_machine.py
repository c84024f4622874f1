"""The QEMU command lines, finding QEMU, and the machine a device tree asks for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sel4vmm.backends.qemu.machine import (
    QemuMachine,
    direct_kernel_command,
    dump_dtb_command,
    find_qemu,
    sel4vmm_boot_command,
)
from sel4vmm.backends.qemu.tree_requirements import tree_requirements
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import compile_dts

MACHINE = QemuMachine(256 << 20)


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == flag]


def test_sel4vmm_boot_maps_the_shared_file_as_machine_ram_and_starts_at_the_stub() -> None:
    command = sel4vmm_boot_command("qemu", MACHINE, Path("/dev/shm/ram"), 0x401F_F000)
    assert _option(command, "-M") == [
        "virt,gic-version=2,virtualization=on,memory-backend=sel4vmm-ram"
    ]
    assert _option(command, "-object") == [
        "memory-backend-file,id=sel4vmm-ram,mem-path=/dev/shm/ram,share=on,size=268435456"
    ]
    assert _option(command, "-device") == ["loader,addr=0x401ff000,cpu-num=0"]
    assert "-kernel" not in command and "-m" not in command
    assert _option(command, "-serial") == ["stdio"]


def test_with_a_qmp_socket_qemu_starts_paused_with_a_qmp_server() -> None:
    plain = sel4vmm_boot_command("qemu", MACHINE, Path("/f"), 0x40000000)
    paused = sel4vmm_boot_command(
        "qemu", MACHINE, Path("/f"), 0x40000000, qmp_socket=Path("/run/q.sock")
    )
    assert "-S" not in plain and "-qmp" not in plain
    assert paused[: len(plain)] == plain
    assert paused[len(plain) :] == ["-S", "-qmp", "unix:/run/q.sock,server=on,wait=off"]


def test_commas_in_the_ram_file_path_are_escaped() -> None:
    command = sel4vmm_boot_command("qemu", MACHINE, Path("/tmp/a,b"), 0x40000000)
    assert "mem-path=/tmp/a,,b," in _option(command, "-object")[0]


def test_direct_boot_differs_only_in_who_loads_the_images() -> None:
    ours = sel4vmm_boot_command("qemu", MACHINE, Path("/f"), 0x40000000)
    theirs = direct_kernel_command(
        "qemu",
        MACHINE,
        Path("Image"),
        initrd=Path("rd"),
        dtb=Path("t.dtb"),
        append="console=ttyAMA0",
    )
    assert _option(theirs, "-M") == ["virt,gic-version=2,virtualization=on"]
    assert _option(theirs, "-m") == ["256M"]
    assert _option(theirs, "-kernel") == ["Image"]
    assert _option(theirs, "-initrd") == ["rd"]
    assert _option(theirs, "-dtb") == ["t.dtb"]
    assert _option(theirs, "-append") == ["console=ttyAMA0"]
    common = MACHINE.common_arguments()
    assert ours[-len(common) - 2 : -2] == common
    assert theirs[5 : 5 + len(common)] == common


def test_machine_follows_the_tree_psci_conduit_and_gic() -> None:
    hvc = QemuMachine(64 << 20, gic_version=3, virtualization=False)
    assert hvc.machine_option() == "virt,gic-version=3,virtualization=off"
    assert "-no-reboot" in MACHINE.common_arguments()
    assert "-no-reboot" not in QemuMachine(64 << 20, no_reboot=False).common_arguments()


@pytest.mark.parametrize(
    "ram,gic,cpus",
    [((256 << 20) + 4096, 2, 1), (0, 2, 1), (256 << 20, 4, 1), (256 << 20, 2, 9), (1 << 28, 3, 0)],
)
def test_machine_refuses_what_qemu_virt_cannot_be(ram: int, gic: int, cpus: int) -> None:
    with pytest.raises(Sel4VmmError):
        QemuMachine(ram, gic_version=gic, cpus=cpus)


def test_vcpus_become_smp_and_gicv3_takes_more_than_eight() -> None:
    assert _option(QemuMachine(1 << 28, cpus=2).common_arguments(), "-smp") == ["2"]
    assert _option(QemuMachine(1 << 28, gic_version=3, cpus=16).common_arguments(), "-smp") == [
        "16"
    ]


def test_dumpdtb_command_names_the_output() -> None:
    command = dump_dtb_command("qemu", MACHINE, Path("/tmp/out.dtb"))
    assert _option(command, "-M") == ["virt,gic-version=2,virtualization=on,dumpdtb=/tmp/out.dtb"]


def test_missing_qemu_says_which_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Sel4VmmError) as caught:
        find_qemu()
    assert "qemu-system-aarch64 was not found on PATH" in caught.value.message
    assert caught.value.fix is not None and "apt-get install qemu-system-arm" in caught.value.fix
    with pytest.raises(Sel4VmmError, match="/opt/none/qemu was not found"):
        find_qemu("/opt/none/qemu")


def test_find_qemu_takes_an_explicit_executable(tmp_path: Path) -> None:
    fake = tmp_path / "my-qemu"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_qemu(fake) == os.fspath(fake)


def test_libvmm_tree_wants_gicv2_and_psci_over_smc(libvmm_board: Path, dtc: str) -> None:
    dtb = compile_dts(libvmm_board / "linux.dts", [libvmm_board / "overlay.dts"])
    needs = tree_requirements(dtb)
    assert (needs.gic_version, needs.psci_smc) == (2, True)


def _tree(tmp_path: Path, body: str) -> bytes:
    source = tmp_path / "t.dts"
    source.write_text("/dts-v1/;\n/ {\n#address-cells = <2>;\n#size-cells = <2>;\n" + body + "};\n")
    return compile_dts(source, [])


def test_gicv3_tree_with_hvc_psci(tmp_path: Path, dtc: str) -> None:
    dtb = _tree(
        tmp_path,
        'intc { compatible = "arm,gic-v3"; };\n'
        'psci { compatible = "arm,psci-0.2"; method = "hvc"; };\n',
    )
    needs = tree_requirements(dtb)
    assert (needs.gic_version, needs.psci_smc) == (3, False)


def test_tree_without_a_gic_qemu_has_is_refused(tmp_path: Path, dtc: str) -> None:
    dtb = _tree(tmp_path, 'intc { compatible = "riscv,plic0"; };\n')
    with pytest.raises(Sel4VmmError, match="no interrupt controller QEMU virt emulates"):
        tree_requirements(dtb, "t.dts")


def test_unknown_psci_method_is_refused(tmp_path: Path, dtc: str) -> None:
    dtb = _tree(
        tmp_path,
        'intc { compatible = "arm,gic-400"; };\npsci { method = "spin-table"; };\n',
    )
    with pytest.raises(Sel4VmmError, match="neither smc nor hvc"):
        tree_requirements(dtb)
