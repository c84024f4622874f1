"""Debian's arm64 Linux driving sel4vmm's virtio-net card on unicorn, with a loopback peer.

One boot, through the command line (``run --net loopback --json``): libvmm's virtio_mmio
client device tree (``../shared/realworld/libvmm/virtio_mmio/client_vm/linux.dts``, whose
``virtio-net@160000`` is SPI 44) with its ``gic_v2_overlay.dts`` and the PL011 overlay the
virtio tests use, an initramfs from ``sel4vmm initramfs --modules virtio_mmio,virtio_net``
(``virtio_net`` pulls ``net_failover`` and ``failover`` in from ``modules.dep``).  The
guest brings ``eth0`` up, pings an address on its subnet — nobody answers, so Linux sends
ARP requests, which the loopback peer hands back — takes the link down and prints its
``/sys/class/net/eth0/statistics``.  The test compares the guest's counters with the
device's own in the run report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64
from sel4vmm.devices.net_peers import mac_for_vm
from sel4vmm.devices.net_switch import format_mac
from tests.debian_guests import (
    CLIENT_VM,
    PL011_OVERLAY,
    debian_initramfs,
    needs_client_vm,
    needs_debian,
)

needs_libvmm = needs_client_vm("linux.dts")

DONE = "sel4vmm net test done"
LOOPBACK_INIT = f"""#!/bin/sh
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
n=0
while [ ! -d /sys/class/net/eth0 ] && [ $n -lt 50 ]; do $b sleep 0.1; n=$((n + 1)); done
$b ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up
echo "guest eth0 address $($b cat /sys/class/net/eth0/address)"
$b ping -c 3 -W 1 10.0.0.2
$b sleep 1
$b ifconfig eth0 down
s=/sys/class/net/eth0/statistics
echo "guest eth0 tx_packets $($b cat $s/tx_packets) rx_packets $($b cat $s/rx_packets)"
echo "{DONE}"
$b poweroff -f
"""


def _initramfs(tmp_path: Path, script: str, name: str = "net") -> Path:
    return debian_initramfs(tmp_path / f"{name}.cpio.gz", script, ("virtio_mmio", "virtio_net"))


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_linux_sends_frames_through_virtio_net_and_the_loopback_brings_them_back(
    tmp_path: Path,
) -> None:
    log = tmp_path / "console.log"
    command = [
        sys.executable, "-m", "sel4vmm", "run",
        "--kernel", str(find_debian_arm64().kernel),
        "--initrd", str(_initramfs(tmp_path, LOOPBACK_INIT)),
        "--dts", str(CLIENT_VM / "linux.dts"),
        "--overlay", str(CLIENT_VM / "gic_v2_overlay.dts"), "--overlay", str(PL011_OVERLAY),
        "--bootargs", "console=ttyAMA0", "--net", "loopback",
        "--log", str(log), "--json", "--timeout", "500",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, timeout=600, env=dict(os.environ), stdin=subprocess.DEVNULL
    )
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    assert DONE in text, text[-3000:]
    document = json.loads(done.stdout)
    network = document["network"]
    # No local-mac-address in libvmm's node: the MAC is derived from the VM's name, and the
    # guest's driver read it from the device's configuration space.
    mac = format_mac(mac_for_vm(document["vm"]))
    assert network["node"] == "/virtio-net@160000" and network["backend"] == "loopback"
    assert network["mac"] == mac
    assert f"guest eth0 address {mac}" in text
    # The summary line of busybox's ping (networking/ping.c, Debian 12's 1.35): nobody has
    # 10.0.0.2.
    assert "3 packets transmitted, 0 packets received, 100% packet loss" in text
    counters = re.search(r"guest eth0 tx_packets (\d+) rx_packets (\d+)", text)
    assert counters is not None, text[-3000:]
    guest_tx, guest_rx = int(counters[1]), int(counters[2])
    # ARP asks for 10.0.0.2 at least once per ping (and IPv6 may add its own frames).
    assert guest_tx >= 3 and guest_rx >= 3, counters[0]
    # Everything the guest counted as sent, the device took off its transmit ring; what the
    # loopback handed back went into the guest's receive ring (none dropped).
    assert network["frames_sent"] >= guest_tx
    assert network["frames_dropped"] == 0
    assert network["frames_received"] == network["frames_sent"]
    assert guest_rx <= network["frames_received"]
    assert guest_rx >= guest_tx
