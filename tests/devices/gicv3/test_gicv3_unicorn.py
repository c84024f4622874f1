"""ICC_* on a real AArch64 CPU: unicorn runs MRS/MSR instructions, the GICv3 model answers.

unicorn's CPU models have no GIC CPU interface, so every ICC_* access is an undefined
instruction; the VMM serves it from the UDEF (as the package docstring says a backend
does): decode the word, call the model, write Rt, step the PC.
"""

from __future__ import annotations

from typing import Any

from unicorn import UC_ARCH_ARM64, UC_HOOK_INTR, UC_MODE_ARM, Uc
from unicorn.arm64_const import (
    UC_ARM64_REG_PC,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X29,
    UC_ARM64_REG_X30,
)

from sel4vmm.devices.gicv3 import ICC_ENCODINGS, Gicv3, decode_sysreg_move, icc_register

CODE = 0x10000
EXCP_UDEF = 1  # qemu's exception number as unicorn reports it to UC_HOOK_INTR


def mrs(name: str, rt: int) -> int:
    op0, op1, crn, crm, op2 = ICC_ENCODINGS[name]
    return 0xD530_0000 | (op0 & 1) << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5 | rt


def msr(name: str, rt: int) -> int:
    return mrs(name, rt) & ~(1 << 21)


#: Assembled with GNU as 2.40 (Debian binutils' aarch64-linux-gnu-as), objdump's words.
GNU_AS_WORDS = {
    0xD53BD062: "mrs x2, tpidrro_el0",
    0xD5184601: "msr icc_pmr_el1, x1",
    0xD538CC00: "mrs x0, icc_iar1_el1",
    0xD503201F: "nop",
    0x8B020020: "add x0, x1, x2",
    0xD518CBA7: "msr icc_sgi1r_el1, x7",
    0xD538CC49: "mrs x9, icc_hppir1_el1",
    0xD518CC22: "msr icc_eoir1_el1, x2",
    0xD538CC83: "mrs x3, icc_ctlr_el1",
}


def test_decoder_reads_what_gnu_as_assembles() -> None:
    decoded = {}
    for word, text in GNU_AS_WORDS.items():
        move = decode_sysreg_move(word)
        if move is None:
            decoded[word] = text.split()[0]
            continue
        name = icc_register(move.encoding) or str(move.encoding)
        register = "xzr" if move.rt == 31 else f"x{move.rt}"
        if move.is_read:
            decoded[word] = f"mrs {register}, {name.lower()}"
        else:
            decoded[word] = f"msr {name.lower()}, {register}"
    assert decoded == {
        **GNU_AS_WORDS,
        0xD53BD062: "mrs x2, (3, 3, 13, 0, 3)",  # TPIDRRO_EL0 is not the GIC's
        0xD503201F: "nop",
        0x8B020020: "add",
    }
    # The test programs below are built with the same encoding.
    assert mrs("ICC_IAR1_EL1", 0) == 0xD538CC00
    assert msr("ICC_EOIR1_EL1", 2) == 0xD518CC22


def x_register(rt: int) -> int:
    """unicorn's id of X<rt>: X0-X28 are consecutive, X29 and X30 are not."""
    return {29: UC_ARM64_REG_X29, 30: UC_ARM64_REG_X30}.get(rt, UC_ARM64_REG_X0 + rt)


def run(gic: Gicv3, program: list[int], registers: dict[int, int]) -> Uc:
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    code = b"".join(word.to_bytes(4, "little") for word in program)
    uc.mem_map(CODE, 0x1000)
    uc.mem_write(CODE, code)
    for number, value in registers.items():
        uc.reg_write(x_register(number), value)
    served: list[str] = []

    def on_exception(uc: Uc, intno: int, _data: Any) -> None:
        pc = uc.reg_read(UC_ARM64_REG_PC)
        word = int.from_bytes(uc.mem_read(pc, 4), "little")
        move = decode_sysreg_move(word)
        name = None if move is None else icc_register(move.encoding)
        if intno != EXCP_UDEF or move is None or name is None:
            uc.emu_stop()
            return
        if move.is_read:
            value = gic.read_sysreg(0, name)
            if move.rt != 31:
                uc.reg_write(x_register(move.rt), value)
        else:
            value = 0 if move.rt == 31 else uc.reg_read(x_register(move.rt))
            gic.write_sysreg(0, name, value)
        served.append(name)
        uc.reg_write(UC_ARM64_REG_PC, pc + 4)

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(CODE, CODE + len(code), timeout=10_000_000, count=10 * len(program))
    assert uc.reg_read(UC_ARM64_REG_PC) == CODE + len(code), served
    return uc


def test_guest_acknowledges_and_ends_an_spi_with_mrs_and_msr() -> None:
    gic = Gicv3(1)
    gic.distributor.write32(0x000, 0b10, 0xFFFF_FFFF)  # EnableGrp1
    gic.distributor.write32(0x084, 1, 0xFFFF_FFFF)  # SPI 32: Group 1
    gic.distributor.write32(0x104, 1, 0xFFFF_FFFF)  # ... enabled
    gic.redistributors.write32(0, 0x14, 0, 0xFFFF_FFFF)  # wake PE 0
    gic.raise_line(32)
    program = [
        msr("ICC_PMR_EL1", 1),
        msr("ICC_IGRPEN1_EL1", 4),
        mrs("ICC_IAR1_EL1", 2),  # x2 = 32
        mrs("ICC_RPR_EL1", 30),  # x30 = running priority 0
        msr("ICC_EOIR1_EL1", 2),
        mrs("ICC_IAR1_EL1", 3),  # x3 = 32 again: the level is still high
        msr("ICC_EOIR1_EL1", 3),
        0xD503201F,  # NOP
    ]
    uc = run(gic, program, {1: 0xF0, 4: 1, 30: 0x5555})
    x = {n: uc.reg_read(x_register(n)) for n in (2, 3, 30)}
    assert (x[2], x[3], x[30]) == (32, 32, 0)
    gic.lower_line(32)
    uc = run(gic, [mrs("ICC_IAR1_EL1", 2)], {})
    assert uc.reg_read(x_register(2)) == 1023
