"""virtio-console (virtio 1.2, section 5.3): device ID 3, one port, no multiport.

Queue 0 is port 0's receiveq (host to guest), queue 1 its transmitq (guest to host) —
Linux's ``hvc0``.  Output goes to a byte sink and input comes from :meth:`feed_input`,
the same shape as the PL011 model, so a run can switch between them.  Input that arrives
while the guest has no receive buffer waits in a bounded buffer (:data:`MAX_PENDING_INPUT`);
beyond that, bytes are dropped and counted, as a UART overrun drops them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sel4vmm.devices.virtio.device import DeviceContext, VirtioDevice
from sel4vmm.devices.virtio.virtqueue import SplitVirtqueue

#: virtio 1.2, 5.3.1: "3 console".
CONSOLE_DEVICE_ID = 3
RECEIVEQ = 0
TRANSMITQ = 1
#: Feature bits (5.3.3).
VIRTIO_CONSOLE_F_SIZE = 1 << 0
VIRTIO_CONSOLE_F_MULTIPORT = 1 << 1
VIRTIO_CONSOLE_F_EMERG_WRITE = 1 << 2
#: Offset of ``emerg_wr`` in ``struct virtio_console_config`` (cols, rows, max_nr_ports).
EMERG_WR_OFFSET = 8
MAX_PENDING_INPUT = 64 << 10


class VirtioConsole(VirtioDevice):
    """A single-port console: output to a sink, input from the host."""

    device_id = CONSOLE_DEVICE_ID
    features = VIRTIO_CONSOLE_F_SIZE | VIRTIO_CONSOLE_F_EMERG_WRITE
    num_queues = 2

    def __init__(self, output: Callable[[bytes], None], *, cols: int = 80, rows: int = 25) -> None:
        self._output = output
        self.cols = cols
        self.rows = rows
        self._pending = bytearray()
        #: Input bytes dropped because the guest did not take them in time.
        self.dropped_input = 0
        self._context: DeviceContext | None = None

    def config(self) -> bytes:
        return struct.pack("<HHII", self.cols, self.rows, 1, 0)

    def write_config(self, offset: int, data: bytes, context: DeviceContext) -> None:
        # emerg_wr: "a write to this field ... outputs a single character" (5.3.4).
        if offset == EMERG_WR_OFFSET and context.driver_features & VIRTIO_CONSOLE_F_EMERG_WRITE:
            self._output(data[:1])

    def activate(self, context: DeviceContext) -> None:
        self._context = context
        self.poll(context)

    def reset(self) -> None:
        self._context = None

    # -- host side -----------------------------------------------------------------------
    def feed_input(self, data: bytes) -> None:
        """Bytes typed at the console; delivered as soon as the guest has buffers."""
        room = MAX_PENDING_INPUT - len(self._pending)
        self._pending += data[:room]
        self.dropped_input += max(len(data) - room, 0)
        if self._context is not None:
            self._context.poll()

    def resize(self, cols: int, rows: int) -> None:
        """The host terminal changed size: new config and a configuration-change interrupt."""
        self.cols, self.rows = cols & 0xFFFF, rows & 0xFFFF
        if self._context is not None:
            self._context.config_changed()

    @property
    def has_input(self) -> bool:
        return bool(self._pending)

    # -- guest side ----------------------------------------------------------------------
    def notify(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        if queue.index == TRANSMITQ:
            while (chain := queue.pop()) is not None:
                for data in chain.chunks(context.ram):
                    self._output(data)
                queue.push(chain.head, 0)
            context.used_buffers(queue)
        else:
            self.poll(context)

    def poll(self, context: DeviceContext) -> None:
        queue = context.queue(RECEIVEQ)
        delivered = False
        while self._pending and (chain := queue.pop()) is not None:
            written = chain.write(context.ram, self._pending)
            del self._pending[:written]
            queue.push(chain.head, written)
            delivered = True
        if delivered:
            context.used_buffers(queue)
