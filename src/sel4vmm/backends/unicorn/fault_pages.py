"""The fault-path pages of one vCPU's engine, served by the C MMIO trampoline.

A hole page the guest touches becomes a 4 KiB ``mmio_map`` whose accesses are the VMM's
fault path (:mod:`address_map`).  Through the unicorn binding's ctypes callbacks that
round trip costs about 4x a raw callback; :mod:`sel4vmm.native.unicorn_mmio` maps the page
with C callbacks instead, which build (or reuse) the :class:`~sel4vmm.memory.MemoryFault`
and call ``vm.memory.handle_fault`` directly, finishing a HANDLED access in C.

This module is the vCPU's side of that contract, for every page of one engine:

* ``dispatch`` is the memory core's ``handle_fault``; ``complete`` is the vCPU's handling
  of the other four answers (RESTART, IGNORE, UNHANDLED, ERROR: :mod:`fault_path`);
  ``general`` is the vCPU's
  ordinary access path (:meth:`Vcpu.mmio_access` with no device), which the trampoline
  takes whenever :attr:`bypass` is set;
* :meth:`stop_requested` is called by the vCPU whenever it calls ``uc.emu_stop()`` from
  inside unicorn: the access in progress is then passed to ``record`` (the vCPU appends it
  to its replay list) and every later access of the slice takes ``general``, which answers
  replays from the record and checks the unusual cases itself (the VM stopping, an extent
  mapped during the slice: the address map calls :meth:`take_general_path` when it queues
  one);
* :meth:`begin_slice` clears both flags (keeping ``bypass`` while replays are pending or the
  VM is stopping); :meth:`check` raises, after ``emu_start``, an exception a callable raised
  inside unicorn (which cannot unwind through it).

``SEL4VMM_PURE_PYTHON=1``, or an extension that is not built, leaves the pages on the
binding's Python callbacks (:func:`fault_pages_for` answers None).
"""

from __future__ import annotations

from sel4vmm.backends.unicorn.engine import AArch64Engine
from sel4vmm.native import describe
from sel4vmm.native.unicorn_mmio import (
    Complete,
    Dispatch,
    General,
    MmioTrampoline,
    Record,
    install_mmio_trampoline,
    trampoline_unavailable_reason,
)

PAGE = 0x1000


def mmio_path_description() -> str:
    """Which path emulated MMIO on unicorn takes in this process, and why (one line):
    ``C extension (...)`` or ``pure Python (why)``, as ``kvm-info`` says it for KVM."""
    return describe("_ucmmio")


class TrampolinePages:
    """The C-trampoline fault pages of one engine, with the vCPU's stop/replay flags."""

    def __init__(
        self,
        uc: AArch64Engine,
        *,
        dispatch: Dispatch,
        general: General,
        complete: Complete,
        record: Record,
        vcpu: object,
    ) -> None:
        self._uc = uc
        self._dispatch = dispatch
        self._general = general
        self._complete = complete
        self._record = record
        self._vcpu = vcpu
        self._pages: dict[int, MmioTrampoline] = {}
        self._stopping = False
        self._bypass = False
        #: Fast accesses of pages unmapped since (their trampolines are gone).
        self._retired_fast = 0

    def map_page(self, page: int) -> None:
        """Map the 4 KiB ``page`` as fault-path MMIO served by the trampoline."""
        trampoline = install_mmio_trampoline(
            self._uc,
            page,
            PAGE,
            self._dispatch,
            general=self._general,
            complete=self._complete,
            record=self._record,
            vcpu=self._vcpu,
        )
        trampoline.stopping = self._stopping
        trampoline.bypass = self._bypass
        self._pages[page] = trampoline

    def forget_page(self, page: int) -> None:
        """``page`` was unmapped from the engine (unicorn dropped its callbacks)."""
        trampoline = self._pages.pop(page, None)
        if trampoline is not None:
            self._retired_fast += trampoline.fast_accesses

    # -- flags ---------------------------------------------------------------------------
    def _set(self, stopping: bool, bypass: bool) -> None:
        if (stopping, bypass) == (self._stopping, self._bypass):
            return
        self._stopping, self._bypass = stopping, bypass
        for trampoline in self._pages.values():
            trampoline.stopping = stopping
            trampoline.bypass = bypass

    def stop_requested(self) -> None:
        """The vCPU called ``emu_stop`` inside unicorn: record the access, bypass the rest."""
        self._set(True, True)

    def take_general_path(self) -> None:
        """Send every access to ``general`` until the next slice (a map change is queued)."""
        self._set(self._stopping, True)

    def begin_slice(self, *, keep_bypass: bool) -> None:
        """A new slice: fast accesses again, unless ``keep_bypass`` (replays, stopping)."""
        self._set(False, keep_bypass)

    @property
    def fast_accesses(self) -> int:
        """Accesses the trampolines sent to ``dispatch`` (not ``general``), all pages."""
        return sum(t.fast_accesses for t in self._pages.values()) + self._retired_fast

    def check(self) -> None:
        """Raise the first exception a callable raised inside unicorn (after emu_start)."""
        for trampoline in self._pages.values():
            trampoline.check()


def fault_pages_for(
    uc: AArch64Engine,
    *,
    dispatch: Dispatch,
    general: General,
    complete: Complete,
    record: Record,
    vcpu: object,
) -> TrampolinePages | None:
    """The trampoline pages of ``uc``, or None when the pure-Python callbacks are used."""
    if trampoline_unavailable_reason() is not None:
        return None
    return TrampolinePages(
        uc, dispatch=dispatch, general=general, complete=complete, record=record, vcpu=vcpu
    )
