"""How a preemptible (counted) slice of one vCPU ends after its instructions.

The event loop preempts a vCPU after a number of instructions when something else may need
the host (a timer armed, another vCPU, a terminal).  The stop must land between
instructions: unicorn checks for a stop request after every memory access and, stopped
there, runs the instruction again on resume, so an asynchronous ``emu_stop`` could make a
device see one access twice (``cpu.py``'s replays).  Two replay-safe ways, same meaning:

* **block budget** (the C extension ``sel4vmm.native._ucslice``, where built): one
  ``UC_HOOK_BLOCK`` hook with a C callback takes each translation block's instructions
  from the slice's budget at the block's start and calls ``uc_emu_stop`` at the first
  block that starts with none left.  unicorn calls block hooks before the exit check that
  opens every block (unicorn 2.1.4 ``qemu/accel/tcg/translator.c``: the block hook's
  ``gen_uc_tracecode`` is emitted before ``gen_tb_start``), so the stop leaves the PC on
  the block's first instruction with nothing of it done.  A slice may run up to one
  block past its count; preemption needs no more.
* **count** (the fallback, or ``SEL4VMM_PURE_PYTHON=1``): ``emu_start(count=N)``, whose
  hidden per-instruction code hook costs ~40% of the guest's speed.

Either way, code translated before the mechanism was switched on does not count, so the
translation cache is flushed whenever counting starts or stops
(:meth:`SlicePreemption.set_counting`).
"""

from __future__ import annotations

import ctypes
from typing import Any

from unicorn import UC_HOOK_BLOCK
from unicorn.unicorn_py3.unicorn import uclib

from sel4vmm.backends.unicorn.engine import AArch64Engine, UcError
from sel4vmm.native import describe, extension


def preemption_mechanism() -> str:
    """One line: how counted slices end in this process, and why."""
    if extension("_ucslice") is not None:
        return f"block budget, {describe('_ucslice')}"
    return f"emu_start count, {describe('_ucslice')}"


class SlicePreemption:
    """Counted slices of one engine: :meth:`run` a slice of at most ``count`` instructions."""

    def __init__(self, uc: AArch64Engine) -> None:
        self.uc = uc
        native = extension("_ucslice")
        self._native: Any = native
        self._budget: Any = (
            None
            if native is None
            else native.Budget(emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value)
        )
        self._hook: int | None = None
        self.counting = False
        #: Slices the block budget ended (0 on the count path).
        self.budget_stops = 0

    @property
    def block_budget(self) -> bool:
        """Whether slices end by the C block budget (else by ``emu_start``'s count)."""
        return self._budget is not None

    def set_counting(self, counting: bool) -> None:
        """Switch counted slices on or off, flushing the translation cache either way."""
        if counting == self.counting:
            return
        if self._budget is not None:
            if counting:
                handle = ctypes.c_size_t()
                status = uclib.uc_hook_add(
                    self.uc._uch,  # type: ignore[attr-defined]
                    ctypes.byref(handle),
                    UC_HOOK_BLOCK,
                    ctypes.c_void_p(self._native.BLOCK_CALLBACK),
                    ctypes.c_void_p(id(self._budget)),
                    ctypes.c_uint64(1),
                    ctypes.c_uint64(0),
                )
                if status != 0:
                    raise UcError(status)
                # Held where the binding holds its hooks' callbacks, for the hook's lifetime.
                self.uc._callbacks[handle.value] = self._budget  # type: ignore[attr-defined]
                self._hook = handle.value
            elif self._hook is not None:
                self.uc.hook_del(self._hook)
                self._hook = None
        self.uc.ctl_flush_tb()
        self.counting = counting

    def run(self, begin: int, until: int, count: int) -> None:
        """``emu_start`` for a slice of ``count`` instructions (0: until the guest traps)."""
        budget = self._budget
        if budget is None or not count or self._hook is None:
            self.uc.emu_start(begin, until, count=count)
            return
        budget.remaining = count
        budget.expired = 0
        budget.armed = 1
        try:
            self.uc.emu_start(begin, until, count=0)
        finally:
            budget.armed = 0
            self.budget_stops += budget.expired
