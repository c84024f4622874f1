"""Regression tests for what unicorn 2.1.4 does that a Linux boot depends on.

Each test pins one measured behaviour of unicorn (the facts listed in issue 9) on a bare
engine, so that a unicorn upgrade that changes it fails here and not in the middle of a
kernel boot.  Exception numbers are ``qemu/target/arm/cpu.h`` of unicorn 2.1.4
(``#define EXCP_HVC 11``, ``#define EXCP_SMC 13``); syndromes are the Arm ARM's ESR_ELx
encodings (EC in bits 31:26, IL bit 25, ISS = the immediate for BRK/HVC/SMC).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from unicorn import UC_HOOK_INTR
from unicorn.arm64_const import (
    UC_ARM64_REG_ESR_EL1,
    UC_ARM64_REG_PC,
    UC_ARM64_REG_PSTATE,
    UC_ARM64_REG_SP,
    UC_ARM64_REG_SP_EL0,
    UC_ARM64_REG_SP_EL1,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
    UC_ARM64_REG_X20,
)

from sel4vmm.backends.unicorn.engine import AArch64Engine, new_aarch64_engine
from sel4vmm.backends.unicorn.exceptions import ExceptionKind, take_exception
from sel4vmm.backends.unicorn.syndrome import SyndromeReader
from sel4vmm.backends.unicorn.sysregs import (
    CNTVOFF_EL2,
    GUEST_SCR_EL3,
    HCR_EL2,
    HCR_RW,
    SCR_EL3,
    configure_guest_el1,
    set_virtual_irq,
)
from sel4vmm.backends.unicorn.timer import CNTV_CVAL_EL0
from sel4vmm.backends.unicorn.traps import EXCEPTION_NAMES, EXCP_HVC, EXCP_SMC, EXCP_UDEF
from sel4vmm.errors import Sel4VmmError

BASE = 0x4000_0000
BRK_1234 = 0xD422_4680
HVC_5 = 0xD400_00A2
SMC_7 = 0xD400_00E3
WFI = 0xD503_207F
NOP = 0xD503_201F
MRS_X2_MPIDR = 0xD538_00A2
MRS_X2_CNTVCT = 0xD53B_E042
MSR_CVAL_X1 = 0xD51B_E341
MSR_VBAR_X0 = 0xD518_C000
MSR_DAIFCLR_I = 0xD503_42FF
ADD_X20_1 = 0x9100_0694
ERET = 0xD69F_03E0
B_SELF = 0x1400_0000
#: An "until" address never reached (unicorn imitates a WFI there, which TWI traps).
FAR = BASE + 0x8000


def engine(words: list[int], *, guest: bool = True) -> AArch64Engine:
    uc = new_aarch64_engine()
    uc.mem_map(BASE, 0x10000)
    uc.mem_write(BASE, struct.pack(f"<{len(words)}I", *words))
    if guest:
        configure_guest_el1(uc, 0x8000_0003)
    return uc


def exceptions_of(uc: AArch64Engine, count: int) -> list[tuple[int, int]]:
    """Run ``count`` instructions; the (exception number, PC) pairs unicorn reported."""
    seen: list[tuple[int, int]] = []

    def on_exception(engine: AArch64Engine, intno: int, _data: Any) -> None:
        seen.append((intno, int(engine.reg_read(UC_ARM64_REG_PC))))
        engine.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(BASE, BASE + 0x8000, count=count)
    return seen


def test_unicorn_starts_with_el2_and_el3_in_aarch32_and_configure_makes_el1_64_bit() -> None:
    uc = new_aarch64_engine()
    assert uc.cpr_read(*SCR_EL3) & (1 << 10) == 0  # SCR_EL3.RW = 0: the prefetch abort
    assert uc.cpr_read(*HCR_EL2) & HCR_RW == 0
    configure_guest_el1(uc, 0x8000_0000)
    assert uc.cpr_read(*SCR_EL3) & GUEST_SCR_EL3 == GUEST_SCR_EL3
    assert uc.cpr_read(*HCR_EL2) & HCR_RW


def test_without_hce_hvc_is_an_undefined_instruction() -> None:
    assert exceptions_of(engine([HVC_5], guest=False), 1) == [(EXCP_UDEF, BASE)]


def test_with_hce_hvc_is_exception_11_and_smc_13_with_the_pc_past_the_call() -> None:
    assert exceptions_of(engine([HVC_5]), 1) == [(EXCP_HVC, BASE + 4)]
    assert exceptions_of(engine([SMC_7]), 1) == [(EXCP_SMC, BASE + 4)]


def test_the_exception_names_follow_qemus_numbering_which_skips_10() -> None:
    assert 10 not in EXCEPTION_NAMES
    assert EXCEPTION_NAMES[EXCP_HVC] == "HVC"
    assert EXCEPTION_NAMES[12] == "HYP trap"
    assert EXCEPTION_NAMES[EXCP_SMC] == "SMC"
    assert EXCEPTION_NAMES[14] == "virtual IRQ"


def test_esr_el1_stays_unwritten_but_the_saved_context_holds_the_syndrome() -> None:
    uc = engine([BRK_1234, HVC_5])
    reader = SyndromeReader(uc)
    syndromes: list[int] = []

    def on_exception(engine_: AArch64Engine, _intno: int, _data: Any) -> None:
        syndromes.append(reader.read()[0])
        engine_.reg_write(UC_ARM64_REG_PC, BASE + 4)

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(BASE, BASE + 8, count=2)
    assert uc.reg_read(UC_ARM64_REG_ESR_EL1) == 0
    # BRK: EC 0x3C, IL, imm16 0x1234; HVC: EC 0x16, IL, imm16 5.
    assert syndromes == [0xF200_1234, 0x5A00_0005]


def test_wfi_traps_with_ec_1_at_the_wfi_and_so_does_the_until_address() -> None:
    uc = engine([NOP, WFI, NOP, NOP])
    reader = SyndromeReader(uc)
    seen: list[tuple[int, int, int]] = []

    def on_exception(engine_: AArch64Engine, intno: int, _data: Any) -> None:
        pc = int(engine_.reg_read(UC_ARM64_REG_PC))
        seen.append((intno, pc, reader.read()[0] >> 26))
        engine_.reg_write(UC_ARM64_REG_PC, pc + 4)
        if len(seen) == 2:
            engine_.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(BASE, BASE + 12, count=100)
    # The real WFI (PC at it), then unicorn's "until" marker imitating one: PC 4 early.
    assert seen == [(EXCP_UDEF, BASE + 4, 0x01), (EXCP_UDEF, BASE + 8, 0x01)]


def test_vmpidr_el2_is_what_el1_reads_as_mpidr_without_a_hook() -> None:
    uc = engine([MRS_X2_MPIDR])
    uc.emu_start(BASE, FAR, count=1)
    assert uc.reg_read(UC_ARM64_REG_X2) == 0x8000_0003


def test_cntv_cval_writes_are_lost_and_cntvct_counts_natively_minus_cntvoff() -> None:
    uc = engine([MSR_CVAL_X1, MRS_X2_CNTVCT])
    uc.reg_write(UC_ARM64_REG_X1, 0x1234_5678)
    uc.cpr_write(*CNTVOFF_EL2, 0)
    uc.emu_start(BASE, FAR, count=1)
    assert uc.cpr_read(*CNTV_CVAL_EL0) == 0  # gt_cval_write is under #if 0
    host_counter = int(uc.cpr_read(3, 3, 14, 0, 2))
    uc.cpr_write(*CNTVOFF_EL2, host_counter - 1000)
    uc.emu_start(BASE + 4, FAR, count=1)
    guest = int(uc.reg_read(UC_ARM64_REG_X2))
    assert 1000 <= guest < 1000 + host_counter  # counts on from 1000, never backwards
    uc.cpr_write(*CNTV_CVAL_EL0, 0x42)  # a raw store is kept: the VMM mirrors CVAL so
    assert uc.cpr_read(*CNTV_CVAL_EL0) == 0x42


def test_a_pstate_write_does_not_bank_the_stack_pointer_but_take_exception_does() -> None:
    uc = engine([NOP])
    uc.reg_write(UC_ARM64_REG_SP, 0x1111)
    uc.reg_write(UC_ARM64_REG_SP_EL1, 0x2222)
    uc.reg_write(UC_ARM64_REG_PSTATE, 0x3C0)  # EL0t
    assert uc.reg_read(UC_ARM64_REG_SP) == 0x1111  # nothing was banked
    take_exception(uc, ExceptionKind.SYNCHRONOUS, BASE)
    assert uc.reg_read(UC_ARM64_REG_SP) == 0x2222
    assert uc.reg_read(UC_ARM64_REG_SP_EL0) == 0x1111


def test_a_pstate_write_leaves_the_cached_el_stale_until_a_system_register_write() -> None:
    """At EL0, ``msr vbar_el1`` must be undefined; after a bare PSTATE write unicorn still
    executes it as EL1 would."""
    stale = engine([MSR_VBAR_X0])
    stale.reg_write(UC_ARM64_REG_PSTATE, 0x3C0)
    assert exceptions_of(stale, 1) == []
    fresh = engine([MSR_VBAR_X0])
    fresh.reg_write(UC_ARM64_REG_PSTATE, 0x3C0)
    fresh.cpr_write(3, 0, 4, 0, 0, 0)  # SPSR_EL1: any system register write refreshes it
    assert exceptions_of(fresh, 1) == [(EXCP_UDEF, BASE)]


def test_hcr_el2_vi_is_taken_natively_once_the_guest_unmasks_irqs() -> None:
    vbar = BASE + 0x1000
    uc = engine([MSR_VBAR_X0, NOP, MSR_DAIFCLR_I, NOP, B_SELF])
    uc.mem_write(vbar + 0x280, struct.pack("<II", ADD_X20_1, B_SELF))  # IRQ, EL1h
    uc.reg_write(UC_ARM64_REG_X0, vbar)
    uc.reg_write(UC_ARM64_REG_PSTATE, 0x3C5)  # EL1h, DAIF masked
    uc.cpr_write(3, 0, 4, 0, 0, 0)
    set_virtual_irq(uc, True)
    uc.emu_start(BASE, BASE + 0x8000, count=2)  # masked: nothing is taken
    assert uc.reg_read(UC_ARM64_REG_X20) == 0
    uc.emu_start(int(uc.reg_read(UC_ARM64_REG_PC)), BASE + 0x8000, count=6)
    assert uc.reg_read(UC_ARM64_REG_X20) == 1
    assert vbar + 0x280 <= uc.reg_read(UC_ARM64_REG_PC) < vbar + 0x288


def test_a_unicorn_without_the_syndrome_in_its_context_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sel4vmm.backends.unicorn import syndrome

    def unavailable() -> int:
        raise syndrome.SyndromeUnavailable("the probe BRK raised no exception")

    monkeypatch.setattr(syndrome, "syndrome_offset", unavailable)
    with pytest.raises(Sel4VmmError, match="cannot be used by the VMM") as raised:
        SyndromeReader(new_aarch64_engine())
    assert raised.value.fix == "install unicorn 2.1.4 (pip install unicorn==2.1.4)"
