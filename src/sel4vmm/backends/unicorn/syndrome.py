"""The syndrome (ESR) and fault address (FAR) of an exception unicorn stopped at.

unicorn hands exceptions to ``UC_HOOK_INTR`` *instead of* taking them, so it never writes
``ESR_EL1``/``FAR_EL1``; but the CPU model has already computed both (QEMU's
``env->exception.syndrome`` and ``.vaddress``), and ``uc_context_save`` copies the CPU
state that holds them.  With them the VMM vectors translation, permission and
access-flag faults, ``SVC``, ``BRK``, trapped ``MRS`` and undefined instructions exactly
as the hardware would, and recognises a trapped ``WFI`` (EC 0x01) or ``HVC``/``SMC``
without reading the instruction (which it could not: after the MMU is on the PC is
virtual and ``mem_read`` takes physical addresses).

Where the two fields sit in the saved context is a property of the unicorn build, not
of the API, so it is measured once per process (:func:`syndrome_offset`): a probe
engine executes ``BRK #0x1234`` and ``BRK #0x4321``, whose syndromes are known
(EC 0x3C, IL, the immediate), and the one offset holding both is the field.  The fault
address is the 64-bit field after the 32-bit syndrome and 32-bit AArch32 FSR (QEMU's
``struct { uint32_t syndrome; uint32_t fsr; uint64_t vaddress; ... } exception``).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from importlib.metadata import version
from typing import Any

from unicorn import UC_HOOK_INTR

from sel4vmm.backends.unicorn.engine import AArch64Engine, new_aarch64_engine
from sel4vmm.errors import Sel4VmmError

#: ``BRK #imm`` encodings and the syndromes the architecture gives them.
_PROBES = ((0xD422_4680, 0xF200_1234), (0xD428_6420, 0xF200_4321))
_PROBE_BASE = 0x1000_0000
#: Bytes from the syndrome field to the fault-address field.
_VADDRESS_AFTER_SYNDROME = 8


class SyndromeUnavailable(RuntimeError):
    """This unicorn build does not keep the exception syndrome where it can be found."""


def _context_bytes(uc: AArch64Engine, context: Any) -> bytes:
    uc.context_update(context)  # type: ignore[attr-defined]
    return ctypes.string_at(context.context, context.size)


def _probe_syndrome(insn: int) -> bytes:
    uc = new_aarch64_engine()
    uc.mem_map(_PROBE_BASE, 0x1000)
    uc.mem_write(_PROBE_BASE, struct.pack("<I", insn))
    context = uc.context_save()  # type: ignore[attr-defined]
    saved: list[bytes] = []

    def on_exception(engine: AArch64Engine, _intno: int, _data: Any) -> None:
        saved.append(_context_bytes(engine, context))
        engine.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(_PROBE_BASE, _PROBE_BASE + 4, count=1)
    if not saved:
        raise SyndromeUnavailable("the probe BRK raised no exception")
    return saved[0]


@functools.cache
def syndrome_offset() -> int:
    """Offset of ``exception.syndrome`` in this unicorn's saved context (measured once)."""
    candidates: set[int] | None = None
    for insn, syndrome in _PROBES:
        data = _probe_syndrome(insn)
        found = {
            offset
            for offset in range(0, len(data) - 16, 4)
            if struct.unpack_from("<I", data, offset)[0] == syndrome
        }
        candidates = found if candidates is None else candidates & found
    if not candidates or len(candidates) != 1:
        raise SyndromeUnavailable(
            f"unicorn's saved context holds the BRK syndrome at {sorted(candidates or [])}"
        )
    return candidates.pop()


class SyndromeReader:
    """Reads the pending exception's ESR and FAR from one engine (inside ``UC_HOOK_INTR``)."""

    def __init__(self, uc: AArch64Engine) -> None:
        self._uc = uc
        try:
            self._offset = syndrome_offset()
        except SyndromeUnavailable as error:
            raise Sel4VmmError(
                f"this unicorn ({version('unicorn')}) cannot be used by the VMM: {error}",
                fix="install unicorn 2.1.4 (pip install unicorn==2.1.4)",
            ) from None
        self._context = uc.context_save()  # type: ignore[attr-defined]
        self._pointer = self._context.context
        self._size = self._offset + _VADDRESS_AFTER_SYNDROME + 8

    def read(self) -> tuple[int, int]:
        """``(esr, far)`` of the exception being reported."""
        self._uc.context_update(self._context)  # type: ignore[attr-defined]
        data = ctypes.string_at(self._pointer, self._size)
        esr = struct.unpack_from("<I", data, self._offset)[0]
        far = struct.unpack_from("<Q", data, self._offset + _VADDRESS_AFTER_SYNDROME)[0]
        return int(esr), int(far)
