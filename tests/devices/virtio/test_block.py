"""virtio-blk over a host file: read, write, flush, GET_ID, read-only, capacity."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from sel4vmm.devices.virtio import block
from sel4vmm.devices.virtio.block import VirtioBlock
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.errors import Sel4VmmError
from tests.devices.virtio.driver import GuestDriver, attach, make_vm

SECTORS = 64


def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(bytes([i]) * 512 for i in range(SECTORS)))
    return path


def started(
    path: Path, read_only: bool = False
) -> tuple[GuestDriver, VirtioBlock, VirtioMmioTransport]:
    vm, ram = make_vm()
    device = VirtioBlock(path, read_only=read_only)
    transport, _gic = attach(vm, device)
    driver = GuestDriver(vm, ram)
    driver.start(queues=1)
    return driver, device, transport


def request(
    driver: GuestDriver, kind: int, sector: int, data: bytes = b"", read: int = 0
) -> tuple[int, bytes, int]:
    """One request; returns (status, the data the device wrote, used length)."""
    header = struct.pack("<IIQ", kind, 0, sector)
    readable = [header] + ([data] if data else [])
    writable = ([read] if read else []) + [1]
    head = driver.add(0, readable, writable)
    ((used_head, length),) = driver.used(0)
    assert used_head == head
    status = driver.vm.ram.read(driver.last_writable[-1], 1)[0]
    got = driver.vm.ram.read(driver.last_writable[0], read) if read else b""
    return status, got, length


def test_capacity_and_features(tmp_path: Path) -> None:
    driver, _device, _transport = started(disk(tmp_path))
    assert driver.config(0, 8) == SECTORS  # capacity in 512-byte sectors (5.2.4)
    assert driver.config(20, 4) == 512  # blk_size
    features = driver.device_features()
    assert features & block.VIRTIO_BLK_F_FLUSH
    assert not features & block.VIRTIO_BLK_F_RO


def test_read_write_flush_round_trip(tmp_path: Path) -> None:
    path = disk(tmp_path)
    driver, _device, _transport = started(path)
    status, data, length = request(driver, block.VIRTIO_BLK_T_IN, 3, read=1024)
    assert (status, length) == (block.VIRTIO_BLK_S_OK, 1025)
    assert data == bytes([3]) * 512 + bytes([4]) * 512
    new = os.urandom(1536)
    status, _data, length = request(driver, block.VIRTIO_BLK_T_OUT, 10, new)
    assert (status, length) == (block.VIRTIO_BLK_S_OK, 1)
    assert request(driver, block.VIRTIO_BLK_T_FLUSH, 0)[0] == block.VIRTIO_BLK_S_OK
    on_disk = path.read_bytes()
    assert on_disk[10 * 512 : 13 * 512] == new
    assert on_disk[9 * 512 : 10 * 512] == bytes([9]) * 512
    assert on_disk[13 * 512 : 14 * 512] == bytes([13]) * 512
    assert request(driver, block.VIRTIO_BLK_T_IN, 10, read=1536)[1] == new


def test_write_spread_over_odd_sized_buffers(tmp_path: Path) -> None:
    path = disk(tmp_path)
    driver, _device, _transport = started(path)
    data = os.urandom(1024)
    header = struct.pack("<IIQ", block.VIRTIO_BLK_T_OUT, 0, 1)
    driver.add(0, [header, data[:100], data[100:700], data[700:]], [1], indirect=True)
    assert driver.vm.ram.read(driver.last_writable[-1], 1)[0] == block.VIRTIO_BLK_S_OK
    assert path.read_bytes()[512:1536] == data


def test_flush_really_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver, device, _transport = started(disk(tmp_path))
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    assert request(driver, block.VIRTIO_BLK_T_FLUSH, 0)[0] == block.VIRTIO_BLK_S_OK
    assert synced == [device._fd]


def test_writes_are_one_pwrite_per_sector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver, _device, _transport = started(disk(tmp_path))
    calls: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def spy(fd: int, data: bytes, offset: int) -> int:
        calls.append((len(data), offset))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    request(driver, block.VIRTIO_BLK_T_OUT, 5, os.urandom(2048))
    assert calls == [(512, 5 * 512 + 512 * i) for i in range(4)]


def test_get_id(tmp_path: Path) -> None:
    driver, _device, _transport = started(disk(tmp_path))
    status, data, _length = request(driver, block.VIRTIO_BLK_T_GET_ID, 0, read=20)
    assert status == block.VIRTIO_BLK_S_OK
    assert data == b"disk.img".ljust(20, b"\0")


def test_read_only_refuses_writes(tmp_path: Path) -> None:
    path = disk(tmp_path)
    before = path.read_bytes()
    driver, _device, _transport = started(path, read_only=True)
    assert driver.device_features() & block.VIRTIO_BLK_F_RO
    status, _data, _length = request(driver, block.VIRTIO_BLK_T_OUT, 0, bytes(512))
    assert status == block.VIRTIO_BLK_S_IOERR
    assert path.read_bytes() == before
    assert request(driver, block.VIRTIO_BLK_T_IN, 0, read=512)[0] == block.VIRTIO_BLK_S_OK


def test_out_of_range_and_partial_sector_requests_fail(tmp_path: Path) -> None:
    driver, _device, transport = started(disk(tmp_path))
    assert request(driver, block.VIRTIO_BLK_T_IN, SECTORS, read=512)[0] == block.VIRTIO_BLK_S_IOERR
    assert request(driver, block.VIRTIO_BLK_T_IN, 0, read=100)[0] == block.VIRTIO_BLK_S_IOERR
    assert request(driver, block.VIRTIO_BLK_T_OUT, SECTORS - 1, bytes(1024))[0] == (
        block.VIRTIO_BLK_S_IOERR
    )
    assert request(driver, 99, 0)[0] == block.VIRTIO_BLK_S_UNSUPP
    assert transport.errors == []


def test_request_without_header_needs_reset(tmp_path: Path) -> None:
    driver, _device, transport = started(disk(tmp_path))
    driver.add(0, [b"short"], [1])
    assert "no 16-byte header" in transport.errors[-1]


def test_image_that_is_not_whole_sectors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.img"
    path.write_bytes(bytes(1000))
    with pytest.raises(Sel4VmmError, match="not a whole number of 512-byte sectors"):
        VirtioBlock(path)


def test_missing_image_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="cannot open the disk image"):
        VirtioBlock(tmp_path / "absent.img")


def test_write_stopped_midway_leaves_whole_sectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host failing (or the VMM dying) after some sectors: each sector old or new."""
    path = disk(tmp_path)
    driver, _device, _transport = started(path)
    real_pwrite = os.pwrite
    calls = 0

    def failing(fd: int, data: bytes, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", failing)
    new = bytes([0xEE]) * 2048
    assert request(driver, block.VIRTIO_BLK_T_OUT, 20, new)[0] == block.VIRTIO_BLK_S_IOERR
    sectors = [path.read_bytes()[512 * s : 512 * (s + 1)] for s in range(20, 24)]
    assert sectors == [new[:512], new[:512], bytes([22]) * 512, bytes([23]) * 512]
