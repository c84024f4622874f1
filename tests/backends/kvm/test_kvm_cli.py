"""``sel4vmm kvm-boot`` and ``kvm-info`` through Typer, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sel4vmm.cli.kvm import register
from sel4vmm.errors import Sel4VmmError
from sel4vmm.native import PURE_PYTHON_VARIABLE, describe


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_kvm_boot_runs_an_elf_guest_to_its_clean_exit(
    kvm_available: None, guest_binaries: Path
) -> None:
    # script.elf entered as an "ELF vmlinux": %rdi is 0 and guest RAM at 0 holds zeros,
    # an empty script, so the guest writes 0 to the exit port at once.
    result = CliRunner().invoke(
        make_app(),
        [
            "kvm-boot",
            "--kernel",
            str(guest_binaries / "script.elf"),
            "--ram-size",
            "64M",
            "--timeout",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "running for at most 60 s (--timeout)" in result.output


def test_kvm_boot_reports_its_default_limit(kvm_available: None, guest_binaries: Path) -> None:
    # Issue 12: every long wait has a default limit, and says it.
    result = CliRunner().invoke(
        make_app(),
        ["kvm-boot", "--kernel", str(guest_binaries / "script.elf"), "--ram-size", "0x4000000"],
    )
    assert result.exit_code == 0, result.output
    assert "running for at most 300 s (--timeout)" in result.output


def test_kvm_boot_refuses_missing_kernels_and_tiny_ram(kvm_available: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), ["kvm-boot", "--kernel", str(tmp_path / "nope")])
    assert isinstance(result.exception, Sel4VmmError)
    assert "does not exist" in str(result.exception)
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\x7fELF" + bytes(60))
    result = CliRunner().invoke(
        make_app(), ["kvm-boot", "--kernel", str(kernel), "--ram-size", "16M"]
    )
    assert isinstance(result.exception, Sel4VmmError)
    assert "at least 64 MiB" in str(result.exception)
    assert result.exception.fix == "use --ram-size 256M"


def test_kvm_boot_without_a_kernel_or_with_configuration_options_alone_is_refused(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(make_app(), ["kvm-boot"])
    assert isinstance(result.exception, Sel4VmmError)
    assert str(result.exception).startswith("no kernel given")
    assert result.exception.fix is not None and "--kernel FILE" in result.exception.fix
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\x7fELF" + bytes(60))
    result = CliRunner().invoke(
        make_app(), ["kvm-boot", "--kernel", str(kernel), "--vm", "vm0", "-D", "X=1"]
    )
    assert isinstance(result.exception, Sel4VmmError)
    assert "--vm, -D choose(s) from a configuration" in str(result.exception)
    assert result.exception.fix == "name the configuration: sel4vmm kvm-boot SYSTEM --kernel FILE"


def test_kvm_boot_runs_a_camkes_configurations_vm_as_planned(
    kvm_available: None, guest_binaries: Path, tmp_path: Path
) -> None:
    from tests.config.camkes.test_x86 import APP

    system = tmp_path / "minimal.camkes"
    system.write_text(APP.format(ram=64, pool=20), encoding="utf-8")
    result = CliRunner().invoke(
        make_app(),
        ["kvm-boot", str(system), "--kernel", str(guest_binaries / "probe.elf"), "--timeout", "60"],
    )
    assert result.exit_code == 0, result.output
    assert (
        f"vm0 of {system} as planned on x86_64_generic: RAM [0x0, 0xa0000), "
        "[0x10003000, 0x14003000); ELF vmlinux at 0x40000" in result.output
    )
    assert "BIOS-e820: [mem 0x0000000010003000-0x0000000014002fff] usable\n" in result.output
    assert "probe: wrote and verified" in result.output


TWO_VMS = """
import <VM/vm.camkes>;
#include <configurations/vm.h>
component Init0 {
    VM_INIT_DEF()
}
component Init1 {
    VM_INIT_DEF()
}
assembly {
    composition {
        VM_COMPOSITION_DEF()
        VM_PER_VM_COMP_DEF(0)
        VM_PER_VM_COMP_DEF(1)
    }
    configuration {
        VM_CONFIGURATION_DEF()
        VM_PER_VM_CONFIG_DEF(0)
        VM_PER_VM_CONFIG_DEF(1)
        vm0.simple_untyped23_pool = 20;
        vm0.guest_ram_mb = 128;
        vm1.simple_untyped23_pool = 10;
        vm1.guest_ram_mb = 64;
    }
}
"""


def test_kvm_boot_runs_the_vm_named_by_vm_and_asks_for_it_among_several(
    kvm_available: None, guest_binaries: Path, tmp_path: Path
) -> None:
    system = tmp_path / "two.camkes"
    system.write_text(TWO_VMS, encoding="utf-8")
    probe = str(guest_binaries / "probe.elf")
    result = CliRunner().invoke(make_app(), ["kvm-boot", str(system), "--kernel", probe])
    assert isinstance(result.exception, Sel4VmmError), result.output
    assert result.exception.message == "the configuration has 2 VMs (vm0, vm1)"
    assert result.exception.fix == "choose one with --vm NAME"
    result = CliRunner().invoke(
        make_app(), ["kvm-boot", str(system), "--vm", "vm1", "--kernel", probe, "--timeout", "60"]
    )
    assert result.exit_code == 0, result.output
    assert "vm1 of " in result.output
    # vm1's 64 MiB at camkes-vm's anonymous-region start, not vm0's 128 MiB.
    assert "BIOS-e820: [mem 0x0000000010003000-0x0000000014002fff] usable\n" in result.output


def test_kvm_boot_refuses_an_arm_configuration(guest_binaries: Path, tmp_path: Path) -> None:
    system = tmp_path / "board" / "qemu_virt_aarch64" / "vm.system"
    system.parent.mkdir(parents=True)
    system.write_text(
        '<system><memory_region name="ram" size="0x1000000"/>'
        '<protection_domain name="VMM" priority="1"><program_image path="vmm.elf"/>'
        '<map mr="ram" vaddr="0x80000000" perms="rw"/>'
        '<virtual_machine name="arm"><vcpu id="0"/>'
        '<map mr="ram" vaddr="0x40000000" perms="rwx"/></virtual_machine>'
        "</protection_domain></system>",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        make_app(), ["kvm-boot", str(system), "--kernel", str(guest_binaries / "probe.elf")]
    )
    assert isinstance(result.exception, Sel4VmmError), result.output
    assert "VM 'arm' is aarch64; the KVM backend runs x86_64 VMs only" in str(result.exception)


def test_kvm_info_reports_the_kernel_mode_verdict(
    kvm_available: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEL4VMM_KVM_HARDWARE", "1")
    result = CliRunner().invoke(make_app(), ["kvm-info"])
    assert result.exit_code == 0, result.output
    assert "memory slots" in result.output
    assert "guest kernel mode: hardware-backed" in result.output


def test_kvm_info_json(kvm_available: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("SEL4VMM_KVM_HARDWARE", "1")
    result = CliRunner().invoke(make_app(), ["kvm-info", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == "sel4vmm-kvm-info" and document["available"] is True
    assert document["hardware_backed"] is True and document["memory_slots"] > 0


def spinning_elf(path: Path) -> Path:
    """A 64-bit ELF "vmlinux" whose entry is ``jmp .`` at 0x100000: it never stops."""
    import struct

    code = b"\xeb\xfe"
    header_size, program_header_size = 64, 56
    offset = header_size + program_header_size
    elf_header = (
        b"\x7fELF\x02\x01\x01" + bytes(9)
        + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x100000, header_size, 0, 0,
                      header_size, program_header_size, 1, 64, 0, 0)
    )  # fmt: skip
    program_header = struct.pack(
        "<IIQQQQQQ", 1, 5, offset, 0x100000, 0x100000, len(code), len(code), 0x1000
    )
    path.write_bytes(elf_header + program_header + code)
    return path


def test_kvm_boot_timeout_says_the_guest_was_still_running(
    kvm_available: None, tmp_path: Path
) -> None:
    kernel = spinning_elf(tmp_path / "spin.elf")
    result = CliRunner().invoke(make_app(), ["kvm-boot", "--kernel", str(kernel), "--timeout", "1"])
    assert result.exit_code == 1, result.output
    assert "running for at most 1 s (--timeout)" in result.output
    assert "it was still running after 1 s (--timeout)" in result.output


@pytest.mark.parametrize("forced", [False, True])
def test_kvm_info_says_which_exit_loop_runs(
    kvm_available: None, monkeypatch: pytest.MonkeyPatch, forced: bool
) -> None:
    monkeypatch.setenv("SEL4VMM_KVM_HARDWARE", "1")
    if forced:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    else:
        monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    result = CliRunner().invoke(make_app(), ["kvm-info"])
    assert result.exit_code == 0, result.output
    assert f"exit loop: {describe('_kvmexit')}\n" in result.output
    if forced:
        assert "exit loop: pure Python (SEL4VMM_PURE_PYTHON=1 forces" in result.output


def test_kvm_boot_disk_is_a_virtio_blk_window_the_kernel_is_told_of(
    kvm_available: None, guest_binaries: Path, tmp_path: Path
) -> None:
    # The probe reads 8 bytes at the disk's window: the device answers (the guest goes on
    # to its clean exit) and the VMM reports the driver's mistake, as virtio registers are
    # 32-bit.  The run's report names the window the kernel was told of.
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    result = CliRunner().invoke(
        make_app(),
        [
            "kvm-boot",
            "--kernel",
            str(guest_binaries / "probe.elf"),
            "--ram-size",
            "64M",
            "--disk",
            str(disk),
            "--read-only",
            "--bootargs",
            "console=ttyS0 probe.touch=0xd0000000",
            "--timeout",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "probe: reading 0x00000000d0000000\nprobe: read 0x0000000000000000\n" in result.output
    assert (
        "virtio device error: virtio-block@0xd0000000: 8-byte read of register 0x0 "
        "(registers are 32-bit)"
    ) in result.output
    assert disk.read_bytes() == bytes(4096)


def test_kvm_boot_read_only_needs_a_disk(guest_binaries: Path) -> None:
    result = CliRunner().invoke(
        make_app(), ["kvm-boot", "--kernel", str(guest_binaries / "script.elf"), "--read-only"]
    )
    assert isinstance(result.exception, Sel4VmmError)
    assert str(result.exception).startswith("--read-only is about the --disk image")
