"""x86 VM configurations run on KVM with exactly the RAM their plan gives them.

The guest is ``guests/x86_64/probe.c``: entered by the Linux 64-bit boot protocol, it
prints the E820 map it was handed in Linux's words and writes, then verifies, words across
all of that RAM.  Each configuration's expected layout is stated from its source:

* the CAmkES application is written as camkes-vm-examples' ``apps/x86/minimal`` does
  (``tests/config/camkes/test_x86.py``); camkes-vm ad66b659 ``components/Init/src/main.c``
  registers low memory ``[0x500, 0x9fc00)`` (whole frames: ``[0, 0xa0000)``) and puts
  ``guest_ram_mb`` at ``free_anonymous_regions``' start 0x10003000, from the pools;
* libvmm's ``board/x86_64_generic_vtx/simple.system`` maps ``guest_ram`` (0x10000000
  bytes) at guest 0 ("Make sure the base RAM guest GPA matches with LOW_RAM_START_GPA"),
  frames from board RAM; the PC legacy hole ``[0xa0000, 0x100000)`` is reported reserved;
* a Microkit variant with ``phys_addr`` equal to its guest address is 1:1;
* ``probe.touch=`` reads one address last: a window of the plan (camkes-vm's DMI frames)
  returns what the VMM put in its frames, a hole stops the guest with the VMM's fault.

The real Debian kernel test boots the ELF ``vmlinux`` from ``/boot/vmlinuz-*`` through
``sel4vmm kvm-boot SYSTEM --kernel`` until its early console is up, as
``test_kvm_linux.py`` does, so it keeps to about 20 s under nested KVM.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sel4vmm.backends.kvm.configured import ConfiguredRun, ConfiguredVm, run_configured_guest
from sel4vmm.backends.kvm.linux import LinuxBoot
from sel4vmm.backends.kvm.run import StopReason
from sel4vmm.backends.kvm.virtio import VirtioRequest
from sel4vmm.cli.configuration import read_configuration
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.zero_page import e820_from_ram
from sel4vmm.plan.model import MapEntry
from sel4vmm.sel4.physmem import PhysicalMemory
from tests.backends.kvm.conftest import REPO
from tests.config.camkes.test_x86 import APP

SIMPLE_X86 = (
    REPO / ".." / "shared" / "realworld" / "libvmm" / "simple" / "board" / "x86_64_generic_vtx"
) / "simple.system"
SIMPLE_AARCH64 = SIMPLE_X86.parent.parent / "qemu_virt_aarch64" / "simple.system"
E820_LINE = re.compile(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+)")
PROBE_OK = re.compile(r"probe: wrote and verified (\d+) words of RAM")
#: Printed once Linux's early console has replayed the banner, command line and E820 map.
EARLY_CONSOLE_UP = "bootconsole [earlyser0] enabled"
CMDLINE = "earlyprintk=serial,ttyS0,115200 console=ttyS0 nokaslr"

ONE_TO_ONE_SYSTEM = """<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="guest_ram" size="0x80_000" phys_addr="0x0" />
    <protection_domain name="VMM" priority="0" stack_size="0x2000">
        <program_image path="vmm.elf" />
        <map mr="guest_ram" vaddr="0x80000000" perms="rw" setvar_vaddr="guest_ram_vaddr" />
        <virtual_machine name="linux">
            <vcpu id="0"/>
            <map mr="guest_ram" vaddr="{vaddr}" perms="rwx" cached="true" />
        </virtual_machine>
    </protection_domain>
</system>
"""


def reported_e820(console: str) -> list[tuple[int, int, str]]:
    """The E820 lines a guest printed, as (start, end exclusive, kind)."""
    return [(int(a, 16), int(b, 16) + 1, kind) for a, b, kind in E820_LINE.findall(console)]


def planned_e820(entries: list[MapEntry]) -> list[tuple[int, int, str]]:
    """What the plan's RAM should look like to the guest, by the PC's E820 rules."""
    ram = [(e.start, e.size) for e in entries if e.kind == "ram"]
    return [(e.base, e.end, "usable" if e.type == 1 else "reserved") for e in e820_from_ram(ram)]


def run_probe(
    path: Path, guest_binaries: Path, board: str | None = None
) -> tuple[ConfiguredRun, ConfiguredVm]:
    seen: list[ConfiguredVm] = []

    def on_boot(configured: ConfiguredVm, boot: LinuxBoot) -> None:
        assert boot.kernel_format == "ELF vmlinux" and boot.entry == 0x40000
        seen.append(configured)

    spec = read_configuration(path, board=board)
    run = run_configured_guest(
        spec, None, guest_binaries / "probe.elf", board=board, timeout=60, on_boot=on_boot
    )
    assert run.outcome.reason is StopReason.EXITED, f"{run.outcome.diagnostic}\n{run.console}"
    assert run.outcome.exit_code == 0, run.console
    match = PROBE_OK.search(run.console)
    assert match is not None and int(match[1]) > 0, run.console
    return run, seen[0]


def test_camkes_x86_vm_runs_in_its_planned_pool_ram(
    kvm_available: None, guest_binaries: Path, exit_loop: str, tmp_path: Path
) -> None:
    path = tmp_path / "minimal.camkes"
    path.write_text(APP.format(ram=128, pool=20), encoding="utf-8")
    run, configured = run_probe(path, guest_binaries)
    assert run.outcome.exit_loop.startswith(exit_loop)
    assert run.vm_name == "vm0" and configured.plan.board.name == "x86_64_generic"
    entries = configured.plan.vms[0].entries
    assert reported_e820(run.console) == [
        (0x0, 0xA0000, "usable"),
        (0x10003000, 0x10003000 + (128 << 20), "usable"),
    ]
    assert reported_e820(run.console) == planned_e820(entries)
    assert configured.ram == [(0x0, 0xA0000), (0x10003000, 128 << 20)]
    main_ram = next(e for e in entries if e.start == 0x10003000)
    assert main_ram.backing == "pool frames"
    # The command line is the configuration's kernel_cmdline.
    assert run.boot.cmdline == "console=ttyS0,115200 root=/dev/mem"


def test_libvmm_x86_simple_system_runs_in_its_planned_board_ram(
    kvm_available: None, guest_binaries: Path, exit_loop: str
) -> None:
    if not SIMPLE_X86.is_file():
        pytest.skip(f"{SIMPLE_X86} is not here (../shared/realworld holds libvmm's examples)")
    run, configured = run_probe(SIMPLE_X86, guest_binaries)
    assert run.outcome.exit_loop.startswith(exit_loop)
    assert run.vm_name == "linux"
    entries = configured.plan.vms[0].entries
    assert reported_e820(run.console) == [
        (0x0, 0xA0000, "usable"),
        (0xA0000, 0x100000, "reserved"),
        (0x100000, 0x10000000, "usable"),
    ]
    assert reported_e820(run.console) == planned_e820(entries)
    (ram,) = [e for e in entries if e.kind == "ram"]
    assert (ram.start, ram.size, ram.backing) == (0, 0x10000000, "frames from board RAM")
    assert ram.physical and ram.physical[0][0] != 0  # not 1:1: the board's RAM frames


def test_one_to_one_microkit_ram_runs_at_its_own_physical_address(
    kvm_available: None, guest_binaries: Path, exit_loop: str, tmp_path: Path
) -> None:
    path = tmp_path / "one_to_one.system"
    path.write_text(ONE_TO_ONE_SYSTEM.format(vaddr="0x0"), encoding="utf-8")
    run, configured = run_probe(path, guest_binaries, board="x86_64_generic")
    assert run.outcome.exit_loop.startswith(exit_loop)
    (ram,) = [e for e in configured.plan.vms[0].entries if e.kind == "ram"]
    assert (ram.backing, ram.physical) == ("1:1 frames", [(0x0, 0x80000)])
    assert reported_e820(run.console) == [(0x0, 0x80000, "usable")]


def test_a_non_x86_vm_is_refused_by_name(guest_binaries: Path) -> None:
    if not SIMPLE_AARCH64.is_file():
        pytest.skip(f"{SIMPLE_AARCH64} is not here (../shared/realworld holds libvmm's examples)")
    spec = read_configuration(SIMPLE_AARCH64)
    with pytest.raises(Sel4VmmError, match="VM 'linux' is aarch64; the KVM backend runs x86_64"):
        run_configured_guest(spec, None, guest_binaries / "probe.elf")


def test_ram_without_low_memory_is_refused_before_the_guest_runs(
    kvm_available: None, guest_binaries: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[PhysicalMemory] = []
    original_close = PhysicalMemory.close

    def recording_close(self: PhysicalMemory) -> None:
        closed.append(self)
        original_close(self)

    monkeypatch.setattr(PhysicalMemory, "close", recording_close)
    path = tmp_path / "high.system"
    path.write_text(
        ONE_TO_ONE_SYSTEM.replace('phys_addr="0x0"', 'phys_addr="0x10000000"').format(
            vaddr="0x10000000"
        ),
        encoding="utf-8",
    )
    spec = read_configuration(path, board="x86_64_generic")
    with pytest.raises(Sel4VmmError, match=r"no guest RAM at \[0x500, 0x20800\)") as caught:
        run_configured_guest(spec, None, guest_binaries / "probe.elf", board="x86_64_generic")
    assert caught.value.location is not None and caught.value.location.line == 9
    assert caught.value.fix is not None and 'vaddr="0x0"' in caught.value.fix
    # Nothing half-done: the planned board's host memory was released with the refusal.
    assert len(closed) == 1


def test_a_plan_error_stops_the_run_with_the_plans_words(
    guest_binaries: Path, tmp_path: Path
) -> None:
    # 256 MiB pinned at physical 0 crosses the board's legacy hole: not board RAM.
    path = tmp_path / "hole.system"
    path.write_text(
        ONE_TO_ONE_SYSTEM.replace('size="0x80_000"', 'size="0x10_000_000"').format(vaddr="0x0"),
        encoding="utf-8",
    )
    spec = read_configuration(path, board="x86_64_generic")
    with pytest.raises(Sel4VmmError, match=r"cannot run as planned: .*not memory on") as caught:
        run_configured_guest(spec, None, guest_binaries / "probe.elf", board="x86_64_generic")
    assert caught.value.location is not None and caught.value.location.line == 9


@pytest.mark.slow
def test_debian_kernel_prints_its_banner_and_the_planned_e820(
    kvm_available: None, vmlinux: bytes, tmp_path: Path
) -> None:
    if not SIMPLE_X86.is_file():
        pytest.skip(f"{SIMPLE_X86} is not here (../shared/realworld holds libvmm's examples)")
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(vmlinux)
    command = [sys.executable, "-m", "sel4vmm", "kvm-boot", str(SIMPLE_X86)]
    command += ["--kernel", str(kernel), "--bootargs", CMDLINE]
    command += ["--until", EARLY_CONSOLE_UP, "--timeout", "150"]
    # This worktree's sources first, whatever the installed package points at.
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=200, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout.replace("\r\n", "\n")
    assert "Linux version " in text
    assert f"Command line: {CMDLINE}\n" in text
    assert "linux of " in result.stderr and "as planned on x86_64_generic" in result.stderr
    assert reported_e820(text) == [
        (0x0, 0xA0000, "usable"),
        (0xA0000, 0x100000, "reserved"),
        (0x100000, 0x10000000, "usable"),
    ]


DMI_WINDOW = 0xF0000  # camkes-vm's guest_fake_devices "dmi" {0xf0000, 0x10000}: frames


def test_a_planned_window_reads_its_frames_and_a_hole_stops_with_the_vmms_fault(
    kvm_available: None, guest_binaries: Path, exit_loop: str, tmp_path: Path
) -> None:
    path = tmp_path / "minimal.camkes"
    path.write_text(APP.format(ram=64, pool=20), encoding="utf-8")
    spec = read_configuration(path)
    marker = 0x5E14_F00D_0000_0001

    def fill_window(configured: ConfiguredVm, boot: LinuxBoot) -> None:
        # The VMM's side of the plan's frames: what the guest must read back.
        reservation = configured.vm.memory.find(DMI_WINDOW)
        assert reservation is not None and reservation.label == "dmi"
        (extent,) = [e for e in reservation.extents if e.guest_addr <= DMI_WINDOW < e.guest_end]
        view = configured.vm.physmem.view(extent.paddr + DMI_WINDOW - extent.guest_addr, 8)
        view[:] = marker.to_bytes(8, "little")

    window = run_configured_guest(
        spec,
        "vm0",
        guest_binaries / "probe.elf",
        bootargs=f"console=ttyS0 probe.touch={DMI_WINDOW:#x}",
        timeout=60,
        on_boot=fill_window,
    )
    assert window.outcome.reason is StopReason.EXITED, window.console
    assert f"probe: read {marker:#018x}\n" in window.console
    # [0x100000, 0x10003000) is a hole in camkes-vm's layout: no RAM, no window.
    hole = run_configured_guest(
        spec,
        "vm0",
        guest_binaries / "probe.elf",
        bootargs="console=ttyS0 probe.touch=0x100000",
        timeout=60,
    )
    assert hole.outcome.reason is StopReason.FAULT, hole.console
    assert hole.outcome.diagnostic.startswith(
        "read of 8 bytes from 0x100000: no reservation claims this address"
    )
    assert "probe: reading 0x0000000000100000\n" in hole.console
    assert "probe: read 0x" not in hole.console


def test_a_planned_vm_gets_its_virtio_disk_in_the_32_bit_hole(
    kvm_available: None, guest_binaries: Path, tmp_path: Path
) -> None:
    # libvmm's simple.system: 256 MiB of RAM at 0, nothing at 0xd0000000.  The probe reads
    # 8 bytes of the disk's window; the device answers and reports the too-wide access.
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1024))
    run = run_configured_guest(
        read_configuration(SIMPLE_X86),
        None,
        guest_binaries / "probe.elf",
        board="x86_64_generic",
        bootargs="console=ttyS0 probe.touch=0xd0000000",
        timeout=60,
        virtio=VirtioRequest(disk=disk),
    )
    assert run.outcome.reason is StopReason.EXITED, f"{run.outcome.diagnostic}\n{run.console}"
    assert run.boot.cmdline.endswith(" virtio_mmio.device=0x200@0xd0000000:5")
    assert "probe: read 0x0000000000000000\n" in run.console
    assert run.device_errors == [
        "virtio-block@0xd0000000: 8-byte read of register 0x0 (registers are 32-bit)"
    ]
