"""Booting a real Debian x86_64 kernel through the 64-bit boot protocol.

The ELF ``vmlinux`` inside ``/boot/vmlinuz-*`` (from the Debian ``linux-image-amd64``
package) is booted until its early console has printed the banner, the command line we
passed and the E820 map; the full bzImage boot (which decompresses in guest kernel mode)
runs only where KVM is hardware-backed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sel4vmm.backends.kvm.linux import LinuxBoot, load_linux
from sel4vmm.backends.kvm.run import RunOutcome, StopReason
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.speed import measure_kernel_mode_speed
from sel4vmm.backends.kvm.virtio import VirtioRequest
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import parse_bzimage
from sel4vmm.images.zero_page import LEGACY_HOLE, E820Entry, E820Type
from sel4vmm.sel4.arch import X86_64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine

CMDLINE = "earlyprintk=serial,ttyS0,115200 console=ttyS0 nokaslr sel4vmm.test=42"
GUEST_RAM = 256 << 20
#: Printed once the early console has replayed the banner, command line and E820 map.
EARLY_CONSOLE_UP = "bootconsole [earlyser0] enabled"
E820_LINE = re.compile(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+)")


def linux_vm() -> VirtualMachine:
    physmem = PhysicalMemory([MemoryRange(0, 1 << 30, name="ram")])
    vm = VirtualMachine.create("linux", Sel4Platform(physmem, X86_64), pools=[PoolRequest(28, 2)])
    vm.ram.register_at(0, GUEST_RAM, page_bits=21)
    return vm


@pytest.fixture
def linux_session(kvm_available: None) -> Iterator[KvmSession]:
    vm = linux_vm()
    with KvmSession(vm) as session:
        yield session
    vm.physmem.close()


def boot_until_e820(
    session: KvmSession, kernel: bytes, timeout: float
) -> tuple[LinuxBoot, RunOutcome]:
    boot = load_linux(session, kernel, CMDLINE, kernel_path="kernel")
    outcome = session.run(timeout=timeout, until=lambda: EARLY_CONSOLE_UP in session.uart.text())
    return boot, outcome


def check_early_console(session: KvmSession, boot: LinuxBoot, outcome: RunOutcome) -> None:
    text = session.uart.text().replace("\r\n", "\n")
    assert outcome.reason is StopReason.STOPPED, f"{outcome.diagnostic}\n{text}"
    assert EARLY_CONSOLE_UP in text, text
    assert "Linux version " in text
    assert f"Command line: {CMDLINE}\n" in text
    reported = [
        E820Entry(
            int(start, 16),
            int(end, 16) + 1 - int(start, 16),
            E820Type.RAM if kind == "usable" else E820Type.RESERVED,
        )
        for start, end, kind in E820_LINE.findall(text)
    ]
    assert reported == list(boot.e820)
    # ...and the usable part is exactly the plan's RAM minus the PC legacy hole.
    usable = [(e.base, e.end) for e in reported if e.type is E820Type.RAM]
    assert usable == [(0, LEGACY_HOLE[0]), (LEGACY_HOLE[1], GUEST_RAM)]


@pytest.mark.slow
def test_vmlinux_prints_banner_command_line_and_the_planned_e820(
    linux_session: KvmSession, vmlinux: bytes
) -> None:
    boot, outcome = boot_until_e820(linux_session, vmlinux, timeout=120)
    assert boot.kernel_format == "ELF vmlinux" and boot.entry == 0x100_0000
    check_early_console(linux_session, boot, outcome)


@pytest.mark.slow
def test_bzimage_full_boot_prints_banner_command_line_and_e820(
    linux_session: KvmSession, bzimage: bytes
) -> None:
    speed = measure_kernel_mode_speed()
    if not speed.hardware_backed:
        pytest.skip(
            "KVM here is not hardware-backed for guest kernel mode "
            f"({speed.describe()}): the bzImage would decompress itself for many minutes; "
            "set SEL4VMM_KVM_HARDWARE=1 to force"
        )
    boot, outcome = boot_until_e820(linux_session, bzimage, timeout=120)
    assert boot.kernel_format.startswith("bzImage") and boot.entry == boot.kernel_addr + 0x200
    check_early_console(linux_session, boot, outcome)


def test_bzimage_is_placed_with_its_setup_header_in_the_zero_page(
    linux_session: KvmSession, bzimage: bytes
) -> None:
    initrd = b"initrd!" * 1000
    boot = load_linux(linux_session, bzimage, CMDLINE, initrd=initrd)
    ram = linux_session.vm.ram
    header = parse_bzimage(bzimage)
    assert boot.kernel_addr % header.kernel_alignment == 0
    assert ram.read(boot.kernel_addr, 64) == bzimage[header.setup_size : header.setup_size + 64]
    zero_page = ram.read(boot.zero_page_addr, 0x1000)
    assert zero_page[0x230:0x234] == bzimage[0x230:0x234]
    assert int.from_bytes(zero_page[0x228:0x22C], "little") == boot.cmdline_addr
    assert ram.read(boot.cmdline_addr, len(CMDLINE) + 1) == CMDLINE.encode() + b"\0"
    assert boot.kernel_end <= boot.initrd_addr and boot.initrd_addr + len(initrd) <= GUEST_RAM
    assert ram.read(boot.initrd_addr, len(initrd)) == initrd
    regs = linux_session.vcpu.get_regs() if linux_session.vcpu else None
    assert regs is not None and (regs.rip, regs.rsi) == (boot.entry, boot.zero_page_addr)


def test_a_kernel_that_does_not_fit_is_refused_and_nothing_stays_allocated(
    kvm_available: None, bzimage: bytes
) -> None:
    physmem = PhysicalMemory([MemoryRange(0, 1 << 30, name="ram")])
    vm = VirtualMachine.create("small", Sel4Platform(physmem, X86_64), pools=[PoolRequest(26, 1)])
    vm.ram.register_at(0, 32 << 20)
    before = vm.ram.regions()
    with KvmSession(vm) as session, pytest.raises(Sel4VmmError, match="decompress into") as error:
        load_linux(session, bzimage, "console=ttyS0")
    assert error.value.fix is not None and "RAM covering" in error.value.fix
    assert vm.ram.regions() == before


def test_other_files_and_overlong_command_lines_are_refused(
    linux_session: KvmSession, bzimage: bytes
) -> None:
    with pytest.raises(Sel4VmmError, match="neither a bzImage nor an ELF"):
        load_linux(linux_session, b"\0" * 4096, "x")
    with pytest.raises(Sel4VmmError, match="command line is 5000 bytes"):
        load_linux(linux_session, bzimage, "x" * 5000)


@pytest.mark.slow
def test_debian_kernel_is_told_of_its_virtio_disk_on_its_command_line(
    linux_session: KvmSession, vmlinux: bytes, tmp_path: Path
) -> None:
    # Linux's early console echoes the command line it received ("Command line: ..."):
    # the virtio_mmio.device= words sel4vmm appended are in it, as the kernel parses them.
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    linux_session.attach_virtio(VirtioRequest(disk=disk))
    boot, outcome = boot_until_e820(linux_session, vmlinux, timeout=120)
    text = linux_session.uart.text().replace("\r\n", "\n")
    assert outcome.reason is StopReason.STOPPED, f"{outcome.diagnostic}\n{text}"
    assert boot.cmdline == f"{CMDLINE} virtio_mmio.device=0x200@0xd0000000:5"
    assert f"Command line: {boot.cmdline}\n" in text
