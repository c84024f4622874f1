"""Debian's arm64 Linux on sel4vmm's own VMM (unicorn backend), to userspace and back.

Each boot uses the kernel and busybox ``install.sh`` unpacked into
``.cache/debian-arm64/root``; the busybox initramfs is built per test into ``tmp_path``.
The expected kernel lines are Linux 6.1's own text: ``arch/arm64/kernel/smp.c``
("SMP: Total of %d processors activated."), ``kernel/panic.c`` ("---[ end Kernel panic -
not syncing: %s ]---"), ``drivers/tty/sysrq.c`` ("sysrq triggered crash").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import (
    MARKER,
    build_marker_initramfs,
    find_debian_arm64,
)
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import RunResult, run_guest
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.cpio import InitramfsBuilder
from tests.debian_guests import needs_debian
from tests.helpers import REPO

LIBVMM = REPO.parent / "shared" / "realworld" / "libvmm"
SIMPLE = LIBVMM / "simple" / "board" / "qemu_virt_aarch64"
SMP = LIBVMM / "smp" / "board" / "qemu_virt_aarch64"


SHELL_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "shell ready"
exec /bin/sh
"""

PANIC_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "about to crash"
echo c > /proc/sysrq-trigger
"""


def _initramfs(tmp_path: Path, init: str) -> Path:
    builder = InitramfsBuilder()
    builder.add_busybox(find_debian_arm64().busybox, init_script=init, applets=("sh",))
    out = tmp_path / "init.cpio.gz"
    out.write_bytes(builder.build_gzip())
    return out


def _boot(tmp_path: Path, **kwargs: object) -> RunResult:
    debian = find_debian_arm64()
    linux = kwargs.pop("linux", None) or LinuxBootFiles(
        initrd=build_marker_initramfs(debian.busybox, tmp_path)
    )
    return run_guest(
        kwargs.pop("system", None),  # type: ignore[arg-type]
        debian.kernel,
        linux=linux,  # type: ignore[arg-type]
        time_limit=600,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.slow
@needs_debian
def test_debian_kernel_boots_to_the_initramfs_marker_and_powers_off(
    tmp_path: Path, mmio_path: str
) -> None:
    # The one Linux boot run on both emulated-MMIO paths (a boot is ~7 s; the others run
    # on the default path only).
    result = _boot(tmp_path)
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    assert result.mmio_path.startswith(mmio_path)
    assert (result.trampoline_accesses > 0) is (mmio_path == "C extension")
    text = result.console_text
    assert "Linux version 6.1" in text
    assert "Run /init as init process" in text
    assert MARKER in text
    assert "reboot: Power down" in text
    assert result.linux and result.statistics.irqs_delivered > 0


@pytest.mark.slow
@needs_debian
def test_libvmm_simple_system_with_its_dts_and_overlay_uses_psci_over_smc(
    tmp_path: Path,
) -> None:
    debian = find_debian_arm64()
    linux = LinuxBootFiles(
        initrd=build_marker_initramfs(debian.busybox, tmp_path),
        dts=SIMPLE / "linux.dts",
        overlays=(SIMPLE / "overlay.dts",),
    )
    result = _boot(tmp_path, system=SIMPLE / "simple.system", linux=linux, one_to_one=False)
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    assert "psci: probing for conduit method from DT." in result.console_text
    assert MARKER in result.console_text


@pytest.mark.slow
@needs_debian
def test_a_scripted_shell_session_on_the_pl011(tmp_path: Path) -> None:
    linux = LinuxBootFiles(initrd=_initramfs(tmp_path, SHELL_INIT))
    typed = b"echo answer-$((6*7))\npoweroff -f\n"
    result = _boot(tmp_path, linux=linux, console_input=typed)
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    assert "shell ready" in result.console_text
    assert "\nanswer-42\n" in result.console_text  # the shell ran it, not just the echo


@pytest.mark.slow
@needs_debian
def test_a_kernel_panic_ends_the_run_with_its_last_lines(tmp_path: Path) -> None:
    linux = LinuxBootFiles(initrd=_initramfs(tmp_path, PANIC_INIT))
    result = _boot(tmp_path, linux=linux)
    assert result.stop_reason is StopReason.KERNEL_PANIC
    assert not result.ok
    assert any(
        "---[ end Kernel panic - not syncing: sysrq triggered crash ]---" in line
        for line in result.last_lines
    )


@pytest.mark.slow
@needs_debian
def test_until_stops_at_the_text_with_success(tmp_path: Path) -> None:
    result = _boot(tmp_path, until="Run /init as init process")
    assert result.stop_reason is StopReason.CONSOLE_MATCH and result.ok
    assert MARKER not in result.console_text


@pytest.mark.slow
@needs_debian
def test_smp_linux_on_the_libvmm_smp_system_reaches_userspace_on_all_its_cpus(
    tmp_path: Path,
) -> None:
    result = _boot(tmp_path, system=SMP / "smp.system")
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    cpus = result.layout.num_vcpus
    assert cpus == 4  # <vcpu id="0" cpu="0"/> ... <vcpu id="3" cpu="3"/>
    for cpu in range(1, cpus):
        assert f"CPU{cpu}: Booted secondary processor" in result.console_text
    assert f"SMP: Total of {cpus} processors activated." in result.console_text
    assert f"{MARKER} (Linux 6.1" in result.console_text and f", {cpus} CPU)" in result.console_text


@pytest.mark.slow
@needs_debian
def test_four_vcpus_from_pools_come_up_through_psci_cpu_on(tmp_path: Path) -> None:
    result = _boot(tmp_path, num_vcpus=4, one_to_one=False)
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    assert "smp: Brought up 1 node, 4 CPUs" in result.console_text
    assert ", 4 CPU)" in result.console_text


@needs_debian
def test_a_kernel_that_is_neither_an_image_nor_a_raw_binary_is_refused() -> None:
    busybox = find_debian_arm64().busybox  # an AArch64 ELF executable, not a kernel Image
    with pytest.raises(Sel4VmmError, match="which the emulator cannot boot") as raised:
        run_guest(kernel_path=busybox)
    assert raised.value.message.startswith(f"{busybox} is ELF aarch64")


def test_linux_options_with_a_raw_binary_are_refused(tmp_path: Path) -> None:
    raw = tmp_path / "guest.bin"
    raw.write_bytes(bytes(64))
    with pytest.raises(Sel4VmmError, match="is a raw binary"):
        run_guest(kernel_path=raw, linux=LinuxBootFiles(initrd=tmp_path / "initrd"))


def test_without_install_shs_kernel_the_default_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sel4vmm.backends.unicorn import default_linux

    monkeypatch.setattr(default_linux, "_roots", lambda: [tmp_path])
    with pytest.raises(Sel4VmmError, match="Debian's arm64 kernel is not there") as raised:
        default_linux.find_debian_arm64()
    assert raised.value.fix is not None and "./install.sh" in raised.value.fix
