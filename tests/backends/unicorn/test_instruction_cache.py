"""Instruction-cache invalidations reported from a real unicorn engine
(backends/unicorn/instruction_cache.py): only ``IC`` invalidations, each once."""

from __future__ import annotations

import struct

from unicorn import UC_PROT_ALL
from unicorn.arm64_const import UC_ARM64_REG_PC, UC_ARM64_REG_X0

from sel4vmm.backends.unicorn.engine import new_aarch64_engine
from sel4vmm.backends.unicorn.instruction_cache import hook_instruction_cache_invalidations

RAM = 0x4000_0000
#: A64 ``SYS #op1, C7, Cm, #op2, Xt`` (Arm ARM C6.2.372):
#: 0xD5080000 | op1 << 16 | CRn << 12 | CRm << 8 | op2 << 5 | Rt.
PROGRAM = [
    0xD508711F,  # ic iallu is
    0xD508751F,  # ic iallu
    0xD50B7520,  # ic ivau, x0
    0xD50B7E20,  # dc civac, x0 (a data-cache operation: not reported)
    0xD503201F,  # nop
]
END = RAM + 4 * len(PROGRAM)


def test_each_ic_invalidation_is_reported_and_nothing_else() -> None:
    uc = new_aarch64_engine()
    uc.mem_map(RAM, 0x1000, UC_PROT_ALL)
    uc.mem_write(RAM, struct.pack(f"<{len(PROGRAM)}I", *PROGRAM))
    uc.reg_write(UC_ARM64_REG_X0, RAM)
    uc.reg_write(UC_ARM64_REG_PC, RAM)
    reported: list[int] = []
    hook_instruction_cache_invalidations(uc, lambda: reported.append(uc.reg_read(UC_ARM64_REG_PC)))
    uc.emu_start(RAM, END)  # unicorn starts at EL1h
    assert reported == [RAM, RAM + 4, RAM + 8]
    assert uc.reg_read(UC_ARM64_REG_PC) == END  # unicorn ran every maintenance instruction
