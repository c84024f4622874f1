"""The boot stub: its bytes match its source, and running it sets up booting.rst's entry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn.arm64_const import (
    UC_ARM64_REG_PC,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
    UC_ARM64_REG_X3,
)

import sel4vmm.backends.qemu.stub as stub_module
from sel4vmm.backends.qemu.stub import STUB_CODE, STUB_SIZE, boot_stub, stub_literals

SOURCE = Path(stub_module.__file__).with_name("boot_stub.S")


def test_literals_follow_the_code_and_round_trip() -> None:
    stub = boot_stub(0x4FFF_F000, 0x4020_0000)
    assert len(stub) == STUB_SIZE
    assert stub.startswith(STUB_CODE)
    assert stub_literals(stub) == (0x4FFF_F000, 0x4020_0000)


@pytest.mark.parametrize("dtb,entry", [(-1, 0), (0, 1 << 64)])
def test_addresses_must_be_64_bit(dtb: int, entry: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        boot_stub(dtb, entry)


def test_committed_bytes_are_the_assembled_source(tmp_path: Path) -> None:
    assembler = shutil.which("aarch64-linux-gnu-as")
    objcopy = shutil.which("aarch64-linux-gnu-objcopy")
    if assembler is None or objcopy is None:
        pytest.skip(
            "aarch64-linux-gnu-as/objcopy not installed "
            "(apt-get install binutils-aarch64-linux-gnu)"
        )
    obj, binary = tmp_path / "stub.o", tmp_path / "stub.bin"
    subprocess.run([assembler, str(SOURCE), "-o", str(obj)], check=True)
    subprocess.run([objcopy, "-O", "binary", str(obj), str(binary)], check=True)
    assert binary.read_bytes() == boot_stub(0, 0)


def test_running_the_stub_enters_the_kernel_with_booting_rst_registers() -> None:
    base, entry, dtb = 0x4000_0000, 0x4020_0000, 0x4FFF_F000
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.mem_map(base, 0x1000)
    uc.mem_write(base, boot_stub(dtb, entry))
    for register in (UC_ARM64_REG_X0, UC_ARM64_REG_X1, UC_ARM64_REG_X2, UC_ARM64_REG_X3):
        uc.reg_write(register, 0xDEAD_BEEF)
    uc.emu_start(base, entry)
    assert uc.reg_read(UC_ARM64_REG_PC) == entry
    assert uc.reg_read(UC_ARM64_REG_X0) == dtb
    assert [uc.reg_read(r) for r in (UC_ARM64_REG_X1, UC_ARM64_REG_X2, UC_ARM64_REG_X3)] == [
        0,
        0,
        0,
    ]
