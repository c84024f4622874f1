"""The MSR hook behind the C register filter, and the binding's hook it replaces
(backends/unicorn/msr_filter.py), on a real unicorn engine."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from unicorn import UC_PROT_ALL
from unicorn.arm64_const import (
    UC_ARM64_REG_PC,
    UC_ARM64_REG_TPIDR_EL0,
    UC_ARM64_REG_TPIDRRO_EL0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
)

from sel4vmm.backends.unicorn.engine import AArch64Engine, new_aarch64_engine
from sel4vmm.backends.unicorn.msr_filter import install_msr_hook
from sel4vmm.native import PURE_PYTHON_VARIABLE, import_error

RAM = 0x4000_0000
TPIDR_EL0 = (3, 3, 13, 0, 2)
TPIDRRO_EL0 = (3, 3, 13, 0, 3)
#: A64 ``MSR <sysreg>, Xt`` (Arm ARM C6.2.229): 0xD5100000 | o0:op1:CRn:CRm:op2:Rt, op0 = 2 + o0.
PROGRAM = [
    0xD51BD041,  # msr tpidr_el0, x1
    0xD51BD062,  # msr tpidrro_el0, x2
]
END = RAM + 4 * len(PROGRAM)


@pytest.fixture(params=[False, True], ids=["c-filter", "binding-hook"])
def pure_python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    pure: bool = request.param
    if pure:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    else:
        monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
        reason = import_error("_ucmsr")
        if reason is not None:
            pytest.skip(f"the C filter needs its extension: {reason}")
    yield pure


def engine() -> AArch64Engine:
    uc = new_aarch64_engine()
    uc.mem_map(RAM, 0x1000, UC_PROT_ALL)
    uc.mem_write(RAM, struct.pack(f"<{len(PROGRAM)}I", *PROGRAM))
    uc.reg_write(UC_ARM64_REG_X1, 0x1111)
    uc.reg_write(UC_ARM64_REG_X2, 0x2222)
    uc.reg_write(UC_ARM64_REG_PC, RAM)
    return uc


def test_only_the_given_registers_reach_python_and_their_answer_is_honoured(
    pure_python: bool,
) -> None:
    uc = engine()
    seen: list[tuple[tuple[int, int, int, int, int], int]] = []

    def on_msr(_uc: Any, _reg: int, cp: Any, _data: Any) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        seen.append((key, cp.val))
        return 1 if key == TPIDR_EL0 else 0  # 1: the VMM did the write, unicorn skips it

    install_msr_hook(uc, on_msr, [TPIDR_EL0])
    uc.emu_start(RAM, END)
    expected = [(TPIDR_EL0, 0x1111)]
    # The binding's hook cannot be bounded to registers: every MSR reaches the callback.
    assert seen == ([*expected, (TPIDRRO_EL0, 0x2222)] if pure_python else expected)
    assert uc.reg_read(UC_ARM64_REG_TPIDR_EL0) == 0  # skipped: the callback answered 1
    assert uc.reg_read(UC_ARM64_REG_TPIDRRO_EL0) == 0x2222  # performed by unicorn


# The binding's own wrapper returns None from the failed callback, which ctypes reports as
# an unraisable TypeError on the binding-hook path: the binding's behaviour, not the VMM's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_exception_in_the_callback_stops_the_engine_and_is_raised(pure_python: bool) -> None:
    uc = engine()

    def broken(_uc: Any, _reg: int, _cp: Any, _data: Any) -> int:
        raise ZeroDivisionError("device model bug")

    install_msr_hook(uc, broken, [TPIDR_EL0])
    with pytest.raises(ZeroDivisionError, match="device model bug"):
        uc.emu_start(RAM, END)


def test_the_hook_can_be_removed(pure_python: bool) -> None:
    uc = engine()
    seen: list[int] = []
    handle = install_msr_hook(uc, lambda *_: seen.append(1) or 0, [TPIDR_EL0])
    uc.hook_del(handle)
    uc.emu_start(RAM, END)
    assert seen == [] and uc.reg_read(UC_ARM64_REG_TPIDR_EL0) == 0x1111
