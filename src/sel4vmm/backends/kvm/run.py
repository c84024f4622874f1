"""The vCPU exit loop: KVM exits turned into libsel4vm faults, port I/O and clean stops.

``KVM_EXIT_MMIO`` is KVM saying "the guest touched a guest-physical address no slot covers";
that is exactly a libsel4vm memory fault, so it goes to
:meth:`~sel4vmm.memory.GuestAddressSpace.handle_fault` and the answer is honoured:

* ``HANDLED``  writes are done; a read completes with the callback's ``read_value``.
* ``IGNORE``   the access is dropped; a read completes with 0 (KVM has already decoded the
  instruction and will write *some* value to its destination register on re-entry, so
  "leave the register unchanged" cannot be expressed; 0 is the documented stand-in).
* ``RESTART``  the callback mapped memory (a deferred map; the slot listener has added the
  KVM slot).  On AArch64 the VMM simply re-runs the instruction.  On KVM the instruction is
  already decoded and the MMIO exit *completes* it on re-entry, so re-executing is not
  possible; instead the loop replays the access against the memory now mapped: a write is
  stored into the new frames, a read completes with the value the frames hold.  The guest
  observes exactly what re-execution would have produced, and every later access to the
  window runs at full speed through the new slot.
* ``UNHANDLED`` / ``ERROR``  the VM stops with a diagnostic (the address space has already
  offered the fault to the VM's unhandled-fault handler).

Anything else unexpected (triple fault, failed VM entry, KVM internal errors such as
instructions the host cannot emulate) also stops the VM with the exit reason and the
registers, never a Python traceback.  Guests end by writing the exit port (see
:class:`~.portio.ExitPort`): ``hlt`` never leaves the in-kernel IRQ chip.

Two implementations of the same loop: when the C extension ``sel4vmm.native._kvmexit`` is
built, ``KVM_RUN`` and MMIO decoding run in C, which hands each MMIO fault to the same
``handle_fault`` and completes HANDLED answers itself; every other exit and every other
answer comes back here and takes the same code as the pure-Python loop.  The Python loop
is used when the extension is absent or ``SEL4VMM_PURE_PYTHON=1``;
:attr:`ExitLoop.implementation` and :attr:`RunOutcome.exit_loop` say which one ran.
"""

from __future__ import annotations

import signal
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn, Protocol

from sel4vmm.backends.kvm import ioctls
from sel4vmm.backends.kvm.portio import PortIoBus
from sel4vmm.backends.kvm.vcpu import KvmVcpu
from sel4vmm.memory import FaultResult, MemoryFault, Reservation
from sel4vmm.native import describe, extension
from sel4vmm.sel4.physmem import PhysicalMemory

_MMIO_EXIT = struct.Struct("<Q8sIB")
_U64 = struct.Struct("<Q")

#: The signal that kicks a vCPU out of KVM_RUN (its handler does nothing).
KICK_SIGNAL = signal.SIGUSR1


class FaultDispatcher(Protocol):
    """The part of :class:`~sel4vmm.memory.GuestAddressSpace` the exit loop needs."""

    def handle_fault(self, fault: MemoryFault) -> FaultResult: ...

    def find(self, addr: int) -> Reservation | None: ...

    #: Why the last fault ended in ERROR or UNHANDLED (set by ``handle_fault``).
    last_error: str


class StopReason(Enum):
    """Why :meth:`ExitLoop.run` returned."""

    #: The guest wrote its status to the exit port.
    EXITED = "exited"
    #: A memory fault nobody handled (UNHANDLED) or a callback said ERROR.
    FAULT = "fault"
    #: The host asked (deadline, stop condition, :meth:`ExitLoop.stop`).
    STOPPED = "stopped"
    #: Triple fault, reset or crash event.
    SHUTDOWN = "shutdown"
    #: VM entry failed or KVM reported an internal error (e.g. an unemulatable instruction).
    FAILED = "failed"
    #: An exit the loop has no handler for.
    UNEXPECTED_EXIT = "unexpected exit"


@dataclass
class RunOutcome:
    reason: StopReason
    #: What the guest wrote to the exit port (EXITED only).
    exit_code: int | None = None
    #: One paragraph for the user: what happened, and the vCPU's registers when relevant.
    diagnostic: str = ""
    #: The fault that stopped the VM (FAULT only).
    fault: MemoryFault | None = None
    #: How many KVM exits the run took (MMIO, I/O, signals...).
    exits: int = 0
    #: Which exit loop ran: the C extension or pure Python (see :mod:`sel4vmm.native`).
    exit_loop: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is StopReason.EXITED


_INTERNAL_SUBERRORS = {
    1: "instruction emulation failed",
    2: "exception while delivering an exception",
    3: "exception delivery failed",
    4: "unexpected VM exit during event delivery",
}


class _StopRun(Exception):
    """Raised inside the loop to leave it with an outcome."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.reason.value)
        self.outcome = outcome


class ExitLoop:
    """Runs one vCPU and dispatches its exits until something stops it."""

    def __init__(
        self,
        vcpu: KvmVcpu,
        memory: FaultDispatcher,
        physmem: PhysicalMemory,
        ports: PortIoBus,
    ) -> None:
        self.vcpu = vcpu
        self.memory = memory
        self.physmem = physmem
        self.ports = ports
        self._stop_requested = threading.Event()
        self._exit_code: int | None = None
        self._thread_id: int | None = None
        #: The C exit loop, or None for the pure-Python one (chosen once, at creation).
        self._native = extension("_kvmexit")
        #: Which loop :meth:`run` uses, in words (for ``kvm-info`` and outcomes).
        self.implementation = describe("_kvmexit")

    # --- control from devices and other threads ---------------------------------------

    def guest_exit(self, code: int) -> None:
        """Called by the exit port: the guest is done with status ``code``."""
        self._exit_code = code

    def stop(self) -> None:
        """Ask the running loop to return (safe from any thread or a device callback)."""
        self._stop_requested.set()
        self.vcpu.request_immediate_exit(True)
        thread_id = self._thread_id
        if thread_id is not None and thread_id != threading.get_ident():
            signal.pthread_kill(thread_id, KICK_SIGNAL)

    # --- the loop ---------------------------------------------------------------------

    def run(
        self,
        timeout: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> RunOutcome:
        """Run until the guest exits, faults, fails, ``until()`` holds or ``timeout`` passes.

        ``until`` is checked after every I/O exit, which is when device output (the UART)
        changes.  The timeout is enforced by a timer thread that kicks the vCPU out of
        KVM_RUN, so a guest spinning without exits is still stopped.
        """
        self._stop_requested.clear()
        self._exit_code = None
        self.vcpu.request_immediate_exit(False)
        self._thread_id = threading.get_ident()
        previous_handler = self._install_kick_handler()
        timer = threading.Timer(timeout, self.stop) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            if self._native is not None:
                self._run_native(until)
            else:
                self._run_python(until)
        except _StopRun as stop:
            stop.outcome.exit_loop = self.implementation
            return stop.outcome
        finally:
            if timer is not None:
                timer.cancel()
            self._thread_id = None
            self.vcpu.request_immediate_exit(False)
            if previous_handler is not None:
                signal.signal(KICK_SIGNAL, previous_handler)

    def _run_python(self, until: Callable[[], bool] | None) -> NoReturn:
        """The pure-Python loop; leaves by :class:`_StopRun` with the exit count set."""
        exits = 0
        # The MMIO fast path is written out here with everything bound to locals: it is
        # the round trip bench/bench_kvm.py compares with a C VMM.
        run_vcpu = self.vcpu.run
        page = self.vcpu.run_page
        vcpu = self.vcpu
        handle_fault = self.memory.handle_fault
        decode_mmio = _MMIO_EXIT.unpack_from
        store_read = _U64.pack_into
        mmio_exit = ioctls.KVM_EXIT_MMIO
        union = ioctls.RUN_UNION
        read_data = ioctls.RUN_MMIO_DATA
        handled = FaultResult.HANDLED
        try:
            while True:
                reason = run_vcpu()
                exits += 1
                if reason == mmio_exit:
                    address, data, length, is_write = decode_mmio(page, union)
                    value = int.from_bytes(data[:length], "little") if is_write else 0
                    try:
                        fault = MemoryFault(address, length, bool(is_write), value, vcpu=vcpu)
                    except ValueError as error:
                        raise _StopRun(
                            self._stopped(StopReason.FAULT, f"guest access: {error}")
                        ) from None
                    result = handle_fault(fault)
                    if result is handled:
                        if not is_write:
                            store_read(page, read_data, fault.read_value or 0)
                    else:
                        self._mmio_not_handled(fault, result)
                else:
                    self._dispatch(reason, until)
        except _StopRun as stop:
            stop.outcome.exits = exits
            raise

    def _run_native(self, until: Callable[[], bool] | None) -> NoReturn:
        """The C loop (:mod:`sel4vmm.native`), returning here for all but HANDLED MMIO."""
        native = self._native
        assert native is not None
        exits = 0
        run_until = native.run
        fd = self.vcpu.fd
        page = self.vcpu.run_page
        vcpu = self.vcpu
        handle_fault = self.memory.handle_fault
        mmio_exit = ioctls.KVM_EXIT_MMIO
        handled = FaultResult.HANDLED
        try:
            while True:
                reason, count, fault, result = run_until(
                    fd, page, handle_fault, MemoryFault, vcpu, handled
                )
                exits += count
                if reason == mmio_exit:
                    if not isinstance(fault, MemoryFault):
                        raise _StopRun(self._stopped(StopReason.FAULT, f"guest access: {result}"))
                    assert isinstance(result, FaultResult)
                    self._mmio_not_handled(fault, result)
                elif reason < 0:
                    raise ioctls.KvmIoctlError("RUN", -reason)
                else:
                    self._dispatch(reason, until)
        except _StopRun as stop:
            stop.outcome.exits = exits
            raise

    def _install_kick_handler(self) -> signal.Handlers | Callable[..., object] | int | None:
        """A no-op handler for the kick signal, so it interrupts KVM_RUN without killing us.

        Python only lets the main thread install handlers; a loop in another thread relies
        on the main thread having done so (the session does).
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.signal(KICK_SIGNAL, lambda _signum, _frame: None)
        return previous if previous is not None else signal.SIG_DFL

    def _dispatch(self, reason: int, until: Callable[[], bool] | None) -> None:
        """Every exit but MMIO (which the loop handles inline)."""
        if reason == ioctls.KVM_EXIT_IO:
            self._io()
            if self._exit_code is not None:
                raise _StopRun(RunOutcome(StopReason.EXITED, exit_code=self._exit_code))
            if until is not None and until():
                raise _StopRun(RunOutcome(StopReason.STOPPED, diagnostic="stop condition met"))
        elif reason == ioctls.KVM_EXIT_INTR:
            if self._stop_requested.is_set():
                raise _StopRun(RunOutcome(StopReason.STOPPED, diagnostic="stopped by the host"))
            self.vcpu.request_immediate_exit(False)
        else:
            raise _StopRun(self._unexpected(reason))
        if self._stop_requested.is_set():
            raise _StopRun(RunOutcome(StopReason.STOPPED, diagnostic="stopped by the host"))

    # --- MMIO -------------------------------------------------------------------------

    def _mmio_not_handled(self, fault: MemoryFault, result: FaultResult) -> None:
        """Everything but HANDLED: IGNORE, RESTART (replay), UNHANDLED and ERROR (stop)."""
        if result is FaultResult.IGNORE:
            if not fault.is_write:
                self.vcpu.complete_mmio_read(0, fault.width)
        elif result is FaultResult.RESTART:
            self._replay(fault)
        else:
            what = self.memory.last_error or (
                f"guest {fault}: a fault callback returned ERROR"
                if result is FaultResult.ERROR
                else f"guest {fault}: no reservation or handler claims it"
            )
            raise _StopRun(self._stopped(StopReason.FAULT, what, fault=fault))

    def _replay(self, fault: MemoryFault) -> None:
        """Carry out ``fault`` on the memory a RESTART-answering callback just mapped."""
        reservation = self.memory.find(fault.address)
        extents = reservation.extents if reservation is not None else []
        for extent in extents:
            if (
                extent.guest_addr <= fault.address
                and fault.address + fault.width <= extent.guest_end
            ):
                window = self.physmem.view(extent.translate(fault.address), fault.width)
                if fault.is_write:
                    window[:] = fault.value.to_bytes(fault.width, "little")
                else:
                    value = int.from_bytes(window, "little")
                    self.vcpu.complete_mmio_read(value, fault.width)
                return
        raise _StopRun(
            self._stopped(
                StopReason.FAULT,
                f"guest {fault}: the fault callback answered RESTART but mapped nothing "
                "at that address, so the access would fault forever",
                fault=fault,
            )
        )

    # --- port I/O ---------------------------------------------------------------------

    def _io(self) -> None:
        direction, size, port, count, data_offset = self.vcpu.io_exit()
        page = self.vcpu.run_page
        for index in range(count):
            offset = data_offset + index * size
            if direction == ioctls.KVM_EXIT_IO_OUT:
                self.ports.write(port, size, int.from_bytes(page[offset : offset + size], "little"))
            else:
                page[offset : offset + size] = self.ports.read(port, size).to_bytes(size, "little")

    # --- stops ------------------------------------------------------------------------

    def _unexpected(self, reason: int) -> RunOutcome:
        name = ioctls.EXIT_REASON_NAMES.get(reason, f"#{reason}")
        if reason == ioctls.KVM_EXIT_SHUTDOWN:
            return self._stopped(
                StopReason.SHUTDOWN,
                "the guest triple-faulted (KVM_EXIT_SHUTDOWN): an exception occurred while "
                "it could not handle exceptions",
            )
        if reason == ioctls.KVM_EXIT_FAIL_ENTRY:
            (hardware_reason,) = self.vcpu.exit_detail_words(1)
            return self._stopped(
                StopReason.FAILED,
                f"VM entry failed (hardware reason {hardware_reason:#x}): the vCPU state is "
                "invalid for the host's virtualisation extensions",
            )
        if reason == ioctls.KVM_EXIT_INTERNAL_ERROR:
            header, *data = self.vcpu.exit_detail_words(5)
            suberror = header & 0xFFFF_FFFF
            what = _INTERNAL_SUBERRORS.get(suberror, f"suberror {suberror}")
            words = " ".join(f"{d:#x}" for d in data)
            return self._stopped(
                StopReason.FAILED,
                f"KVM internal error: {what} (data {words}); the host cannot run or emulate "
                "the guest's current instruction",
            )
        if reason == ioctls.KVM_EXIT_SYSTEM_EVENT:
            (event,) = self.vcpu.exit_detail_words(1)
            kinds = {1: "shutdown", 2: "reset", 3: "crash"}
            return self._stopped(
                StopReason.SHUTDOWN,
                f"the guest requested a {kinds.get(event & 0xFFFF_FFFF, 'system event')}",
            )
        return self._stopped(StopReason.UNEXPECTED_EXIT, f"unexpected KVM exit {name} ({reason})")

    def _stopped(
        self, reason: StopReason, what: str, fault: MemoryFault | None = None
    ) -> RunOutcome:
        diagnostic = f"{what}\n{self.vcpu.describe_state()}"
        return RunOutcome(reason, diagnostic=diagnostic, fault=fault)
