"""Linux boot time on the emulator's GICv3 against its GICv2, measured in the same run.

Time to the initramfs marker line (Debian's arm64 kernel, the busybox initramfs whose
``/init`` prints the marker and powers off), from the start of ``run_guest`` — image
reading, DTB compilation and placement included.  Both boots use libvmm's virtio_mmio client
tree (``../shared/realworld/libvmm/virtio_mmio/client_vm/linux.dts``) with the PL011 test
overlay and console=ttyAMA0; they differ only in the GIC overlay (``gic_v2_overlay.dts`` or
``gic_v3_overlay.dts``), so the ratio is the cost of the GICv3's ICC_* system registers
(served from undefined instructions) against the GICv2's memory-mapped CPU interface (a
device window, with the C trampoline when built).  Runs alternate (``RUNS`` of each) and
the median is reported.  The machine is shared with other developers (2 cores): expect
noise.  Prints figures only.  Run: ``PYTHONPATH=src python bench/bench_gic_boot.py [VCPUS]``.
"""

from __future__ import annotations

import statistics
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
REPO = Path(__file__).resolve().parents[1]
CLIENT_VM = REPO.parent / "shared" / "realworld" / "libvmm" / "virtio_mmio" / "client_vm"
DATA = REPO / "tests" / "backends" / "unicorn" / "data"


def boot_seconds(kernel: Path, initrd: Path, gic_overlay: str, vcpus: int) -> tuple[float, int]:
    """Seconds to the marker, and the IRQs the guest acknowledged on the way."""
    overlays = [CLIENT_VM / gic_overlay, DATA / "pl011_overlay.dts"]
    if vcpus > 1:
        overlays.append(DATA / "four_cpus_overlay.dts")
    started = time.perf_counter()
    seen: list[float] = []
    window = bytearray()

    def console(data: bytes) -> None:
        window.extend(data)
        del window[: -len(MARKER) - 256]
        if not seen and MARKER.encode() in window:
            seen.append(time.perf_counter() - started)

    result = run_guest(
        None,
        kernel,
        console=console,
        linux=LinuxBootFiles(
            initrd=initrd,
            dts=CLIENT_VM / "linux.dts",
            overlays=overlays,
            bootargs="console=ttyAMA0",
        ),
        until=MARKER,
        num_vcpus=vcpus,
        time_limit=600,
    )
    if not seen:
        sys.exit(f"{gic_overlay}: the marker never came: {result.stop_reason.value}")
    return seen[0], result.statistics.irqs_delivered


def main() -> None:
    vcpus = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if vcpus not in (1, 4):
        sys.exit("VCPUS is 1 or 4 (the four-CPU overlay)")
    debian = find_debian_arm64()
    times: dict[str, list[float]] = {"gic_v2_overlay.dts": [], "gic_v3_overlay.dts": []}
    irqs: dict[str, list[int]] = {name: [] for name in times}
    with tempfile.TemporaryDirectory(prefix="sel4vmm-bench-") as scratch:
        initrd = build_marker_initramfs(debian.busybox, Path(scratch))
        for _ in range(RUNS):
            for name in times:
                seconds, delivered = boot_seconds(debian.kernel, initrd, name, vcpus)
                times[name].append(seconds)
                irqs[name].append(delivered)
    v2 = statistics.median(times["gic_v2_overlay.dts"])
    v3 = statistics.median(times["gic_v3_overlay.dts"])
    print(f"kernel {debian.kernel.name}, {vcpus} vCPU(s), {RUNS} alternating runs each")
    for name, label in (("gic_v2_overlay.dts", "GICv2"), ("gic_v3_overlay.dts", "GICv3")):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {label}: {runs} s (median {statistics.median(times[name]):.2f} s), "
              f"IRQs acknowledged {irqs[name]}")  # fmt: skip
    print(f"time to the initramfs marker: GICv3 {v3 / v2:.2f}x GICv2")


if __name__ == "__main__":
    main()
