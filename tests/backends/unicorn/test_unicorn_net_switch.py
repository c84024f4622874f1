"""Two Debian Linux VMs on one board pinging and sending a file over the VMM's virtual switch.

Issue 14 item 5.  ``data/two_linux_vms.system`` declares two VMs with the same guest RAM
base (run from pools); both boot Debian's arm64 kernel with libvmm's virtio_mmio client
device tree (its ``virtio-net@160000``, SPI 44), so each VM's card is a port of the one
switch the VMM runs.  The run is the command line's (``sel4vmm run SYSTEM --pools ...
--json --out DIR``: each VM's console in its own log, each card in the report).  The
guests (``net_guests.py``) configure ``10.0.0.1`` and ``10.0.0.2``, the sender pings the
listener and sends it 1 MiB with busybox ``nc``; both print the file's md5sum.
``3 packets transmitted, 3 packets received, 0% packet loss`` is the summary line of
busybox's ``ping`` (``networking/ping.c``; Debian 12's busybox-static 1.35).
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
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.devices.net_peers import mac_for_vm
from sel4vmm.devices.net_switch import format_mac
from tests.backends.unicorn.net_guests import (
    DONE,
    LISTENER_IP,
    SENDER_IP,
    TWO_VMS,
    net_initramfs,
)
from tests.debian_guests import CLIENT_VM, PL011_OVERLAY, needs_client_vm, needs_debian

needs_libvmm = needs_client_vm("linux.dts")

SIZE = 1 << 20
MD5 = r"(\d+) bytes md5 ([0-9a-f]{32})"


@pytest.mark.slow
@needs_debian
@needs_libvmm
def test_two_linux_vms_ping_and_send_a_file_over_the_switch(tmp_path: Path) -> None:
    initrd = net_initramfs(tmp_path, "listener", "sender", SIZE)
    command = [
        sys.executable, "-m", "sel4vmm", "run", str(TWO_VMS), "--pools",
        "--kernel", str(find_debian_arm64().kernel), "--initrd", str(initrd),
        "--dts", str(CLIENT_VM / "linux.dts"),
        "--overlay", str(CLIENT_VM / "gic_v2_overlay.dts"), "--overlay", str(PL011_OVERLAY),
        "--bootargs", "console=ttyAMA0", "--out", str(tmp_path / "consoles"),
        "--log", str(tmp_path / "both.log"), "--json", "--timeout", "800",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, timeout=900, env=dict(os.environ), stdin=subprocess.DEVNULL
    )
    stderr = done.stderr.decode(errors="replace")
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    vms = {vm["name"]: vm for vm in document.get("vms", [])}
    assert set(vms) == {"listener", "sender"}, stderr[-3000:]
    text = {name: Path(vm["console_log"]).read_text(errors="replace") for name, vm in vms.items()}
    assert done.returncode == 0, {name: t[-3000:] for name, t in text.items()}
    for name, vm in vms.items():
        assert vm["exit_reason"] == StopReason.SYSTEM_OFF.name.lower(), text[name][-3000:]
        assert DONE in text[name], text[name][-3000:]
    listener, sender = text["listener"], text["sender"]
    # Each card has the MAC derived from its VM's name (no local-mac-address in the DTS).
    mac = {name: format_mac(mac_for_vm(name)) for name in vms}
    assert f"net guest listener eth0 {LISTENER_IP} {mac['listener']}" in listener
    assert f"net guest sender eth0 {SENDER_IP} {mac['sender']}" in sender
    assert "3 packets transmitted, 3 packets received, 0% packet loss" in sender, sender[-3000:]
    sent = re.search(rf"sender file {MD5}", sender)
    got = re.search(rf"listener received {MD5}", listener)
    assert sent is not None and got is not None, (sender[-2000:], listener[-2000:])
    assert int(sent[1]) == SIZE and sent.groups() == got.groups()

    # The host side: both cards on one switch; every frame one sent reached the other (or was
    # counted as dropped there, its receive queue full: a NIC's FIFO overflowing).
    network = {name: vm["network"] for name, vm in vms.items()}
    ports = {}
    for name, card in network.items():
        assert card is not None and card["backend"] == "switch" and card["mac"] == mac[name]
        port = card["switch_port"]
        assert isinstance(port, dict) and port["name"] == name
        # The guests send well-formed frames from their own MACs.
        assert port["dropped_runt"] == port["dropped_oversize"] == port["dropped_spoofed"] == 0
        ports[name] = port
    for one, other in (("listener", "sender"), ("sender", "listener")):
        delivered = ports[one]["tx_frames"] + ports[one]["dropped_queue_full"]
        assert delivered == ports[other]["rx_frames"], ports
    assert ports["listener"]["tx_bytes"] > SIZE  # the file, plus TCP/IP and Ethernet headers
    # The guests' own counters agree with the devices' (read after the link went down).
    for name in vms:
        counters = re.search(rf"{name} tx_packets (\d+) rx_packets (\d+)", text[name])
        assert counters is not None, text[name][-2000:]
        card = network[name]
        assert card is not None
        assert 0 < int(counters[1]) <= int(str(card["frames_sent"]))
        assert 0 < int(counters[2]) <= int(str(card["frames_received"]))
