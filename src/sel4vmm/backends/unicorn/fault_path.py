"""A vCPU's stage-2 faults: the core's five answers turned into what the guest's access gets.

An access to a guest-physical address with no frame behind it reaches
:meth:`StageTwoFaults.memory_fault` (from the binding's Python callbacks, or from the C
trampoline's ``general`` path), or — on the C trampoline's fast path — the core's
``vm.memory.handle_fault`` directly, whose answers other than HANDLED come to
:meth:`StageTwoFaults.complete_fast`.  Either way :meth:`StageTwoFaults.answer` honours them
as libsel4vm does:

* HANDLED: a read's emulated value goes to the destination register (unicorn does the
  register write, sign extension and writeback), a write is done.
* RESTART: a deferred map just happened.  The new frames are in the address space but
  unicorn's map is only updated between slices, so the access is performed on those frames
  now — the same outcome as re-executing the instruction.
* IGNORE: the instruction is skipped (libsel4vm advances the PC): the registers are saved
  now, the vCPU stops right after the access, and
  :meth:`Vcpu.finish_interrupted_instruction` restores them and steps past it.
* UNHANDLED (after the VM's unhandled-fault handler) and ERROR stop the VM with a
  diagnostic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sel4vmm.backends.unicorn.diagnostics import GuestDiagnostic, StopReason
from sel4vmm.memory import FaultResult, MemoryFault

if TYPE_CHECKING:
    from sel4vmm.backends.unicorn.cpu import Vcpu


class StageTwoFaults:
    """The fault path of one :class:`~sel4vmm.backends.unicorn.cpu.Vcpu`."""

    def __init__(self, vcpu: Vcpu, gpr_ids: list[int]) -> None:
        self._vcpu = vcpu
        self._gpr_ids = gpr_ids
        #: Faults answered here as handled (HANDLED, RESTART, IGNORE).
        self.handled = 0
        #: Fast-path faults the trampoline passed on (counted in ``handled`` if handled).
        self.fast_completed = 0
        #: General-purpose registers before an IGNOREd access: its instruction is skipped.
        self.skip_restore: dict[int, int] | None = None

    def memory_fault(self, address: int, width: int, is_write: bool, value: int) -> int:
        """An access on the Python path: the checks the fast path leaves to it, then the
        core's answer (see the module docstring)."""
        vcpu = self._vcpu
        if vcpu.stop_reason is not None:
            return 0  # the VM is stopping; the rest of this block has no effect that matters
        queued = vcpu.queued_extent
        if queued is not None and queued(address) is not None:
            return self.access_frames(address, width, is_write, value)
        fault = MemoryFault(address, width, is_write, value, vcpu=vcpu)
        return self.answer(fault, vcpu.vm.memory.handle_fault(fault))

    def complete_fast(self, fault: MemoryFault, result: FaultResult) -> int:
        """The trampoline's answer to a fault it did not finish itself (not HANDLED)."""
        self.fast_completed += 1  # answer() counts it if it was handled
        return self.answer(fault, result)

    def answer(self, fault: MemoryFault, result: FaultResult) -> int:
        """What the guest's access gets for the core's ``result``."""
        vcpu = self._vcpu
        if result is FaultResult.HANDLED:
            self.handled += 1
            return 0 if fault.read_value is None else fault.read_value
        if result is FaultResult.RESTART:
            self.handled += 1
            vcpu.request_exit()
            try:
                return self.access_frames(fault.address, fault.width, fault.is_write, fault.value)
            except Exception as error:  # the restarted access still has no frame
                self.fault_stop(fault, f"the access still faults after a restart: {error}")
                return 0
        if result is FaultResult.IGNORE:
            self.handled += 1
            if self.skip_restore is None:
                # The general-purpose registers are current inside an access (unlike the
                # PC, which unicorn syncs lazily), so this is their value before the load.
                self.skip_restore = {r: vcpu.uc.reg_read(r) for r in self._gpr_ids}
            vcpu.request_exit()
            return 0
        why = getattr(vcpu.vm.memory, "last_error", "") or f"fault result {result.name}"
        self.fault_stop(fault, why)
        return 0

    def access_frames(self, address: int, width: int, is_write: bool, value: int) -> int:
        """Perform the access on the frames the address space now has there."""
        vm = self._vcpu.vm
        pieces = vm.memory.translate(address, width)
        physmem = vm.physmem
        if is_write:
            data = value.to_bytes(width, "little")
            for paddr, length in pieces:
                physmem.view(paddr, length)[:] = data[:length]
                data = data[length:]
            return 0
        raw = b"".join(bytes(physmem.view(paddr, length)) for paddr, length in pieces)
        return int.from_bytes(raw, "little")

    def fault_stop(self, fault: MemoryFault, why: str) -> None:
        """Stop the VM with a diagnostic naming the access."""
        vcpu = self._vcpu
        access = "write" if fault.is_write else "read"
        if fault.is_write:
            access += f" of {fault.value:#x}"
        diagnostic = GuestDiagnostic(
            f"{vcpu.vm.name}: guest {fault.width}-byte {access} at {fault.address:#x} "
            f"stopped the VM: {why}",
            pc=vcpu.pc,
            registers=vcpu.registers(),
            address=fault.address,
            access=f"{fault.width}-byte {access}",
        )
        vcpu.stop(StopReason.GUEST_FAULT, diagnostic)
