"""QEMU backend benchmarks, printed as ratios against baselines measured in the same run.

1. Time to the initramfs marker line, Debian's arm64 kernel + a busybox initramfs on
   libvmm's qemu_virt_aarch64 system and device tree:
   sel4vmm (``run_qemu``: read, place and load the images into shared RAM, then QEMU from
   the boot stub) against QEMU's own loader (``-kernel``/``-initrd``/``-dtb``/``-append``)
   on the same machine, same kernel, initrd, DTB and command line.  Runs alternate
   (``--runs`` pairs, default 15, then more pairs up to ``--max-runs`` while the answer is
   undecided); the clock starts before any work (sel4vmm's loading counts).  Reported:
   each side's median and spread, the median of the per-pair ratios with its
   distribution-free 95% confidence interval (order statistics of the binomial), and
   whether that interval decides the target (looking again every two pairs after the
   first ``--runs`` makes the 95% nominal: read an answer decided near the boundary with
   that in mind); and sel4vmm's steps before and around
   QEMU's start (configuration, RAM file, device-tree compile, QEMU start, image load,
   QMP handshake), each timed inside ``run_qemu``.                  target <= 1.05x
2. Loading a 40 MB kernel and a 40 MB initrd into the shared RAM file against a plain copy
   of the same bytes into fresh anonymous memory.  (``bench_image_load.py`` measures the
   same load into anonymous guest RAM.)

Needs ``./install.sh``'s Debian kernel and busybox, ``qemu-system-aarch64``, ``dtc`` and
``../shared/realworld``.  Prints figures only; nothing passes or fails.
Run: ``PYTHONPATH=src python bench/bench_qemu_boot.py``.
"""

from __future__ import annotations

import argparse
import math
import mmap
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sel4vmm.backends.qemu.console import ConsoleStream
from sel4vmm.backends.qemu.loading import BootFiles, load_for_qemu
from sel4vmm.backends.qemu.machine import QemuMachine, direct_kernel_command, find_qemu
from sel4vmm.backends.qemu.process import run_process
from sel4vmm.backends.qemu.session import run_qemu
from sel4vmm.backends.qemu.shared_ram import SharedGuestRam
from sel4vmm.images.cpio import InitramfsBuilder
from sel4vmm.images.dtb import compile_dts
from timing import best_of

REPO = Path(__file__).resolve().parents[1]
DEBIAN_ROOT = REPO / ".cache" / "debian-arm64" / "root"
BOARD = REPO.parent / "shared" / "realworld" / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
MARKER = "SEL4VMM-INITRAMFS-OK"
BOOTARGS = "console=ttyAMA0 earlycon=pl011,0x9000000 panic=-1"
RUNS = 15
MAX_RUNS = 61
TARGET = 1.05
TIMEOUT = 120.0
MIB = 1 << 20
IMAGE_SIZE = 40 * MIB
RAM_SIZE = 256 * MIB


def build_initrd(directory: Path) -> Path:
    builder = InitramfsBuilder()
    builder.add_busybox(
        DEBIAN_ROOT / "bin" / "busybox",
        init_script=f"#!/bin/sh\necho {MARKER}\n/bin/busybox poweroff -f\n",
    )
    path = directory / "initrd.cpio.gz"
    path.write_bytes(builder.build_gzip())
    return path


def sel4vmm_boot(kernel: Path, initrd: Path) -> tuple[float, dict[str, float]]:
    """Seconds to the marker, and run_qemu's own per-step timings."""
    result = run_qemu(
        BOARD / "simple.system",
        kernel,
        initrd,
        dts=BOARD / "linux.dts",
        overlays=[BOARD / "overlay.dts"],
        bootargs=BOOTARGS,
        timeout=TIMEOUT,
        marker=MARKER,
    )
    if result.marker_seconds is None or not result.ok:
        sys.exit(f"sel4vmm boot failed:\n{result.console[-2000:]}{result.stderr}")
    return result.marker_seconds, result.steps


def direct_boot(command: list[str]) -> float:
    started = time.monotonic()
    stream = ConsoleStream(None, MARKER, started=started)
    outcome = run_process(command, stream, timeout=TIMEOUT)
    if stream.marker_seconds is None or outcome.exit_code != 0:
        sys.exit(f"QEMU -kernel boot failed:\n{stream.text[-2000:]}{outcome.stderr}")
    return stream.marker_seconds


def median_interval(samples: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: order statistics x(k), x(n+1-k) with
    P(k <= rank of the median <= n+1-k) >= confidence under Binomial(n, 1/2)."""
    ordered = sorted(samples)
    n = len(ordered)
    tail = (1 - confidence) / 2
    k = 0
    cumulative = 0.0
    while True:
        cumulative += math.comb(n, k) / 2**n  # P(X = k)
        if cumulative > tail:
            break
        k += 1
    if k == 0:
        return ordered[0], ordered[-1]  # too few runs for that confidence: the full range
    return ordered[k - 1], ordered[n - k]


def verdict_of(low: float, high: float) -> str | None:
    """What the interval says about the target, or None while it straddles it."""
    if high <= TARGET:
        return f"target met: the whole interval is <= {TARGET}x"
    if low > TARGET:
        return f"target missed: the whole interval is > {TARGET}x"
    return None


def bench_boot(directory: Path, runs: int, max_runs: int) -> None:
    kernel = sorted(DEBIAN_ROOT.glob("boot/vmlinuz-*"))[-1]
    initrd = build_initrd(directory)
    dtb = directory / "libvmm-qemu-virt.dtb"
    dtb.write_bytes(compile_dts(BOARD / "linux.dts", [BOARD / "overlay.dts"]))
    command = direct_kernel_command(
        find_qemu(),
        QemuMachine(RAM_SIZE),
        kernel,
        initrd=initrd,
        dtb=dtb,
        append=BOOTARGS,
    )
    ours: list[float] = []
    theirs: list[float] = []
    steps: dict[str, list[float]] = {}
    sel4vmm_boot(kernel, initrd)  # warm the page cache for both
    direct_boot(command)
    index = 0
    while index < max_runs:
        if index >= runs and index % 2 == 0:
            pair_ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
            if verdict_of(*median_interval(pair_ratios)) is not None:
                break
        # Alternate which side goes first, so a slow drift of the machine's load favours
        # neither.
        if index % 2:
            theirs.append(direct_boot(command))
        ours_seconds, ours_steps = sel4vmm_boot(kernel, initrd)
        ours.append(ours_seconds)
        if not index % 2:
            theirs.append(direct_boot(command))
        for name, seconds in ours_steps.items():
            steps.setdefault(name, []).append(seconds)
        index += 1
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    low, high = median_interval(ratios)
    print(f"1. time to '{MARKER}' ({kernel.name}, {initrd.stat().st_size} B initramfs)")
    print(f"   {len(ours)} alternating pairs (at least {runs}, at most {max_runs})")
    print(f"   sel4vmm load + QEMU : {_figures(ours)}")
    print(f"   QEMU -kernel        : {_figures(theirs)}")
    ratio = statistics.median(ratios)
    print(
        f"   ratio, median of pairs : {ratio:.3f}x, 95% interval {low:.3f}-{high:.3f}x "
        f"(target <= {TARGET}x)"
    )
    print(f"   ratio of medians       : {statistics.median(ours) / statistics.median(theirs):.3f}x")
    verdict = verdict_of(low, high)
    undecided = f"undecided after {len(ours)} pairs: the interval straddles {TARGET}x"
    print(f"   verdict                : {verdict or undecided}")
    print("   sel4vmm's steps inside run_qemu (median ms; QEMU initialises during the load):")
    for name, samples in steps.items():
        print(
            f"     {name:22s} {statistics.median(samples) * 1e3:8.1f} "
            f"(min {min(samples) * 1e3:.1f}, max {max(samples) * 1e3:.1f})"
        )


def _figures(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples):.3f} s, min {min(samples):.3f} s, "
        f"max {max(samples):.3f} s"
    )


def bench_load(directory: Path) -> None:
    kernel = directory / "Image-40M"
    image = bytearray(os.urandom(IMAGE_SIZE))
    # An arm64 Image header: b 0x40, text_offset 0, image_size, flags (LE, 4K, anywhere).
    image[0:0x40] = (
        (0x14000010).to_bytes(4, "little")
        + bytes(4)
        + (0).to_bytes(8, "little")
        + (IMAGE_SIZE + MIB).to_bytes(8, "little")
        + (0xA).to_bytes(8, "little")
        + bytes(24)
        + b"ARM\x64"
        + bytes(4)
    )
    kernel.write_bytes(image)
    initrd = directory / "initrd-40M"
    initrd.write_bytes(os.urandom(IMAGE_SIZE))
    files = BootFiles(kernel, initrd, dts=BOARD / "linux.dts", overlays=(BOARD / "overlay.dts",))

    def load() -> None:
        with SharedGuestRam("bench", RAM_SIZE) as ram:
            load_for_qemu(ram, files)

    with kernel.open("rb") as k, initrd.open("rb") as i:
        sources = [
            mmap.mmap(k.fileno(), 0, prot=mmap.PROT_READ),
            mmap.mmap(i.fileno(), 0, prot=mmap.PROT_READ),
        ]

        def memcpy() -> None:
            with mmap.mmap(-1, RAM_SIZE) as target:
                offset = 2 * MIB
                for source in sources:
                    target[offset : offset + len(source)] = source
                    offset += len(source)

        plain = best_of(5, memcpy)
        ours = best_of(5, load)
        for source in sources:
            source.close()
    total = 2 * IMAGE_SIZE / MIB
    print(f"2. load {total:.0f} MiB (40 MB kernel + 40 MB initrd) into guest RAM, best of 5")
    print(f"   plain copy into fresh anonymous memory : {plain * 1e3:7.1f} ms")
    print(
        f"   sel4vmm into the shared RAM file       : {ours * 1e3:7.1f} ms "
        f"(incl. file creation, VM set-up, DTB compile and placement)"
    )
    print(f"   ratio                                  : {ours / plain:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="alternating pairs of boots")
    parser.add_argument(
        "--max-runs", type=int, default=MAX_RUNS, help="pairs at most, while undecided"
    )
    args = parser.parse_args()
    missing = [
        str(p) for p in (BOARD / "simple.system", DEBIAN_ROOT / "bin" / "busybox") if not p.exists()
    ]
    if missing or not list(DEBIAN_ROOT.glob("boot/vmlinuz-*")):
        sys.exit(f"missing inputs: {', '.join(missing) or 'Debian kernel'} (run ./install.sh)")
    with tempfile.TemporaryDirectory() as scratch:
        bench_boot(Path(scratch), args.runs, max(args.runs, args.max_runs))
        bench_load(Path(scratch))


if __name__ == "__main__":
    main()
