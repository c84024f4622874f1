"""How long loading a 40 MB kernel and a 40 MB initrd into guest RAM takes.

Baseline: a plain copy of the same bytes from the same file mappings into one pre-faulted
anonymous host mapping (what a ``memcpy`` into guest RAM would cost).  Measured through the API: the
files are opened (mmap), checked and placed (``prepare_boot``), then ``load_boot`` marks the
footprints allocated and writes every image through ``GuestRam.write`` in chunks.  The
ratio shows what the guest-RAM layers (translation to frames, undo log, chunking) add to the
copy itself.  Prints figures only; nothing here passes or fails.

Also measured: gzip inflation through :func:`gunzip` (streamed, bounded by the guest's RAM)
against one ``zlib.decompress`` call on the same bytes; 200,000 empty gzip members (linear
now); and the pure-Python device tree (full check, read, edit, write) on a real board DTB and
on a 2 MiB one, against pylibfdt when it happens to be installed.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from sel4vmm.images.blob import ImageBlob
from sel4vmm.images.compression import gunzip, gzip_bytes
from sel4vmm.images.detect import initrd_from_blob, read_kernel
from sel4vmm.images.dtb import DeviceTree, compile_dts
from sel4vmm.images.fdt_check import check_fdt
from sel4vmm.images.fdt_tree import Fdt, FdtNode
from sel4vmm.images.loader import load_boot
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.prepare import BootInputs, prepare_boot
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine

MIB = 1 << 20
IMAGE_SIZE = 40 * MIB
RAM_BASE = 0x40000000
RAM_SIZE = 256 * MIB
ROUNDS = 5
REALWORLD = Path(__file__).resolve().parents[1] / ".." / "shared" / "realworld"


def arm64_image(size: int) -> bytes:
    """A kernel-sized arm64 Image: a valid header over incompressible bytes."""
    body = bytearray(os.urandom(size))
    body[0:0x40] = bytes(0x40)
    body[0x10:0x18] = (size + 4 * MIB).to_bytes(8, "little")  # image_size, incl. BSS
    body[0x18:0x20] = (0b1010).to_bytes(8, "little")  # 4 KiB pages, anywhere
    body[0x38:0x3C] = b"ARM\x64"
    return bytes(body)


def best_of(rounds: int, setup: Callable[[], object], action: Callable[[object], None]) -> float:
    times = []
    for _ in range(rounds):
        state = setup()
        start = time.perf_counter()
        action(state)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sel4vmm-bench-") as tmp:
        kernel_path = Path(tmp) / "Image"
        initrd_path = Path(tmp) / "initrd.img"
        kernel_path.write_bytes(arm64_image(IMAGE_SIZE))
        initrd_path.write_bytes(os.urandom(IMAGE_SIZE))

        kernel = read_kernel(kernel_path, arch="aarch64")
        initrd = initrd_from_blob(ImageBlob.open(initrd_path, role="initrd"), verify=False)

        def fresh_vm() -> VirtualMachine:
            physmem = PhysicalMemory([MemoryRange(RAM_BASE, 512 * MIB, name="ram")])
            platform = Sel4Platform(physmem, AARCH64, board_name="bench")
            vm = VirtualMachine.create("bench", platform, pools=[PoolRequest(24, 20)])
            vm.ram.register_at(RAM_BASE, RAM_SIZE, page_bits=21)
            return vm

        def prepare() -> None:
            prepare_boot(
                BootInputs(
                    arch="aarch64",
                    ram=[RamWindow(RAM_BASE, RAM_SIZE)],
                    kernel=kernel,
                    initrd=initrd,
                    generate_dtb=True,
                    bootargs="console=ttyAMA0",
                )
            )

        boot = prepare_boot(
            BootInputs(
                arch="aarch64",
                ram=[RamWindow(RAM_BASE, RAM_SIZE)],
                kernel=kernel,
                initrd=initrd,
                generate_dtb=True,
                bootargs="console=ttyAMA0",
            )
        )
        boot.plan.raise_if_errors()

        def plain_copy(target: object) -> None:
            assert isinstance(target, mmap.mmap)
            target[:IMAGE_SIZE] = kernel.blob.data
            target[IMAGE_SIZE : 2 * IMAGE_SIZE] = initrd.blob.data

        def through_api(vm: object) -> None:
            assert isinstance(vm, VirtualMachine)
            load_boot(vm.ram, boot)

        def buffer() -> mmap.mmap:
            # Anonymous memory like the guest RAM backing, faulted in before timing.
            target = mmap.mmap(-1, 2 * IMAGE_SIZE)
            target.write(bytes(2 * IMAGE_SIZE))
            return target

        def touched_vm() -> VirtualMachine:
            vm = fresh_vm()
            vm.ram.write(RAM_BASE, bytes(RAM_SIZE))  # fault in the host pages first
            return vm

        baseline = best_of(ROUNDS, buffer, plain_copy)
        loaded = best_of(ROUNDS, touched_vm, through_api)
        placed = best_of(ROUNDS, lambda: None, lambda _state: prepare())
        total = 2 * IMAGE_SIZE
        print(f"images: kernel {IMAGE_SIZE // MIB} MiB + initrd {IMAGE_SIZE // MIB} MiB")
        print(
            f"plain copy (baseline)   {baseline * 1e3:8.1f} ms  {total / baseline / 1e9:6.2f} GB/s"
        )
        print(
            f"load_boot through API   {loaded * 1e3:8.1f} ms  {total / loaded / 1e9:6.2f} GB/s"
            f"  ratio {loaded / baseline:5.2f}x"
        )
        print(f"prepare_boot (plan+DTB) {placed * 1e3:8.1f} ms")
    bench_gzip()
    bench_device_tree()


def bench_gzip() -> None:
    # Compressible but not trivial: text-like bytes, about 4:1.
    words = [os.urandom(6).hex().encode() for _ in range(4096)]
    payload = b" ".join(words[(i * 7919) % 4096] for i in range(IMAGE_SIZE // 13))[:IMAGE_SIZE]
    packed = gzip_bytes(payload, level=6)
    baseline = best_of(ROUNDS, lambda: None, lambda _s: zlib.decompress(packed, 31))
    ours = best_of(ROUNDS, lambda: None, lambda _s: gunzip(packed, limit=RAM_SIZE))
    print(
        f"gunzip {len(payload) // MIB} MiB (from {len(packed) // MIB} MiB): zlib.decompress "
        f"{baseline * 1e3:.1f} ms, streamed+bounded {ours * 1e3:.1f} ms, "
        f"ratio {ours / baseline:.2f}x"
    )
    for members in (20_000, 200_000):
        many = gzip_bytes(b"hello") + gzip_bytes(b"") * members
        took = best_of(1, lambda: None, lambda _s, m=many: gunzip(m))
        print(f"gunzip of 1 + {members} empty members: {took * 1e3:.0f} ms")


def _wide_tree(target: int) -> bytes:
    root = FdtNode("", {"#address-cells": b"\0\0\0\2", "#size-cells": b"\0\0\0\2"})
    index = 0
    while True:
        node = FdtNode(f"device@{index:x}", {"compatible": b"vendor,device\0"})
        node.properties["reg"] = index.to_bytes(16, "big")
        node.properties["interrupts"] = bytes(12)
        root.children.append(node)
        index += 1
        if index % 1024 == 0 and len(Fdt(root).to_bytes()) >= target:
            return Fdt(root).to_bytes()


def bench_device_tree() -> None:
    blobs = {"2 MiB synthetic": _wide_tree(2 * MIB - 64 * 1024)}
    source = REALWORLD / "libvmm" / "simple" / "board" / "zcu102" / "linux.dts"
    if shutil.which("dtc") and source.exists():
        blobs["zcu102 linux.dtb"] = compile_dts(source)

    def edit(blob: bytes) -> bytes:
        tree = DeviceTree(blob)
        tree.set_memory([(RAM_BASE, RAM_SIZE)])
        tree.set_chosen(
            bootargs="console=ttyAMA0", initrd=(RAM_BASE + 0x8000000, RAM_BASE + 0x9000000)
        )
        return tree.to_bytes()

    for name, blob in blobs.items():
        checked = best_of(ROUNDS, lambda: None, lambda _s, b=blob: check_fdt(b))
        edited = best_of(ROUNDS, lambda: None, lambda _s, b=blob: edit(b))
        line = (
            f"device tree {name} ({len(blob)} bytes): check {checked * 1e3:.1f} ms, "
            f"check+read+edit+write {edited * 1e3:.1f} ms"
        )
        libfdt = _libfdt_edit_time(blob)
        if libfdt is not None:
            line += f"; pylibfdt edit {libfdt * 1e3:.1f} ms (ratio {edited / libfdt:.1f}x)"
        print(line)


def _libfdt_edit_time(blob: bytes) -> float | None:
    """The same edit with pylibfdt, if it is installed (it is not a dependency)."""
    try:
        import libfdt
    except ImportError:
        return None

    def edit(_state: object) -> None:
        fdt = libfdt.Fdt(blob)
        fdt.resize(len(blob) + 65536)
        chosen = fdt.path_offset("/chosen", libfdt.QUIET_NOTFOUND)
        if chosen < 0:
            chosen = fdt.add_subnode(0, "chosen")
        fdt.setprop_str(chosen, "bootargs", "console=ttyAMA0")
        fdt.setprop(chosen, "linux,initrd-start", (RAM_BASE + 0x8000000).to_bytes(8, "big"))
        fdt.setprop(chosen, "linux,initrd-end", (RAM_BASE + 0x9000000).to_bytes(8, "big"))
        fdt.pack()
        bytes(fdt.as_bytearray())

    result: float = best_of(ROUNDS, lambda: None, edit)
    return result


if __name__ == "__main__":
    main()
