"""Emulated MMIO on unicorn through a C trampoline instead of the binding's ctypes one.

unicorn's Python binding wraps every ``mmio_map`` callback in a ctypes trampoline, which is
most of what a raw Python MMIO callback costs.  :func:`install_mmio_trampoline` maps the
range with C functions of unicorn's own ``uc_cb_mmio_read_t`` / ``uc_cb_mmio_write_t``
signatures (``sel4vmm.native._ucmmio``), registered on the engine's ``uc_engine`` handle
through the binding's ``uc_mmio_map``.  Each access is turned into one reused
:class:`~sel4vmm.memory.MemoryFault` and handed to a Python callable:

* the callable bound to the accessed page (:meth:`MmioTrampoline.bind_page`: a device
  whose pages want their own entry point), else the range's ``dispatch`` — normally
  ``vm.memory.handle_fault``, the memory core's whole fault path — which answers a
  :class:`~sel4vmm.memory.FaultResult`;
* HANDLED completes the access in C (a read answers ``fault.read_value``); every other
  answer — IGNORE, RESTART, UNHANDLED, ERROR — goes to ``complete(fault, result)``, the
  backend's handling of that answer, which returns what a read reads;
* unusual cases take ``general(address, width, is_write, value) -> int``, the backend's
  ordinary path: a width the fault model lacks, or *bypass* mode (below).

The fault object is reused while nobody else holds it: a device that keeps a reference
(queues the fault, say) keeps that object, and the next access gets a fresh one.

**Replay-safe resume.**  When a device asks the vCPU to stop during its access, unicorn
stops after the access with the PC still on the instruction, which runs again on resume; the
device must not see the access twice (``backends/unicorn/cpu.py``).  The API supports the
backend's record-and-replay: whoever calls ``uc.emu_stop()`` from inside an access also
sets :attr:`MmioTrampoline.stopping`; every access the trampoline completes itself while it
is set is passed to ``record(address, width, is_write, value, answer)`` after it is done
(the answer the device gave; ``general`` is the backend's own path and records for itself,
as ``Vcpu.mmio_access`` does); while the backend has recorded answers to replay it sets
:attr:`MmioTrampoline.bypass`, so the re-run instruction's accesses go to ``general``, which
answers from the record; both flags are the backend's to clear (at the start of the next
slice).

A Python exception cannot unwind through unicorn: the first one raised by a callable is
kept, the engine is stopped, and :meth:`MmioTrampoline.check` raises it after
``emu_start`` returns (:meth:`MmioTrampoline.run` does both).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from unicorn.unicorn_py3.unicorn import uclib

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.native import describe, extension

#: ``dispatch(fault) -> FaultResult``: what a page's (or the range's) accesses go to.
Dispatch = Callable[[MemoryFault], FaultResult]
#: ``general(address, width, is_write, value) -> int``: the backend's ordinary path.
General = Callable[[int, int, bool, int], int]
#: ``complete(fault, result) -> int``: the backend's handling of a non-HANDLED answer.
Complete = Callable[[MemoryFault, FaultResult], int]
#: ``record(address, width, is_write, value, answer)``: an access done while stopping.
Record = Callable[[int, int, bool, int, int], object]

PAGE_BITS = 12


def trampoline_unavailable_reason() -> str | None:
    """Why the C trampoline cannot be used here (None when it can)."""
    if extension("_ucmmio") is None:
        return describe("_ucmmio")
    return None


def _refuse_unhandled(fault: MemoryFault, result: FaultResult) -> int:
    """The default ``complete``: only HANDLED is understood; anything else stops the run."""
    if result is FaultResult.IGNORE:
        return 0
    raise Sel4VmmError(
        f"{fault}: answered {result.name}, which this MMIO range has no handling for",
        fix="pass install_mmio_trampoline a complete= callable for non-HANDLED answers",
    )


class MmioTrampoline:
    """One ``uc_mmio_map`` range served by the C trampoline; see the module docstring."""

    def __init__(self, uc: Any, base: int, size: int, native: Any) -> None:
        self.uc = uc
        self.base = base
        self.size = size
        self._native = native

    @property
    def bypass(self) -> bool:
        """While set, every access takes the ``general`` path (replays pending)."""
        return bool(self._native.bypass)

    @bypass.setter
    def bypass(self, value: bool) -> None:
        self._native.bypass = int(value)

    @property
    def stopping(self) -> bool:
        """Set by whoever stops the engine inside an access: accesses then go to ``record``."""
        return bool(self._native.stopping)

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._native.stopping = int(value)

    @property
    def fast_accesses(self) -> int:
        """Accesses that went to a page callable or the dispatch (not ``general``)."""
        return int(self._native.fast_accesses)

    @property
    def general_accesses(self) -> int:
        return int(self._native.general_accesses)

    @property
    def faults_made(self) -> int:
        """Fault objects created: one, unless devices kept references to earlier ones."""
        return int(self._native.faults_made)

    def bind_page(self, address: int, dispatch: Dispatch | None) -> None:
        """Send the accesses to the page holding ``address`` to ``dispatch`` (None: unbind)."""
        if not self.base <= address < self.base + self.size:
            raise Sel4VmmError(
                f"page {address:#x} is outside the MMIO range "
                f"[{self.base:#x}, {self.base + self.size:#x})",
                fix="bind only pages of the range the trampoline was installed on",
            )
        self._native.bind(address >> PAGE_BITS, dispatch)

    def check(self) -> None:
        """Raise the first exception a callable raised inside unicorn, if any."""
        self._native.check()

    def run(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        """``uc.emu_start`` followed by :meth:`check`."""
        try:
            self.uc.emu_start(begin, until, timeout, count)
        finally:
            self.check()


def install_mmio_trampoline(
    uc: Any,
    base: int,
    size: int,
    dispatch: Dispatch | None,
    *,
    general: General | None = None,
    complete: Complete | None = None,
    record: Record | None = None,
    vcpu: object | None = None,
) -> MmioTrampoline:
    """Map ``[base, base + size)`` of engine ``uc`` as MMIO served by the C trampoline.

    ``dispatch`` answers accesses to pages with no bound callable (None: those go to
    ``general``).  ``general`` defaults to a fresh fault through ``dispatch`` and
    ``complete``; ``complete`` defaults to IGNORE reading 0 and anything else but HANDLED
    stopping the run with a :class:`~sel4vmm.errors.Sel4VmmError`.  ``vcpu`` is passed to
    every fault.  Raises Sel4VmmError when the extension is not built.
    """
    native = extension("_ucmmio")
    if native is None:
        raise Sel4VmmError(
            f"the unicorn MMIO trampoline is unavailable: {describe('_ucmmio')}",
            fix="map the range with uc.mmio_map and Python callbacks instead",
        )
    if base % (1 << PAGE_BITS) or size <= 0 or size % (1 << PAGE_BITS):
        raise Sel4VmmError(
            f"MMIO range [{base:#x}, {base + size:#x}) is not whole 4 KiB pages",
            fix="give unicorn page-aligned MMIO ranges",
        )
    finish: Complete = complete if complete is not None else _refuse_unhandled
    if general is None:
        if dispatch is None:
            raise Sel4VmmError(
                "install_mmio_trampoline needs a dispatch or a general path",
                fix="pass dispatch=vm.memory.handle_fault",
            )
        answer = dispatch

        def general_path(address: int, width: int, is_write: bool, value: int) -> int:
            fault = MemoryFault(address, width, is_write, value, vcpu=vcpu)
            result = answer(fault)
            if result is FaultResult.HANDLED:
                return 0 if is_write else fault.read_value or 0
            return finish(fault, result)

        general = general_path
    trampoline = native.Trampoline(
        base=base,
        size=size,
        dispatch=dispatch,
        general=general,
        complete=finish,
        record=record,
        fault_type=MemoryFault,
        vcpu=vcpu,
        handled=FaultResult.HANDLED,
        emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value,
    )
    user_data = ctypes.c_void_p(id(trampoline))
    status = uclib.uc_mmio_map(
        uc._uch, base, size, native.READ_CALLBACK, user_data, native.WRITE_CALLBACK, user_data
    )
    if status != 0:
        raise Sel4VmmError(
            f"unicorn refused to map MMIO [{base:#x}, {base + size:#x}): "
            f"{uclib.uc_strerror(status).decode()} (uc_err {status})",
            fix="map MMIO only where nothing else is mapped",
        )
    # The binding drops this entry when the range is unmapped (Uc.mem_unmap): the C
    # trampoline lives exactly as long as unicorn may call it (and as long as the engine).
    uc._mmio_callbacks[(base, base + size)] = (trampoline, None)
    return MmioTrampoline(uc, base, size, trampoline)
