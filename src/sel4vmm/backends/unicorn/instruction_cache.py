"""Instruction-cache invalidations as the moment other vCPUs' translations go stale.

Each vCPU of a VM is its own unicorn engine over the same guest memory, and unicorn
notices self-modifying code only within one engine: code a vCPU patches (Linux's
alternatives, module loading) would keep running from the other engines' stale
translations.  The architecture requires such a vCPU to invalidate the instruction
cache (``IC IALLUIS``, ``IC IALLU`` or ``IC IVAU``) before the new code runs anywhere,
so that instruction is hooked here and reported; the board then has the other engines
flush their translations (see :class:`~sel4vmm.backends.unicorn.cpu.Vcpu`'s
``watch_instruction_cache``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unicorn import UC_HOOK_INSN
from unicorn.arm64_const import UC_ARM64_INS_SYS

from sel4vmm.backends.unicorn.engine import AArch64Engine

#: ``IC IALLUIS``, ``IC IALLU`` and ``IC IVAU`` as (op1, CRm, op2) with op0 = 1, CRn = 7.
IC_INVALIDATE = frozenset({(0, 1, 0), (0, 5, 0), (3, 5, 1)})


def hook_instruction_cache_invalidations(
    uc: AArch64Engine, invalidated: Callable[[], None]
) -> None:
    """Call ``invalidated`` after each ``IC`` invalidation the guest runs on ``uc``."""

    def on_sys(_uc: AArch64Engine, _reg: int, cp: Any, _data: Any) -> int:
        if cp.crn == 7 and (cp.op1, cp.crm, cp.op2) in IC_INVALIDATE:
            invalidated()
        return 0  # unicorn executes the maintenance instruction itself

    uc.hook_add(UC_HOOK_INSN, on_sys, None, 1, 0, UC_ARM64_INS_SYS)
