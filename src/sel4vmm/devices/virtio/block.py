"""virtio-blk (virtio 1.2, section 5.2): device ID 2, backed by a raw image file on the host.

A request is a chain: a 16-byte header ``{type: u32, reserved: u32, sector: u64}`` the
device reads, data buffers (read for OUT, written for IN and GET_ID), and a last writable
status byte.  Supported: IN, OUT, FLUSH (a real ``os.fsync``, offered as VIRTIO_BLK_F_FLUSH)
and GET_ID; a read-only disk offers VIRTIO_BLK_F_RO and fails writes with IOERR.

Durability and tearing: what a guest wrote is in the host file as soon as the request
completes (``os.pwrite``; on the device after FLUSH or power-off through the page cache).
Each OUT request is written one 512-byte sector per ``os.pwrite``, each at a sector-aligned
offset, so a sector never straddles a page of the host page cache: if the VMM is killed in
the middle of a request, every sector of the file holds either its old or its new contents,
never a mix.  (Requests are not atomic as a whole, as on real disks.)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from sel4vmm.devices.virtio.device import DeviceContext, VirtioDevice
from sel4vmm.devices.virtio.virtqueue import DescriptorChain, SplitVirtqueue, VirtqueueError
from sel4vmm.errors import Location, Sel4VmmError

#: virtio 1.2, 5.2.1: "2 block device".
BLOCK_DEVICE_ID = 2
SECTOR_SIZE = 512
#: Feature bits (5.2.3).
VIRTIO_BLK_F_SIZE_MAX = 1 << 1
VIRTIO_BLK_F_SEG_MAX = 1 << 2
VIRTIO_BLK_F_RO = 1 << 5
VIRTIO_BLK_F_BLK_SIZE = 1 << 6
VIRTIO_BLK_F_FLUSH = 1 << 9
#: Request types (5.2.6).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
#: Status values (5.2.6).
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2
#: "The device ID string is ... 20 bytes" (VIRTIO_BLK_ID_BYTES, 5.2.6).
VIRTIO_BLK_ID_BYTES = 20
#: The largest data segment, and segments per request, the device announces.
SIZE_MAX = 1 << 20
QUEUE_SIZE = 128
SEG_MAX = QUEUE_SIZE - 2

_HEADER = struct.Struct("<IIQ")


class VirtioBlock(VirtioDevice):
    """A raw disk image as a virtio block device."""

    device_id = BLOCK_DEVICE_ID
    num_queues = 1
    queue_num_max = QUEUE_SIZE

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        try:
            self._fd = os.open(self.path, os.O_RDONLY if read_only else os.O_RDWR)
        except OSError as error:
            raise Sel4VmmError(
                f"cannot open the disk image {self.path}: {error.strerror}",
                location=Location(str(self.path)),
                fix="pass an existing raw image file (create one with truncate -s SIZE FILE)",
            ) from None
        size = os.fstat(self._fd).st_size
        self.capacity = size // SECTOR_SIZE
        if size % SECTOR_SIZE:
            os.close(self._fd)
            raise Sel4VmmError(
                f"the disk image {self.path} is {size} bytes, not a whole number of "
                f"{SECTOR_SIZE}-byte sectors",
                location=Location(str(self.path)),
                fix=f"grow it to a multiple of {SECTOR_SIZE} (truncate -s SIZE FILE)",
            )
        self.features = (VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE) | (
            VIRTIO_BLK_F_RO if read_only else VIRTIO_BLK_F_FLUSH
        )
        self.serial = self.path.name.encode()[:VIRTIO_BLK_ID_BYTES]
        #: Requests completed by type, for reports.
        self.completed: dict[int, int] = {}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def config(self) -> bytes:
        # struct virtio_blk_config: capacity, size_max, seg_max, geometry (c, h, s), blk_size.
        return struct.pack("<QIIHBBI", self.capacity, SIZE_MAX, SEG_MAX, 0, 0, 0, SECTOR_SIZE)

    def notify(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        while (chain := queue.pop()) is not None:
            written = self._serve(chain, context)
            queue.push(chain.head, written)
        context.used_buffers(queue)

    def _serve(self, chain: DescriptorChain, context: DeviceContext) -> int:
        """Do one request; returns the bytes written into the chain (data plus status)."""
        ram = context.ram
        if chain.readable_length < _HEADER.size or not chain.writable:
            raise VirtqueueError(
                f"block request {chain.head} has no 16-byte header or no status byte"
            )
        kind, _reserved, sector = _HEADER.unpack(chain.read(ram, _HEADER.size))
        status_buffer = chain.writable[-1]
        data_in = chain.writable_length - 1  # device-writable bytes before the status byte
        status, written = self._execute(kind, sector, chain, data_in, context)
        ram.write(status_buffer.addr + status_buffer.length - 1, bytes([status]))
        self.completed[kind] = self.completed.get(kind, 0) + 1
        return written + 1

    def _execute(
        self, kind: int, sector: int, chain: DescriptorChain, data_in: int, context: DeviceContext
    ) -> tuple[int, int]:
        ram = context.ram
        if kind == VIRTIO_BLK_T_IN:
            if data_in % SECTOR_SIZE or not self._in_range(sector, data_in):
                return VIRTIO_BLK_S_IOERR, 0
            return self._read_into(chain, sector * SECTOR_SIZE, data_in, context)
        if kind == VIRTIO_BLK_T_OUT:
            length = chain.readable_length - _HEADER.size
            if self.read_only or length % SECTOR_SIZE or not self._in_range(sector, length):
                return VIRTIO_BLK_S_IOERR, 0
            return self._write_from(chain, sector * SECTOR_SIZE, context), 0
        if kind == VIRTIO_BLK_T_FLUSH:
            if self.read_only:
                return VIRTIO_BLK_S_UNSUPP, 0
            try:
                os.fsync(self._fd)
            except OSError:
                return VIRTIO_BLK_S_IOERR, 0
            return VIRTIO_BLK_S_OK, 0
        if kind == VIRTIO_BLK_T_GET_ID:
            identity = self.serial.ljust(VIRTIO_BLK_ID_BYTES, b"\0")[: max(data_in, 0)]
            return VIRTIO_BLK_S_OK, chain.write(ram, identity)
        return VIRTIO_BLK_S_UNSUPP, 0

    def _read_into(
        self, chain: DescriptorChain, offset: int, length: int, context: DeviceContext
    ) -> tuple[int, int]:
        """IN: the file's bytes into the data buffers, at most SIZE_MAX bytes at a time."""
        done = 0
        while done < length:
            take = min(SIZE_MAX, length - done)
            try:
                data = os.pread(self._fd, take, offset + done)
            except OSError:
                return VIRTIO_BLK_S_IOERR, done
            if len(data) != take:
                return VIRTIO_BLK_S_IOERR, done
            done += chain.write(context.ram, data, done)
        return VIRTIO_BLK_S_OK, done

    def _write_from(self, chain: DescriptorChain, offset: int, context: DeviceContext) -> int:
        """OUT: the data buffers into the file, one sector per ``pwrite`` (see the module)."""
        carry = bytearray()
        try:
            for piece in chain.chunks(context.ram, skip=_HEADER.size, size=SIZE_MAX):
                carry += piece
                whole = len(carry) - len(carry) % SECTOR_SIZE
                for start in range(0, whole, SECTOR_SIZE):
                    os.pwrite(self._fd, carry[start : start + SECTOR_SIZE], offset)
                    offset += SECTOR_SIZE
                del carry[:whole]
        except OSError:
            return VIRTIO_BLK_S_IOERR
        return VIRTIO_BLK_S_OK

    def _in_range(self, sector: int, length: int) -> bool:
        return sector + length // SECTOR_SIZE <= self.capacity
