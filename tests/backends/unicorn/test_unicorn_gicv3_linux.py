"""Debian's arm64 Linux on the emulator's GICv3, with 1 and with 4 vCPUs (one boot each).

The guest's tree is libvmm's virtio_mmio client (``../shared/realworld/libvmm/virtio_mmio/
client_vm/linux.dts``) with its ``gic_v3_overlay.dts`` (an ``arm,gic-v3`` node: distributor
at 0x38800000, redistributors at 0x38880000) and this directory's PL011 overlay, so the
kernel log is on ttyAMA0.  The kernel's own lines are quoted from Linux 6.1 (the kernel
``.cache`` holds, 6.1.0-57-arm64):

* ``drivers/irqchip/irq-gic-v3.c`` (``pr_fmt`` "GICv3: "): ``"%d SPIs implemented\\n"`` and
  ``"CPU%d: found redistributor %lx region %d:%pa\\n"``;
* ``arch/arm64/kernel/cpufeature.c``: the capability ``.desc = "GIC system register CPU
  interface"``, printed as ``"detected: %s\\n"`` with ``pr_fmt`` "CPU features: ";
* ``arch/arm64/kernel/smp.c``: ``"CPU%u: Booted secondary processor 0x%010lx [0x%08x]\\n"``
  and ``"SMP: Total of %d processors activated.\\n"``;
* ``/proc/interrupts`` (``kernel/irq/proc.c``): a ``CPU0 ... CPU3`` header, then per
  interrupt its count on each CPU and its chip's name, ``GICv3`` (``gic_chip.name`` in
  ``irq-gic-v3.c``); the virtual timer's line ends ``arch_timer``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import (
    MARKER,
    build_marker_initramfs,
    find_debian_arm64,
)
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import run_guest
from sel4vmm.images.cpio import InitramfsBuilder
from tests.debian_guests import CLIENT_VM, needs_client_vm, needs_debian

DATA = Path(__file__).parent / "data"

needs_libvmm = needs_client_vm("gic_v3_overlay.dts")

#: What every GICv3 boot prints (Linux 6.1's texts, see the module docstring).
GICV3_LINES = (
    "GICv3: 96 SPIs implemented",
    "CPU features: detected: GIC system register CPU interface",
    "GICv3: CPU0: found redistributor 0 region 0:0x0000000038880000",
)


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_sel4vmm_run_boots_linux_on_the_gicv3_of_libvmms_overlay(tmp_path: Path) -> None:
    debian = find_debian_arm64()
    initrd = build_marker_initramfs(debian.busybox, tmp_path)
    command = [
        sys.executable, "-m", "sel4vmm", "run",
        "--kernel", str(debian.kernel), "--initrd", str(initrd),
        "--dts", str(CLIENT_VM / "linux.dts"),
        "--overlay", str(CLIENT_VM / "gic_v3_overlay.dts"),
        "--overlay", str(DATA / "pl011_overlay.dts"),
        "--bootargs", "console=ttyAMA0", "--timeout", "300",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, timeout=400, env=dict(os.environ), stdin=subprocess.DEVNULL
    )
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    for line in GICV3_LINES:
        assert line in output, output[-3000:]
    assert f"{MARKER} (Linux 6.1" in output and "1 CPU)" in output


INTERRUPTS_INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox cat /proc/interrupts
echo "{MARKER} ($(/bin/busybox nproc) CPU)"
/bin/busybox poweroff -f
"""


def _timer_counts(text: str) -> list[int]:
    """The per-CPU counts of /proc/interrupts' arch_timer line (its chip must be GICv3)."""
    for line in text.splitlines():
        if line.rstrip().endswith("arch_timer") and "GICv3" in line:
            fields = line.split()
            return [int(field) for field in fields[1:5]]
    raise AssertionError(f"no GICv3 arch_timer line in /proc/interrupts:\n{text[-3000:]}")


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_four_vcpus_come_online_on_the_gicv3(tmp_path: Path) -> None:
    debian = find_debian_arm64()
    builder = InitramfsBuilder()
    builder.add_busybox(debian.busybox, init_script=INTERRUPTS_INIT, applets=("sh",))
    initrd = tmp_path / "interrupts.cpio.gz"
    initrd.write_bytes(builder.build_gzip())
    result = run_guest(
        None,
        debian.kernel,
        linux=LinuxBootFiles(
            initrd=initrd,
            dts=CLIENT_VM / "linux.dts",
            overlays=[
                CLIENT_VM / "gic_v3_overlay.dts",
                DATA / "pl011_overlay.dts",
                DATA / "four_cpus_overlay.dts",
            ],
            bootargs="console=ttyAMA0",
        ),
        num_vcpus=4,
        time_limit=600,
    )
    text = result.console_text
    assert result.stop_reason is StopReason.SYSTEM_OFF, text[-3000:]
    for line in GICV3_LINES:
        assert line in text
    for cpu in (1, 2, 3):
        # Each secondary finds its own redistributor (Aff0 = vCPU index, 128 KiB apart)
        # and comes up: IPIs between vCPUs are SGIs through ICC_SGI1R_EL1.
        assert f"GICv3: CPU{cpu}: found redistributor {cpu} region 0:0x00000000388" in text
        assert f"CPU{cpu}: Booted secondary processor 0x000000000{cpu}" in text
    assert "SMP: Total of 4 processors activated." in text
    assert f"{MARKER} (4 CPU)" in text
    # Every vCPU took its own virtual timer interrupt (PPI 27 in its redistributor).
    counts = _timer_counts(text)
    assert len(counts) == 4 and all(count > 0 for count in counts), counts
    assert result.statistics.irqs_delivered > 0
