"""unicorn's MSR instruction hook behind a C register filter.

The VMM owns a few system registers the guest writes with ``MSR`` (the virtual timer's,
whose state changes unicorn compiled out), but unicorn's ``UC_HOOK_INSN`` for ``MSR``
cannot be bounded to registers: it runs on every ``msr <sysreg>, xN``, through the
binding's ctypes callback.  A Debian arm64 boot makes ~96,000 such calls, ~84,000 of them
``msr daif`` and only ~1,700 to the timer.  With the C extension
``sel4vmm.native._ucmsr`` the hook is a C function that lets unicorn perform the writes to
other registers without calling Python, and calls the callback — exactly as the binding
would, ``callback(uc, reg, cp, None)`` with the binding's ``CpReg`` — for the registers
given.  Without it (or with ``SEL4VMM_PURE_PYTHON=1``) the binding's hook is used and the
callback sees every ``MSR``, so it must ignore the registers it does not own either way.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable
from typing import Any

from unicorn import UC_HOOK_INSN
from unicorn.arm64_const import UC_ARM64_INS_MSR
from unicorn.unicorn_py3.arch.arm64 import CpReg
from unicorn.unicorn_py3.unicorn import uclib

from sel4vmm.backends.unicorn.engine import AArch64Engine, UcError
from sel4vmm.native import extension

#: ``(op0, op1, CRn, CRm, op2)`` of a system register.
SysRegKey = tuple[int, int, int, int, int]
#: ``callback(uc, reg, cp, user_data) -> int``: nonzero when the VMM performed the write.
MsrCallback = Callable[[Any, int, Any, Any], int]


def install_msr_hook(
    uc: AArch64Engine, callback: MsrCallback, registers: Iterable[SysRegKey]
) -> int:
    """Hook ``MSR`` writes to ``registers`` on ``uc`` (all writes without the extension).

    Returns the hook handle (``uc.hook_del`` removes it either way).
    """
    native = extension("_ucmsr")
    if native is None:
        return uc.hook_add(UC_HOOK_INSN, callback, None, 1, 0, UC_ARM64_INS_MSR)
    owned = list(registers)
    msr_filter = native.MsrFilter(
        uc=uc,
        callback=callback,
        cp_type=CpReg,
        registers=owned,
        emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value,
    )
    handle = ctypes.c_size_t()
    status = uclib.uc_hook_add(
        uc._uch,  # type: ignore[attr-defined]
        ctypes.byref(handle),
        UC_HOOK_INSN,
        ctypes.c_void_p(native.FILTER_CALLBACK),
        ctypes.c_void_p(id(msr_filter)),
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
        ctypes.c_int(UC_ARM64_INS_MSR),
    )
    if status != 0:
        raise UcError(status)
    # Held where the binding holds its own hooks' callbacks: as long as the hook exists.
    uc._callbacks[handle.value] = msr_filter  # type: ignore[attr-defined]
    return handle.value
