"""The prepared boot, executed: an AArch64 CPU (unicorn) started from the boot state.

The "kernel" is an arm64 Image whose code (after the header's branch) reads the word at
x0 and byte-swaps it.  If the loader put the kernel at the entry point, the DTB where x0
points and the registers as booting.rst wants, the CPU ends with 0xd00dfeed in w1.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sel4vmm.config.spec import VmSpec
from sel4vmm.images.bootstate import Arm64BootState
from sel4vmm.images.cpio import InitramfsBuilder
from sel4vmm.images.loader import load_boot
from sel4vmm.images.prepare import prepare_from_spec
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform
from tests.images.synthetic import arm64_image

unicorn = pytest.importorskip("unicorn")
arm64_const = pytest.importorskip("unicorn.arm64_const")

MIB = 1 << 20
RAM_BASE = 0x40000000
RAM_SIZE = 32 * MIB
#: At 0x40 (where code0's "b #0x40" lands): ldr w1, [x0]; rev w1, w1; b .
PROGRAM = struct.pack("<III", 0xB9400001, 0x5AC00821, 0x14000000)


def test_cpu_finds_the_dtb_through_x0(tmp_path: Path) -> None:
    image = bytearray(arm64_image(0x10000, image_size=0x20000))
    image[0x40 : 0x40 + len(PROGRAM)] = PROGRAM
    (tmp_path / "Image").write_bytes(bytes(image))
    builder = InitramfsBuilder()
    builder.add_file("/init", b"#!/bin/sh\n", 0o755)
    (tmp_path / "rootfs.cpio.gz").write_bytes(builder.build_gzip())

    vm = VirtualMachine.create("vm0", make_platform(ram_size=64 * MIB), pools=[PoolRequest(24, 3)])
    vm.ram.register_at(RAM_BASE, RAM_SIZE)
    boot = prepare_from_spec(
        VmSpec(name="vm0", ram_base=RAM_BASE, ram_size=RAM_SIZE),
        kernel=tmp_path / "Image",
        initrd=tmp_path / "rootfs.cpio.gz",
    )
    load_boot(vm.ram, boot)
    state = boot.boot_state
    assert isinstance(state, Arm64BootState)

    cpu = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    cpu.mem_map(RAM_BASE, RAM_SIZE)
    cpu.mem_write(RAM_BASE, vm.ram.read(RAM_BASE, RAM_SIZE))
    cpu.reg_write(arm64_const.UC_ARM64_REG_X0, state.x0)
    cpu.reg_write(arm64_const.UC_ARM64_REG_X1, state.x1)
    loop = state.pc + 0x40 + 8
    cpu.emu_start(state.pc, loop, count=16)
    assert cpu.reg_read(arm64_const.UC_ARM64_REG_PC) == loop
    assert cpu.reg_read(arm64_const.UC_ARM64_REG_W1) == 0xD00DFEED
