"""virtio-blk read throughput inside Debian's Linux on sel4vmm's VMM vs the host, same run.

The guest (Debian's arm64 kernel on the unicorn backend, libvmm's virtio_mmio client device
tree, ``--disk``) runs ``dd if=/dev/vda of=/dev/null bs=1M`` over the whole disk between two
marker lines; the time between the markers arriving on the host console is the guest's read
time in host seconds (boot excluded).  Baseline: the host reading the same image file in
1 MiB reads.  The image is written fresh with random bytes (so the guest's page cache is
cold); the host's read of it is warm, the best case for the host.  Reported: MB/s of each
and the ratio.  Two cores are shared with other developers: expect noise; the best of
``--repeat`` runs is reported.  Needs ``./install.sh``'s Debian kernel and busybox and
``../shared/realworld/libvmm``.
Run: ``PYTHONPATH=src python bench/bench_virtio_linux.py [--size MiB] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import run_guest
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.cli.images import build_initramfs
from timing import best_of

REPO = Path(__file__).resolve().parents[1]
CLIENT_VM = REPO.parent / "shared" / "realworld" / "libvmm" / "virtio_mmio" / "client_vm"
PL011_OVERLAY = REPO / "tests" / "backends" / "unicorn" / "data" / "pl011_overlay.dts"
START, END = "bench: dd start", "bench: dd end"

INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
n=0
while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do /bin/busybox sleep 0.1; n=$((n + 1)); done
echo "{START}"
/bin/busybox dd if=/dev/vda of=/dev/null bs=1M
echo "{END}"
/bin/busybox poweroff -f
"""


def guest_read_seconds(disk: Path, initrd: Path) -> float:
    seen: dict[str, float] = {}
    text = bytearray()

    def console(data: bytes) -> None:
        text.extend(data)
        for marker in (START, END):
            if marker not in seen and marker.encode() in text:
                seen[marker] = time.monotonic()

    result = run_guest(
        None,
        find_debian_arm64().kernel,
        console=console,
        linux=LinuxBootFiles(
            initrd=initrd,
            dts=CLIENT_VM / "linux.dts",
            overlays=[CLIENT_VM / "gic_v2_overlay.dts", PL011_OVERLAY],
            bootargs="console=ttyAMA0",
        ),
        virtio=VirtioBackends(disk=disk),
        time_limit=900,
    )
    if result.stop_reason is not StopReason.SYSTEM_OFF or len(seen) != 2:
        raise SystemExit(f"the guest did not finish: {result.console_text[-2000:]}")
    return seen[END] - seen[START]


def host_read(disk: Path) -> None:
    with disk.open("rb", buffering=0) as image:
        while image.read(1 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=16, help="disk size in MiB")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sel4vmm-bench-") as scratch:
        root = Path(scratch)
        init = root / "init"
        init.write_text(INIT)
        initrd = root / "initrd.cpio.gz"
        build_initramfs(
            initrd,
            busybox=find_debian_arm64().busybox,
            tree=None,
            init=init,
            modules=("virtio_mmio", "virtio_blk"),
        )
        disk = root / "disk.img"
        size = args.size << 20
        disk.write_bytes(os.urandom(size))
        guest = min(guest_read_seconds(disk, initrd) for _ in range(args.repeat))
        host = best_of(args.repeat, lambda: host_read(disk))
    print(f"virtio-blk sequential read of {args.size} MiB, dd bs=1M in the guest")
    print(f"  guest (Linux on unicorn): {size / guest / 1e6:8.1f} MB/s ({guest:.2f} s)")
    print(f"  host (1 MiB reads):       {size / host / 1e6:8.1f} MB/s ({host:.4f} s)")
    print(f"  ratio guest/host: {host / guest:.4f}x (noisy: 2 shared cores)")


if __name__ == "__main__":
    main()
