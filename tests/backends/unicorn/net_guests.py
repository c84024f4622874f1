"""The Linux guests of the virtio-net tests and benchmark: one initramfs for every VM.

Every VM of a run boots the same kernel, device tree and initramfs (the multi-VM run
applies its Linux options to all of them), so the ``/init`` here finds out which VM it
is from its card's MAC address — sel4vmm derives it from the VM's name
(:func:`sel4vmm.devices.net_peers.mac_for_vm`) — and plays that VM's part:

* the **listener** (``10.0.0.1``) runs ``nc -l -p 5000 -e /tmp/recv``, whose ``/tmp/recv``
  is ``cat >/tmp/got``: busybox's ``nc`` (Debian's 1.35, the small ``nc.c``, not the
  ``nc_bloaty`` one) exits as soon as its peer closes, so the listener takes its input
  from the program it runs, never from a stdin that would end and make it shut down its
  sending half (which would end the sender early);
* the **sender** (``10.0.0.2``) waits until the listener answers a ping, runs
  ``ping -c 3`` (its summary is what the test quotes), generates a file of
  ``size`` bytes from ``/dev/urandom``, sends it with ``nc 10.0.0.1 5000 <file`` (retried
  while the listener is not listening yet) and prints the guest's uptime around it;
* both print ``md5sum`` of their file and ``wc -c`` of it, then power off.
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.devices.net_peers import mac_for_vm
from sel4vmm.devices.net_switch import format_mac
from tests.debian_guests import debian_initramfs

DATA = Path(__file__).parent / "data"
TWO_VMS = DATA / "two_linux_vms.system"
LISTENER_IP, SENDER_IP = "10.0.0.1", "10.0.0.2"
PORT = 5000
DONE = "sel4vmm net guest done"

_INIT = """#!/bin/sh
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
$b mount -t devtmpfs devtmpfs /dev
$b mkdir -p /tmp
$b mount -t tmpfs tmpfs /tmp
n=0
while [ ! -d /sys/class/net/eth0 ] && [ $n -lt 100 ]; do $b sleep 0.1; n=$((n + 1)); done
mac=$($b cat /sys/class/net/eth0/address)
case $mac in
{listener_mac}) role=listener; ip={listener_ip} ;;
{sender_mac}) role=sender; ip={sender_ip} ;;
*) role=none; ip=10.0.0.99 ;;
esac
$b ifconfig eth0 $ip netmask 255.255.255.0 up
echo "net guest $role eth0 $ip $mac"
if [ $role = listener ]; then
    printf '#!/bin/sh\\nexec /bin/busybox cat >/tmp/got\\n' >/tmp/recv
    $b chmod +x /tmp/recv
    $b nc -l -p {port} -e /tmp/recv
    echo "listener received $($b wc -c </tmp/got) bytes md5 $($b md5sum </tmp/got)"
elif [ $role = sender ]; then
    n=0
    until $b ping -c 1 -W 1 {listener_ip} >/dev/null 2>&1 || [ $n -ge 60 ]; do
        n=$((n + 1))
    done
    $b ping -c 3 {listener_ip}
    $b dd if=/dev/urandom of=/tmp/send bs=4096 count={blocks} 2>/dev/null
    echo "sender file $($b wc -c </tmp/send) bytes md5 $($b md5sum </tmp/send)"
    echo "transfer start $($b cut -d' ' -f1 /proc/uptime)"
    n=0
    until $b nc {listener_ip} {port} </tmp/send || [ $n -ge 40 ]; do
        $b sleep 0.5
        n=$((n + 1))
    done
    echo "transfer end $($b cut -d' ' -f1 /proc/uptime)"
fi
$b ifconfig eth0 down
s=/sys/class/net/eth0/statistics
echo "$role tx_packets $($b cat $s/tx_packets) rx_packets $($b cat $s/rx_packets)"
echo "{done}"
$b poweroff -f
"""


def init_script(listener: str, sender: str, size: int) -> str:
    """``/init`` for the VMs called ``listener`` and ``sender``, sending ``size`` bytes."""
    if size <= 0 or size % 4096:
        raise ValueError(f"the file size is a positive multiple of 4096, not {size}")
    return _INIT.format(
        listener_mac=format_mac(mac_for_vm(listener)),
        sender_mac=format_mac(mac_for_vm(sender)),
        listener_ip=LISTENER_IP,
        sender_ip=SENDER_IP,
        port=PORT,
        blocks=size // 4096,
        done=DONE,
    )


def net_initramfs(directory: Path, listener: str, sender: str, size: int) -> Path:
    """The initramfs (busybox, ``virtio_mmio`` and ``virtio_net`` with their dependencies)."""
    return debian_initramfs(
        directory / "net.cpio.gz",
        init_script(listener, sender, size),
        ("virtio_mmio", "virtio_net"),
    )
