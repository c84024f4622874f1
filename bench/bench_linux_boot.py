"""Linux boot on sel4vmm's own VMM (unicorn) against QEMU TCG, measured in the same run.

Time to the initramfs marker line, Debian's arm64 kernel with a busybox initramfs whose
``/init`` prints the marker and powers off:

* sel4vmm: ``run_guest`` on the emulator backend (bundled qemu-virt system, the board's
  own device tree), from the start of the call — image reading, placement and loading
  included — to the marker on the console;
* QEMU: ``qemu-system-aarch64 -M virt -cpu cortex-a57 -m 256M -kernel ... -initrd ...
  -append console=ttyAMA0``, from process start to the marker on its stdout.

Same kernel and initrd; runs alternate (3 of each) and the median is reported.  Target:
<= 2.0x.  The machine is shared with other developers (2 cores), so expect noise; each side's
CPU time to the marker is printed too (this process's for sel4vmm, the QEMU child's user +
system time, all its threads, for QEMU), which other developers' load disturbs far less
than wall time.  Needs
``./install.sh``'s Debian kernel and busybox and ``qemu-system-aarch64``.  Prints figures
only.  Run: ``PYTHONPATH=src python bench/bench_linux_boot.py``.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sel4vmm.backends.unicorn.default_linux import (
    MARKER,
    build_marker_initramfs,
    find_debian_arm64,
)
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import run_guest

RUNS = 3
QEMU_TIMEOUT = 120.0


def sel4vmm_seconds(kernel: Path, initrd: Path) -> tuple[float, float]:
    """Wall and CPU seconds from the start of ``run_guest`` to the marker."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    seen: list[float] = []
    cpu: list[float] = []
    window = bytearray()

    def console(data: bytes) -> None:
        window.extend(data)
        del window[: -len(MARKER) - 256]
        if not seen and MARKER.encode() in window:
            seen.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)

    result = run_guest(
        None, kernel, console=console, linux=LinuxBootFiles(initrd=initrd), until=MARKER
    )
    if not seen:
        sys.exit(f"sel4vmm never printed the marker: {result.stop_reason.value}")
    return seen[0], cpu[0]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def qemu_seconds(qemu: str, kernel: Path, initrd: Path) -> tuple[float, float]:
    """Wall seconds from QEMU's start to the marker, and QEMU's CPU seconds (it is killed
    at the marker and reaped, so its whole CPU time is the time to the marker)."""
    command = [
        qemu, "-M", "virt", "-cpu", "cortex-a57", "-m", "256M", "-nographic",
        "-monitor", "none", "-serial", "stdio", "-kernel", str(kernel),
        "-initrd", str(initrd), "-append", "console=ttyAMA0",
    ]  # fmt: skip
    started = time.perf_counter()
    cpu_before = children_cpu()
    wall: float | None = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        window = b""
        try:
            while time.perf_counter() - started < QEMU_TIMEOUT:
                chunk = process.stdout.read1(4096)
                if not chunk:
                    break
                window = (window + chunk)[-(len(MARKER) + 256) :]
                if MARKER.encode() in window:
                    wall = time.perf_counter() - started
                    break
        finally:
            process.kill()
    if wall is None:
        sys.exit("QEMU never printed the marker")
    return wall, children_cpu() - cpu_before


def main() -> None:
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        sys.exit("qemu-system-aarch64 is not installed (./install.sh installs qemu-system-arm)")
    debian = find_debian_arm64()
    with tempfile.TemporaryDirectory(prefix="sel4vmm-bench-") as scratch:
        initrd = build_marker_initramfs(debian.busybox, Path(scratch))
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(RUNS):
            ours.append(sel4vmm_seconds(debian.kernel, initrd))
            theirs.append(qemu_seconds(qemu, debian.kernel, initrd))
    print(f"kernel {debian.kernel.name}, {RUNS} alternating runs each")
    for index, what in ((0, "wall"), (1, "CPU")):
        mine = statistics.median(t[index] for t in ours)
        qemus = statistics.median(t[index] for t in theirs)
        target = " (target <= 2.0x)" if index == 0 else ""
        print(f"  {what} seconds to the initramfs marker:")
        print(f"    sel4vmm emulator: {listed(ours, index)} (median {mine:.2f})")
        print(f"    QEMU TCG:         {listed(theirs, index)} (median {qemus:.2f})")
        print(f"    ratio: {mine / qemus:.2f}x QEMU{target}")


def listed(runs: list[tuple[float, float]], index: int) -> str:
    return ", ".join(f"{run[index]:.2f}" for run in runs)


if __name__ == "__main__":
    main()
