"""Guest-to-guest throughput over virtio-net between two Linux VMs, vs a host memcpy, same run.

Two VMs of one system (``tests/backends/unicorn/data/two_linux_vms.system``: the same guest
RAM base, from pools) boot Debian's arm64 kernel on the unicorn backend in one event loop,
each with libvmm's virtio_mmio client device tree, so each has a virtio-net card on a port
of the VMM's virtual switch.  The sender sends a file of ``--size`` MiB from
``/dev/urandom`` with busybox ``nc`` to the listener (``tests/backends/unicorn/net_guests.py``);
both print its md5sum, which must match.  Measured:

* host seconds between the sender's ``transfer start`` and ``transfer end`` console lines
  (stamped as they arrive on the host; the two VMs share one host thread, so this is the
  wall-clock cost of the whole path: both guests' TCP stacks, both virtio-net devices and
  the switch), giving bytes/s;
* guest seconds between the same lines (the sender's ``/proc/uptime``, the board clock);
* the switch's byte counter for the listener's port (Ethernet frames, headers included).

Baseline, in the same run: the host copying the same number of bytes (``bytearray`` of a
``bytes``; best of 5).  Two cores are shared with other developers: expect noise; the best
of ``--repeat`` runs is reported.  Needs ``./install.sh``'s Debian kernel and busybox and
``../shared/realworld/libvmm``.
Run: ``PYTHONPATH=src python bench/bench_virtio_net.py [--size MiB] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64  # noqa: E402
from sel4vmm.backends.unicorn.diagnostics import StopReason  # noqa: E402
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles  # noqa: E402
from sel4vmm.backends.unicorn.system_session import run_system  # noqa: E402
from tests.backends.unicorn.net_guests import TWO_VMS, net_initramfs  # noqa: E402
from tests.debian_guests import CLIENT_VM, PL011_OVERLAY  # noqa: E402
from timing import best_of  # noqa: E402

LISTENER, SENDER = "listener", "sender"


@dataclass
class Transfer:
    host_seconds: float
    guest_seconds: float
    switch_bytes: int
    run_seconds: float


class StampedConsole:
    """A VM's console that notes the host time each line arrives."""

    def __init__(self) -> None:
        self.text = bytearray()
        self.stamps: dict[str, float] = {}

    def __call__(self, data: bytes) -> None:
        now = time.monotonic()
        start = self.text.rfind(b"\n") + 1
        self.text += data
        for line in bytes(self.text[start:]).split(b"\n")[:-1]:
            for word in ("transfer start", "transfer end"):
                if line.startswith(word.encode()):
                    self.stamps.setdefault(word, now)


def transfer(initrd: Path, size: int) -> Transfer:
    consoles = {LISTENER: StampedConsole(), SENDER: StampedConsole()}
    started = time.monotonic()
    result = run_system(
        TWO_VMS,
        find_debian_arm64().kernel,
        consoles=consoles.get,
        one_to_one=False,
        time_limit=1800,
        linux=LinuxBootFiles(
            initrd=initrd,
            dts=CLIENT_VM / "linux.dts",
            overlays=(CLIENT_VM / "gic_v2_overlay.dts", PL011_OVERLAY),
            bootargs="console=ttyAMA0",
        ),
    )
    elapsed = time.monotonic() - started
    texts = {name: console.text.decode(errors="replace") for name, console in consoles.items()}
    for vm in result.vms:
        if vm.stop_reason is not StopReason.SYSTEM_OFF:
            sys.exit(f"{vm.layout.name}: {vm.stop_reason.value}\n{texts[vm.layout.name][-2000:]}")
    sent = re.search(r"sender file (\d+) bytes md5 ([0-9a-f]{32})", texts[SENDER])
    got = re.search(r"listener received (\d+) bytes md5 ([0-9a-f]{32})", texts[LISTENER])
    if sent is None or got is None or sent.groups() != got.groups() or int(sent[1]) != size:
        sys.exit(f"the transfer failed: sent {sent}, received {got}")
    uptime = {
        word: float(match[1])
        for word in ("start", "end")
        if (match := re.search(rf"transfer {word} ([0-9.]+)", texts[SENDER])) is not None
    }
    stamps = consoles[SENDER].stamps
    network = {vm.layout.name: vm.network for vm in result.vms}
    listener = network[LISTENER]
    assert listener is not None
    port = listener["switch_port"]
    assert isinstance(port, dict)
    return Transfer(
        host_seconds=stamps["transfer end"] - stamps["transfer start"],
        guest_seconds=uptime["end"] - uptime["start"],
        switch_bytes=int(port["tx_bytes"]),
        run_seconds=elapsed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=1, help="MiB to send (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs (the best is reported)")
    args = parser.parse_args()
    size = args.size << 20
    with tempfile.TemporaryDirectory(prefix="sel4vmm-bench-net-") as scratch:
        initrd = net_initramfs(Path(scratch), LISTENER, SENDER, size)
        runs = [transfer(initrd, size) for _ in range(args.repeat)]
    best = min(runs, key=lambda run: run.host_seconds)
    payload = bytes(size)
    memcpy = best_of(5, lambda: bytearray(payload))
    guest_rate = size / best.host_seconds
    host_rate = size / memcpy
    print(f"two Linux VMs, {size} bytes over virtio-net + the switch (best of {args.repeat})")
    print(
        f"  guest to guest: {best.host_seconds:.2f} host s, {guest_rate / 1e6:.3f} MB/s "
        f"({best.guest_seconds:.2f} guest s, {size / best.guest_seconds / 1e6:.2f} MB/s of "
        f"guest time); the switch carried {best.switch_bytes} bytes of frames to the listener"
    )
    print(f"  host memcpy of the same bytes: {memcpy * 1e6:.0f} us, {host_rate / 1e9:.2f} GB/s")
    print(f"  ratio guest/host: {guest_rate / host_rate:.6f}x")
    print(f"  whole run (two boots, ping, transfer, power-off): {best.run_seconds:.1f} host s")


if __name__ == "__main__":
    main()
