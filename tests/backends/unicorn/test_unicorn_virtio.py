"""Debian's arm64 Linux using sel4vmm's virtio-mmio block and console devices on unicorn.

The guest boots with libvmm's virtio_mmio client device tree
(``../shared/realworld/libvmm/virtio_mmio/client_vm/linux.dts`` plus its
``gic_v2_overlay.dts``, or its ``gic_v3_overlay.dts`` for the GICv3), an initramfs from
``sel4vmm initramfs --modules`` and a ``/init`` that reads sector 0 of ``/dev/vda``, prints
its md5sum, writes sector 1 and powers off.
The test checks the checksum against the host's own (``hashlib``) and that the host file
holds what the guest wrote.  ``Linux version 6.1`` is the first line of Linux 6.1's
``init/version.c`` banner (``linux_banner``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import RunResult, run_guest
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from tests.debian_guests import (
    CLIENT_VM,
    PL011_OVERLAY,
    debian_initramfs,
    needs_client_vm,
    needs_debian,
)

needs_libvmm = needs_client_vm("linux.dts")

SECTOR_0 = (b"sel4vmm virtio-blk sector 0, written by the host\n" * 11)[:512]
GUEST_WORDS = "written-by-the-guest"
DONE = "sel4vmm virtio test done"

DISK_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
{console}
n=0
while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do /bin/busybox sleep 0.1; n=$((n + 1)); done
echo "sector0 md5 $(/bin/busybox dd if=/dev/vda bs=512 count=1 2>/dev/null | /bin/busybox md5sum)"
echo -n "{words}" | /bin/busybox dd of=/dev/vda bs=512 seek=1 count=1 conv=sync 2>/dev/null
/bin/busybox sync
echo "{done}"
/bin/busybox poweroff -f
"""
#: With console=hvc0 the initial console does not exist yet (virtio_console is a module
#: loaded by this /init): the script reopens its output on hvc0 once it does.
HVC0_REDIRECT = (
    "n=0\nwhile [ ! -c /dev/hvc0 ] && [ $n -lt 50 ]; "
    "do /bin/busybox sleep 0.1; n=$((n + 1)); done\n"
    "exec </dev/hvc0 >/dev/hvc0 2>&1\necho 'init on hvc0'"
)


def _disk(tmp_path: Path) -> Path:
    disk = tmp_path / "disk.img"
    disk.write_bytes(SECTOR_0 + bytes(1 << 20))
    return disk


def _initramfs(tmp_path: Path, console: str, modules: tuple[str, ...]) -> Path:
    script = DISK_INIT.format(console=console, words=GUEST_WORDS, done=DONE)
    return debian_initramfs(tmp_path / "virtio.cpio.gz", script, modules)


def _boot(
    tmp_path: Path,
    *,
    bootargs: str,
    overlays: list[Path],
    backends: VirtioBackends,
    console: str,
    modules: tuple[str, ...],
    gic_overlay: str = "gic_v2_overlay.dts",
) -> RunResult:
    return run_guest(
        None,
        find_debian_arm64().kernel,
        linux=LinuxBootFiles(
            initrd=_initramfs(tmp_path, console, modules),
            dts=CLIENT_VM / "linux.dts",
            overlays=[CLIENT_VM / gic_overlay, *overlays],
            bootargs=bootargs,
        ),
        virtio=backends,
        time_limit=600,
    )


def _check_disk(result: RunResult, disk: Path) -> None:
    text = result.console_text
    assert result.stop_reason is StopReason.SYSTEM_OFF, text[-3000:]
    assert f"sector0 md5 {hashlib.md5(SECTOR_0).hexdigest()}" in text, text[-3000:]
    assert DONE in text
    data = disk.read_bytes()
    assert data[:512] == SECTOR_0
    assert data[512:1024] == GUEST_WORDS.encode().ljust(512, b"\0")
    assert not result.warnings


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_linux_reads_and_writes_a_virtio_blk_disk(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    result = _boot(
        tmp_path,
        bootargs="console=ttyAMA0",
        overlays=[PL011_OVERLAY],
        backends=VirtioBackends(disk=disk),
        console="",
        modules=("virtio_mmio", "virtio_blk"),
    )
    assert "Linux version 6.1" in result.console_text
    assert " vda: " in result.console_text or "virtio_blk virtio" in result.console_text
    _check_disk(result, disk)


@pytest.mark.slow
@needs_debian
@needs_libvmm
@pytest.mark.parametrize(
    "gic_overlay", ["gic_v2_overlay.dts", "gic_v3_overlay.dts"], ids=["gicv2", "gicv3"]
)
def test_linux_console_on_hvc0_is_virtio_console(tmp_path: Path, gic_overlay: str) -> None:
    disk = _disk(tmp_path)
    result = _boot(
        tmp_path,
        bootargs="console=hvc0",
        overlays=[],
        backends=VirtioBackends(disk=disk, console=True),
        console=HVC0_REDIRECT,
        modules=("virtio_mmio", "virtio_blk", "virtio_console"),
        gic_overlay=gic_overlay,
    )
    # The DTB has no PL011: everything the test sees came through virtio-console.
    assert "init on hvc0" in result.console_text, result.console_text[-3000:]
    _check_disk(result, disk)


READ_INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
{HVC0_REDIRECT}
read line
echo "guest read: $line"
/bin/busybox poweroff -f
"""


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_input_reaches_the_guest_through_virtio_console(tmp_path: Path) -> None:
    initrd = debian_initramfs(
        tmp_path / "read.cpio.gz", READ_INIT, ("virtio_mmio", "virtio_console")
    )
    result = run_guest(
        None,
        find_debian_arm64().kernel,
        linux=LinuxBootFiles(
            initrd=initrd,
            dts=CLIENT_VM / "linux.dts",
            overlays=[CLIENT_VM / "gic_v2_overlay.dts"],
            bootargs="console=hvc0",
        ),
        virtio=VirtioBackends(console=True),
        console_input=b"typed-by-the-host\n",
        time_limit=600,
    )
    assert result.stop_reason is StopReason.SYSTEM_OFF, result.console_text[-3000:]
    assert "guest read: typed-by-the-host" in result.console_text


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_a_read_only_disk_refuses_the_guests_write(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    before = disk.read_bytes()
    result = _boot(
        tmp_path,
        bootargs="console=ttyAMA0",
        overlays=[PL011_OVERLAY],
        backends=VirtioBackends(disk=disk, read_only=True),
        console="",
        modules=("virtio_mmio", "virtio_blk"),
    )
    text = result.console_text
    assert result.stop_reason is StopReason.SYSTEM_OFF, text[-3000:]
    assert f"sector0 md5 {hashlib.md5(SECTOR_0).hexdigest()}" in text
    assert disk.read_bytes() == before


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_run_command_serves_disk_and_console_as_the_readme_shows(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    initrd = _initramfs(tmp_path, HVC0_REDIRECT, ("virtio_mmio", "virtio_blk", "virtio_console"))
    command = [
        sys.executable, "-m", "sel4vmm", "run",
        "--kernel", str(find_debian_arm64().kernel), "--initrd", str(initrd),
        "--dts", str(CLIENT_VM / "linux.dts"), "--overlay", str(CLIENT_VM / "gic_v2_overlay.dts"),
        "--bootargs", "console=hvc0", "--disk", str(disk), "--console", "virtio",
        "--timeout", "300",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, timeout=400, env=dict(os.environ), stdin=subprocess.DEVNULL
    )
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    assert f"sector0 md5 {hashlib.md5(SECTOR_0).hexdigest()}" in output
    assert disk.read_bytes()[512:1024] == GUEST_WORDS.encode().ljust(512, b"\0")
