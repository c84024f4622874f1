"""virtio-net (virtio 1.2, section 5.1): device ID 1, one receive and one transmit queue.

Every buffer starts with ``struct virtio_net_hdr`` — 12 bytes with VIRTIO_F_VERSION_1
(``num_buffers`` is always present, 5.1.6).  No offloads are offered, so the device sends
and receives whole Ethernet frames with an all-zero header (``num_buffers`` 1 on receive).

Frames leave through a :class:`NetPeer` and arrive with :meth:`VirtioNet.receive`; the
:class:`LoopbackPeer` hands a device its own frames back, for tests, and a port of
:class:`sel4vmm.devices.net_switch.VirtualSwitch` connects devices of several VMs.  Frames
that arrive while the guest has no receive buffer wait in a bounded queue
(``max_pending`` frames) and are dropped past it, as a NIC's FIFO drops them;
:meth:`VirtioNet.receive` says which, so a switch port can count its drops.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Protocol

from sel4vmm.devices.virtio.device import DeviceContext, VirtioDevice
from sel4vmm.devices.virtio.virtqueue import SplitVirtqueue, VirtqueueError

#: virtio 1.2, 5.1.1: "1 network card".
NET_DEVICE_ID = 1
RECEIVEQ = 0
TRANSMITQ = 1
#: Feature bits (5.1.3).
VIRTIO_NET_F_MTU = 1 << 3
VIRTIO_NET_F_MAC = 1 << 5
VIRTIO_NET_F_STATUS = 1 << 16
VIRTIO_NET_S_LINK_UP = 1
#: ``struct virtio_net_hdr`` with VERSION_1: flags, gso_type, hdr_len, gso_size,
#: csum_start, csum_offset, num_buffers.
NET_HEADER = struct.Struct("<BBHHHHH")
#: The largest frame sent or received: 1500 bytes of MTU plus the Ethernet header.
MTU = 1500
MAX_FRAME = MTU + 14
MAX_PENDING_FRAMES = 256


class NetPeer(Protocol):
    """Where a device's transmitted frames go (a loopback, a switch port, a tap)."""

    def send(self, frame: bytes) -> None: ...


class VirtioNet(VirtioDevice):
    """A network card with a MAC address and a peer."""

    device_id = NET_DEVICE_ID
    features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU
    num_queues = 2

    def __init__(
        self, mac: bytes, peer: NetPeer | None = None, *, max_pending: int = MAX_PENDING_FRAMES
    ) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        if max_pending < 1:
            raise ValueError(f"a receive queue holds at least one frame, not {max_pending}")
        self.max_pending = max_pending
        self.mac = bytes(mac)
        self.peer = peer
        self._pending: deque[bytes] = deque()
        self.dropped_frames = 0
        self.sent_frames = 0
        self.received_frames = 0
        self._context: DeviceContext | None = None

    def config(self) -> bytes:
        # mac[6], status, max_virtqueue_pairs, mtu.
        return self.mac + struct.pack("<HHH", VIRTIO_NET_S_LINK_UP, 1, MTU)

    def activate(self, context: DeviceContext) -> None:
        self._context = context
        self.poll(context)

    def reset(self) -> None:
        self._context = None
        self._pending.clear()

    # -- host side -----------------------------------------------------------------------
    def receive(self, frame: bytes) -> bool:
        """A frame from the peer for the guest; False if it was dropped (too long, queue full)."""
        if len(frame) > MAX_FRAME or len(self._pending) >= self.max_pending:
            self.dropped_frames += 1
            return False
        self._pending.append(bytes(frame))
        if self._context is not None:
            self._context.poll()
        return True

    # -- guest side ----------------------------------------------------------------------
    def notify(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        if queue.index == TRANSMITQ:
            self._transmit(queue, context)
        else:
            self.poll(context)

    def _transmit(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        frames = []
        while (chain := queue.pop()) is not None:
            if chain.readable_length < NET_HEADER.size:
                raise VirtqueueError(
                    f"transmit chain {chain.head} is shorter than the {NET_HEADER.size}-byte "
                    "virtio_net_hdr"
                )
            if chain.readable_length > NET_HEADER.size + MAX_FRAME:
                self.dropped_frames += 1
            else:
                frames.append(chain.read(context.ram)[NET_HEADER.size :])
            queue.push(chain.head, 0)
        context.used_buffers(queue)
        # Delivered after the transmit ring is settled: a loopback peer re-enters receive().
        for frame in frames:
            self.sent_frames += 1
            if self.peer is not None:
                self.peer.send(frame)

    def poll(self, context: DeviceContext) -> None:
        queue = context.queue(RECEIVEQ)
        delivered = False
        while self._pending and (chain := queue.pop()) is not None:
            frame = self._pending.popleft()
            if chain.writable_length < NET_HEADER.size + len(frame):
                self.dropped_frames += 1  # the driver must supply big enough buffers
                queue.push(chain.head, 0)
            else:
                header = NET_HEADER.pack(0, 0, 0, 0, 0, 0, 1)
                written = chain.write(context.ram, header + frame)
                queue.push(chain.head, written)
                self.received_frames += 1
            delivered = True
        if delivered:
            context.used_buffers(queue)


class LoopbackPeer:
    """A peer that sends every frame straight back to the device it belongs to."""

    def __init__(self) -> None:
        self.device: VirtioNet | None = None
        self.frames = 0

    def attach(self, device: VirtioNet) -> None:
        self.device = device
        device.peer = self

    def send(self, frame: bytes) -> None:
        self.frames += 1
        if self.device is not None:
            self.device.receive(frame)
