"""Split virtqueues (virtio 1.2 section 2.7): descriptor table, available ring, used ring.

Layout in guest memory, all little-endian::

    descriptor table  num x {addr: u64, len: u32, flags: u16, next: u16}   16-byte aligned
    available ring    flags: u16, idx: u16, ring[num]: u16, used_event: u16  2-byte aligned
    used ring         flags: u16, idx: u16, ring[num]: {id: u32, len: u32}, avail_event: u16
                                                                              4-byte aligned

Why every access goes through :class:`~sel4vmm.memory.guest_ram.GuestRam` and is checked:
the rings and the buffers they point at are written by the guest, so each address and
length is validated against registered guest RAM before the VMM reads or writes it, and a
chain is walked with a hard bound (the queue size, or an indirect table's entries), so a
loop or an absurd length is a :class:`VirtqueueError` — the transport turns that into
DEVICE_NEEDS_RESET — and never a hang, a host allocation the guest chose, or an access
outside the guest.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.guest_ram import GuestRam

#: Descriptor flags (virtio 1.2, 2.7.5).
VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
#: Available ring flag: the driver does not want used-buffer notifications (2.7.7).
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
#: Used ring flag: the device does not want available-buffer notifications (2.7.10).
VIRTQ_USED_F_NO_NOTIFY = 1

#: "The maximum Queue Size value is 32768" (virtio 1.2, 2.7).
MAX_QUEUE_SIZE = 32768
DESCRIPTOR_SIZE = 16

_DESCRIPTOR = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEMENT = struct.Struct("<II")


class VirtqueueError(Sel4VmmError):
    """The driver broke the virtqueue rules; the device must be reset."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """One descriptor's guest-physical span (already checked to be guest RAM)."""

    addr: int
    length: int


@dataclass(slots=True)
class DescriptorChain:
    """A chain the driver made available: its head index and its buffers in order.

    ``readable`` buffers come before ``writable`` ones (2.7.4.2: the driver MUST place any
    device-writable descriptor elements after any device-readable ones).
    """

    head: int
    readable: list[Buffer] = field(default_factory=list)
    writable: list[Buffer] = field(default_factory=list)

    @property
    def readable_length(self) -> int:
        return sum(b.length for b in self.readable)

    @property
    def writable_length(self) -> int:
        return sum(b.length for b in self.writable)

    def read(self, ram: GuestRam, limit: int | None = None) -> bytes:
        """The readable buffers' bytes, concatenated (at most ``limit`` bytes)."""
        out = bytearray()
        for buffer in self.readable:
            take = buffer.length if limit is None else min(buffer.length, limit - len(out))
            if take <= 0:
                break
            out += ram.read(buffer.addr, take)
        return bytes(out)

    def chunks(self, ram: GuestRam, skip: int = 0, size: int = 1 << 16) -> Iterator[bytes]:
        """The readable bytes after the first ``skip``, at most ``size`` bytes at a time.

        Why chunks: buffers may overlap, so a chain's total length is not bounded by guest
        RAM; reading piecewise keeps the VMM's memory bounded whatever the driver wrote.
        """
        for buffer in self.readable:
            if skip >= buffer.length:
                skip -= buffer.length
                continue
            for start in range(buffer.addr + skip, buffer.addr + buffer.length, size):
                yield ram.read(start, min(size, buffer.addr + buffer.length - start))
            skip = 0

    def write(self, ram: GuestRam, data: bytes | bytearray | memoryview, offset: int = 0) -> int:
        """Scatter ``data`` into the writable buffers from byte ``offset``; bytes written."""
        source = memoryview(data)
        written = 0
        skip = offset
        for buffer in self.writable:
            if written >= len(source):
                break
            if skip >= buffer.length:
                skip -= buffer.length
                continue
            take = min(buffer.length - skip, len(source) - written)
            ram.write(buffer.addr + skip, source[written : written + take])
            written += take
            skip = 0
        return written


class SplitVirtqueue:
    """One split virtqueue as the device sees it: pop available chains, push used ones."""

    def __init__(self, ram: GuestRam, index: int, num_max: int) -> None:
        self.ram = ram
        self.index = index
        self.num_max = num_max
        self.indirect = False
        self.event_idx = False
        self.reset()

    def reset(self) -> None:
        """Back to the state after a device reset (2.4): not ready, no addresses, size max."""
        self.num = self.num_max
        self.ready = False
        self.desc_addr = 0
        self.driver_addr = 0
        self.device_addr = 0
        self.last_avail_idx = 0
        self.used_idx = 0
        #: used_idx when the driver was last notified (for event index).
        self.signalled_used = 0

    # -- setup ---------------------------------------------------------------------------
    def check_layout(self) -> None:
        """Validate size, alignment and placement when the driver sets QueueReady."""
        num = self.num
        if num == 0 or num > self.num_max or num & (num - 1):
            raise VirtqueueError(
                f"queue {self.index}: size {num} is not a power of 2 in [1, {self.num_max}]"
            )
        for what, addr, size, align in (
            ("descriptor table", self.desc_addr, DESCRIPTOR_SIZE * num, 16),
            ("available ring", self.driver_addr, 6 + 2 * num, 2),
            ("used ring", self.device_addr, 6 + 8 * num, 4),
        ):
            if addr % align:
                raise VirtqueueError(
                    f"queue {self.index}: {what} at {addr:#x} is not {align}-byte aligned"
                )
            self._check_ram(addr, size, what)

    def _check_ram(self, addr: int, size: int, what: str) -> None:
        if size and not self.ram.is_ram(addr, size):
            raise VirtqueueError(
                f"queue {self.index}: {what} [{addr:#x}, {addr + size:#x}) is not guest RAM"
            )

    # -- ring access ---------------------------------------------------------------------
    def _u16(self, addr: int) -> int:
        value: int = _U16.unpack(self.ram.read(addr, 2))[0]
        return value

    def avail_idx(self) -> int:
        return self._u16(self.driver_addr + 2)

    def avail_flags(self) -> int:
        return self._u16(self.driver_addr)

    def used_event(self) -> int:
        return self._u16(self.driver_addr + 4 + 2 * self.num)

    def set_avail_event(self, value: int) -> None:
        self.ram.write(self.device_addr + 4 + 8 * self.num, _U16.pack(value & 0xFFFF))

    def has_available(self) -> bool:
        return self.ready and self.avail_idx() != self.last_avail_idx

    def pending(self) -> int:
        """Chains made available and not popped yet (more than ``num`` is a driver bug)."""
        pending = (self.avail_idx() - self.last_avail_idx) & 0xFFFF
        if pending > self.num:
            raise VirtqueueError(
                f"queue {self.index}: available index moved {pending} entries ahead of the "
                f"device, more than the queue size {self.num}"
            )
        return pending

    def pop(self) -> DescriptorChain | None:
        """The next available chain, walked and checked, or None when there is none."""
        if not self.ready or self.pending() == 0:
            return None
        slot = self.last_avail_idx % self.num
        head = self._u16(self.driver_addr + 4 + 2 * slot)
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if self.event_idx:
            self.set_avail_event(self.last_avail_idx)
        return self._walk(head)

    def _descriptor(self, table: int, index: int) -> tuple[int, int, int, int]:
        fields: tuple[int, int, int, int] = _DESCRIPTOR.unpack(
            self.ram.read(table + DESCRIPTOR_SIZE * index, DESCRIPTOR_SIZE)
        )
        return fields

    def _walk(self, head: int) -> DescriptorChain:
        if head >= self.num:
            raise VirtqueueError(
                f"queue {self.index}: available ring names descriptor {head}, "
                f"outside the table of {self.num}"
            )
        chain = DescriptorChain(head)
        table, size, index = self.desc_addr, self.num, head
        in_indirect = False
        # Bound: each descriptor of the table at most once, plus one indirect table.
        budget = self.num
        while True:
            if budget == 0:
                raise VirtqueueError(
                    f"queue {self.index}: descriptor chain from {head} is longer than its "
                    "table (a loop)"
                )
            budget -= 1
            addr, length, flags, following = self._descriptor(table, index)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if in_indirect:
                    raise VirtqueueError(
                        f"queue {self.index}: indirect descriptor inside an indirect table "
                        f"(chain {head})"
                    )
                if not self.indirect:
                    raise VirtqueueError(
                        f"queue {self.index}: indirect descriptor without "
                        "VIRTIO_RING_F_INDIRECT_DESC negotiated"
                    )
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtqueueError(
                        f"queue {self.index}: descriptor {index} sets both INDIRECT and NEXT"
                    )
                if (
                    length == 0
                    or length % DESCRIPTOR_SIZE
                    or length // DESCRIPTOR_SIZE > (MAX_QUEUE_SIZE)
                ):
                    raise VirtqueueError(
                        f"queue {self.index}: indirect table length {length} is not a "
                        f"multiple of {DESCRIPTOR_SIZE} in [16, {16 * MAX_QUEUE_SIZE}]"
                    )
                self._check_ram(addr, length, "indirect table")
                table, size, index = addr, length // DESCRIPTOR_SIZE, 0
                in_indirect = True
                budget = size
                continue
            self._check_ram(addr, length, f"buffer of descriptor {index}")
            buffer = Buffer(addr, length)
            if flags & VIRTQ_DESC_F_WRITE:
                chain.writable.append(buffer)
            elif chain.writable:
                raise VirtqueueError(
                    f"queue {self.index}: device-readable descriptor {index} after a "
                    f"device-writable one (chain {head})"
                )
            else:
                chain.readable.append(buffer)
            if not flags & VIRTQ_DESC_F_NEXT:
                return chain
            if following >= size:
                raise VirtqueueError(
                    f"queue {self.index}: descriptor {index} chains to {following}, outside "
                    f"its table of {size}"
                )
            index = following

    def push(self, head: int, written: int) -> None:
        """Return chain ``head`` to the driver with ``written`` bytes written into it."""
        slot = self.used_idx % self.num
        self.ram.write(self.device_addr + 4 + 8 * slot, _USED_ELEMENT.pack(head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        # The element is in place before the index that publishes it (2.7.8.2).
        self.ram.write(self.device_addr + 2, _U16.pack(self.used_idx))

    def needs_interrupt(self) -> bool:
        """Whether the driver asked to be told about the used buffers pushed since last time.

        Without event index: unless VIRTQ_AVAIL_F_NO_INTERRUPT is set.  With it: when the
        driver's used_event lies in the range of entries pushed since the last interrupt
        (``vring_need_event`` in 2.7.10: ``(u16)(new - event - 1) < (u16)(new - old)``).
        """
        old, new = self.signalled_used, self.used_idx
        if old == new:
            return False
        self.signalled_used = new
        if self.event_idx:
            event = self.used_event()
            return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF
        return not self.avail_flags() & VIRTQ_AVAIL_F_NO_INTERRUPT
