"""One AArch64 vCPU on unicorn: the traps a seL4 VMM sees, turned into VMM calls.

On seL4 a vCPU thread runs until something traps to the VMM: a stage-2 fault, an
``HVC``/``SMC``, a trapped system register, a ``WFI``.  unicorn gives the same events
through its hooks, and this class routes them the way libvmm/libsel4vm do:

* accesses to unmapped guest-physical addresses (the :mod:`address_map` holes) go to the
  core's ``vm.memory.handle_fault`` and its five answers are honoured (see
  :mod:`fault_path`);
* ``HVC``/``SMC`` are PSCI calls (:mod:`psci`), a trapped ``WFI`` makes the vCPU idle,
  and the guest's own synchronous exceptions (aborts of its stage-1 translation, ``SVC``,
  ``BRK``, undefined instructions) are vectored back into it with the syndrome unicorn
  computed (:mod:`traps`, :mod:`syndrome`, :mod:`exceptions`), since unicorn stops
  instead of taking them;
* ``MSR`` of the virtual-timer registers is kept by :mod:`timer`; ``MRS`` runs natively
  (MPIDR from ``VMPIDR_EL2``, see :mod:`sysregs`); interrupts reach the guest through
  the virtual IRQ line (:meth:`Vcpu.update_virtual_irq`), which unicorn takes itself;
* with several vCPUs, ``IC`` invalidations make the other engines retranslate
  (:mod:`instruction_cache`);
* with a GICv3, the ICC_* system registers unicorn's CPU lacks (their undefined
  instructions, from EL1) and the ID registers ``HCR_EL2.TID3`` traps are served by the
  VMM (:meth:`Vcpu.serve_system_registers`, :mod:`sysreg_emulation`) and the guest
  steps past them.

A VM has one :class:`Vcpu` per vCPU, each its own unicorn instance over the same guest
memory; the secondaries start powered off until the guest's PSCI ``CPU_ON`` (see
:meth:`Vcpu.power_on`) and the event loop runs the powered-on ones in turn.

Anything a guest does that the VMM cannot handle stops *this VM* with a
:class:`GuestDiagnostic` (PC, address, access, registers); it never raises out of the VMM.

**Replays.**  unicorn checks for a stop request after every memory access, and when it
stops there the access has happened but the PC still points at the instruction, which
therefore runs again when the vCPU resumes (measured: a 32-bit MMIO load stopped this way
reaches the device twice).  A device must see each guest access once — a second UART
write prints a character twice, a second ``GICC_IAR`` read loses an interrupt.  The
backend therefore never stops the vCPU asynchronously while it may touch a device (the
event loop preempts with instruction counts, which stop between instructions), and when
it asks to stop from inside a hook (:meth:`Vcpu.request_exit`), the first emulated
access after the request is the one that will be replayed: :meth:`Vcpu.mmio_access`
records it, and :meth:`Vcpu.finish_interrupted_instruction` re-runs that instruction
alone with the recorded answer before anything else happens.  On the C trampoline
(:mod:`fault_pages`) the same holds: a stop request sets its ``stopping`` flag, so the
access in progress is recorded (:meth:`Vcpu._record_replay`) and later ones take
:meth:`Vcpu.mmio_access` until the next slice.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from unicorn import UC_HOOK_INTR
from unicorn.arm64_const import (
    UC_ARM64_REG_ELR_EL1,
    UC_ARM64_REG_ESR_EL1,
    UC_ARM64_REG_PC,
    UC_ARM64_REG_PSTATE,
    UC_ARM64_REG_SP,
    UC_ARM64_REG_VBAR_EL1,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
    UC_ARM64_REG_X3,
    UC_ARM64_REG_X29,
    UC_ARM64_REG_X30,
)

from sel4vmm.backends.unicorn.address_map import BoardDevice
from sel4vmm.backends.unicorn.diagnostics import GuestDiagnostic as GuestDiagnostic
from sel4vmm.backends.unicorn.diagnostics import StopReason as StopReason
from sel4vmm.backends.unicorn.engine import (
    AArch64Engine,
    UcError,
    new_aarch64_engine,
    register_reader,
)
from sel4vmm.backends.unicorn.exceptions import (
    PSTATE_DAIF,
    PSTATE_MODE_EL1H,
    ExceptionKind,
    take_exception,
)
from sel4vmm.backends.unicorn.fault_pages import fault_pages_for
from sel4vmm.backends.unicorn.fault_path import StageTwoFaults
from sel4vmm.backends.unicorn.instruction_cache import hook_instruction_cache_invalidations
from sel4vmm.backends.unicorn.msr_filter import install_msr_hook
from sel4vmm.backends.unicorn.psci import CpuPower, PsciAction, handle_psci
from sel4vmm.backends.unicorn.syndrome import SyndromeReader
from sel4vmm.backends.unicorn.sysreg_emulation import emulate_move, trapped_move
from sel4vmm.backends.unicorn.sysregs import (
    GUEST_HCR_EL2,
    HCR_EL2,
    HCR_TID3,
    SCTLR_EL1,
    SPSR_EL1,
    configure_guest_el1,
    set_virtual_irq,
)
from sel4vmm.backends.unicorn.timer import WRITTEN_REGISTERS, SysReg, VirtualTimer
from sel4vmm.backends.unicorn.traps import (
    EXCP_UDEF,
    TrapAction,
    TrappedSystemRegisters,
    carries_fault_address,
    classify,
    exception_name,
)

#: MPIDR_EL1's RES1 bit 31 (bit 30, U, clear: the vCPU is part of a multiprocessor system).
MPIDR_RES1 = 1 << 31
#: PSTATE of a vCPU PSCI powers on: EL1h with D, A, I, F masked (PSCI 1.0, 6.4.3).
POWER_ON_PSTATE = PSTATE_DAIF | PSTATE_MODE_EL1H

#: Unicorn's ids for X0..X28 are consecutive; X29/X30 are separate.
_GPR_IDS = [UC_ARM64_REG_X0 + i for i in range(29)] + [UC_ARM64_REG_X29, UC_ARM64_REG_X30]


#: An emulated access the guest made and what it got back, as the tuple
#: ``(address, width, is_write, value, result)``.
_Access = tuple[int, int, bool, int, int]


def _cp_key(cp: Any) -> SysReg:
    return (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)


class Vcpu:
    """One vCPU of a VM: a unicorn instance plus the trap routing described above.

    ``index`` is its number (MPIDR Aff0 and its GIC CPU interface); vCPU 0 starts powered
    on, the others powered off.  ``power`` answers PSCI's questions about the other vCPUs
    (None: this is the VM's only one).
    """

    def __init__(
        self, vm: Any, timer: VirtualTimer, index: int = 0, power: CpuPower | None = None
    ) -> None:
        self.vm = vm
        self.timer = timer
        self.index = index
        self.power = power
        self.mpidr = MPIDR_RES1 | index
        #: Powered on (PSCI), and, if so, idle in WFI waiting for an interrupt.
        self.powered = index == 0
        self.waiting = False
        #: Whether this engine's translated code counts instructions (see the event loop).
        self.counting = False
        self.uc = new_aarch64_engine()
        configure_guest_el1(self.uc, self.mpidr)
        self._syndrome = SyndromeReader(self.uc)
        timer.bind(self.uc)
        self._sctlr_reset = int(self.uc.cpr_read(*SCTLR_EL1))
        #: The vCPU trapped on WFI in its last slice (the loop then lets it idle).
        self.wfi_trapped = False
        #: The "until" address of the emu_start running now (see _on_exception).
        self.until: int | None = None
        #: The vGIC's virtual IRQ line for this vCPU, and the level last driven into
        #: HCR_EL2.VI (unicorn takes the IRQ itself when PSTATE.I allows).
        self.irq_line: Callable[[], bool] | None = None
        #: The device model of this vCPU's GIC CPU interface (its accesses move the line).
        self.irq_interface: object | None = None
        self._virq = False
        self.virq_raised = 0
        #: HCR_EL2 without VI (TID3 is added when the VMM serves ID registers).
        self.hcr = GUEST_HCR_EL2
        #: The system registers the VMM provides for this vCPU (a GICv3's ICC_*), and the
        #: ID register values it reports instead of the CPU model's (with TID3 trapping).
        self.system_registers: TrappedSystemRegisters | None = None
        self.id_registers: dict[SysReg, int] = {}
        self.system_register_accesses = 0
        self._read_pc = register_reader(self.uc, UC_ARM64_REG_PC)
        #: Fast readers of the register file diagnostics show.
        self._register_readers = [
            *((f"x{i}", register_reader(self.uc, r)) for i, r in enumerate(_GPR_IDS)),
            ("sp", register_reader(self.uc, UC_ARM64_REG_SP)),
            ("pstate", register_reader(self.uc, UC_ARM64_REG_PSTATE)),
            ("elr_el1", register_reader(self.uc, UC_ARM64_REG_ELR_EL1)),
            ("esr_el1", register_reader(self.uc, UC_ARM64_REG_ESR_EL1)),
            ("vbar_el1", register_reader(self.uc, UC_ARM64_REG_VBAR_EL1)),
        ]
        self.stop_reason: StopReason | None = None
        self.diagnostic: GuestDiagnostic | None = None
        #: Set while the vCPU is inside unicorn: device events then ask it to leave.
        self.running = False
        #: Asked to leave unicorn early (an interrupt became deliverable, a map changed).
        self.exit_requested = False
        #: A stop was requested inside unicorn and has not taken effect yet.
        self._stop_pending = False
        #: Counters, for tests and the benchmark (see :attr:`faults_handled`).
        self.psci_calls = 0
        self.exceptions_vectored = 0
        #: The address map's view of extents mapped during this slice (RESTART in flight).
        self.queued_extent: Callable[[int], Any] | None = None
        #: The accesses the pending stop lands after (two for a split 8-byte access); their
        #: instruction runs again when the vCPU resumes and gets these answers.
        self._replay: list[_Access] = []
        #: The fault path: the core's answers honoured (and counted; see faults_handled).
        self.faults = StageTwoFaults(self, _GPR_IDS)
        self.replays_suppressed = 0
        #: The C trampoline serving this engine's fault pages (None: Python callbacks).
        self.trampolines = fault_pages_for(
            self.uc,
            dispatch=vm.memory.handle_fault,
            general=self._fault_page_access,
            complete=self.faults.complete_fast,
            record=self._record_replay,
            vcpu=self,
        )
        self.uc.hook_add(UC_HOOK_INTR, self._on_exception)
        install_msr_hook(self.uc, self._on_msr, WRITTEN_REGISTERS)
        #: Called when this vCPU invalidates the instruction cache (SMP only: see
        #: :meth:`watch_instruction_cache`); set by the board.
        self.code_changed: Callable[[], None] | None = None
        #: Another vCPU changed code since this engine last translated it.
        self.stale_code = False

    @property
    def faults_handled(self) -> int:
        """Faults answered HANDLED, RESTART or IGNORE, on either MMIO path."""
        fast = self.trampolines.fast_accesses if self.trampolines is not None else 0
        return self.faults.handled + fast - self.faults.fast_completed

    # -- registers -----------------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self._read_pc()

    def registers(self) -> dict[str, int]:
        """The register file (general-purpose, SP, PSTATE and the EL1 exception state)."""
        return {name: read() for name, read in self._register_readers}

    def instruction_at(self, address: int) -> int | None:
        """The A64 instruction word at a guest address, or None if nothing is mapped there."""
        try:
            return int(struct.unpack("<I", self.uc.mem_read(address, 4))[0])
        except UcError:
            return None

    def stop(self, reason: StopReason, diagnostic: GuestDiagnostic | None = None) -> None:
        """End the run; the first reason wins (a fault after SYSTEM_OFF is not news)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.diagnostic = diagnostic
        if self.running:
            self._stop_pending = True
            if self.trampolines is not None:
                self.trampolines.stop_requested()
            self.uc.emu_stop()

    def request_exit(self) -> None:
        """Leave unicorn soon (at a translation-block boundary) so the loop can act."""
        self.exit_requested = True
        if self.running:
            self._stop_pending = True
            if self.trampolines is not None:
                self.trampolines.stop_requested()
            self.uc.emu_stop()

    # -- emulated accesses and their replays ------------------------------------------------
    def mmio_access(
        self,
        address: int,
        width: int,
        is_write: bool,
        value: int,
        device: BoardDevice | None,
        offset: int,
    ) -> int:
        """Every emulated access: a board device's registers, or the fault path if None."""
        if self._replay and not self._stop_pending:
            # The interrupted instruction runs again (finish_interrupted_instruction):
            # its accesses get the answers the device already gave.
            recorded = self._replay.pop(0)
            if recorded[:4] == (address, width, is_write, value):
                self.replays_suppressed += 1
                return recorded[4]
            self._replay.clear()
        if device is None:
            result = self.faults.memory_fault(address, width, is_write, value)
        elif is_write:
            device.write(offset, width, value)
            result = 0
        else:
            result = device.read(offset, width)
        if self._stop_pending:
            self._replay.append((address, width, is_write, value, result))
        if device is not None and device is self.irq_interface:
            # An acknowledge drops the line at once (or the IRQ would be taken again);
            # anything that raises it signals the loop, which drives it before the next
            # slice.
            self.update_virtual_irq()
        return result

    def update_virtual_irq(self) -> None:
        """Drive HCR_EL2.VI from the vGIC's line for this vCPU (only when it changes)."""
        line = self.irq_line
        level = line() if line is not None else False
        if level != self._virq:
            set_virtual_irq(self.uc, level, self.hcr)
            self._virq = level
            self.virq_raised += level

    def settle_diagnostic(self) -> None:
        """After a fault stop, take PC and registers where unicorn stopped.

        Inside an access unicorn's PC may still be the start of the translation block;
        the stop lands right after the access, where the PC is the faulting instruction.
        """
        if self.diagnostic is not None and self.diagnostic.address is not None:
            self.diagnostic.pc = self.pc
            self.diagnostic.registers = self.registers()

    def power_on(self, entry: int, context_id: int) -> None:
        """PSCI CPU_ON: start at ``entry`` with ``x0 = context_id``, EL1h, DAIF masked and
        the MMU off, as a core coming out of reset into the guest's EL1."""
        uc = self.uc
        for reg_id in _GPR_IDS:
            uc.reg_write(reg_id, 0)
        uc.reg_write(UC_ARM64_REG_X0, context_id)
        uc.cpr_write(*SCTLR_EL1, self._sctlr_reset)
        uc.reg_write(UC_ARM64_REG_PSTATE, POWER_ON_PSTATE)
        uc.cpr_write(*SPSR_EL1, 0)  # after PSTATE: unicorn recomputes its EL state
        uc.reg_write(UC_ARM64_REG_PC, entry)
        # Code other vCPUs wrote since this engine last ran is not seen by its translation
        # cache (unicorn tracks self-modifying code per instance): start from a clean one.
        uc.ctl_flush_tb()
        self._replay.clear()
        self.faults.skip_restore = None
        self.waiting = False
        self.wfi_trapped = False
        self.powered = True

    def begin_slice(self) -> None:
        self._stop_pending = False
        if self.trampolines is not None:
            keep = bool(self._replay) or self.stop_reason is not None
            self.trampolines.begin_slice(keep_bypass=keep)

    def raise_callback_error(self) -> None:
        """After ``emu_start``: raise what a trampoline callable raised inside unicorn."""
        if self.trampolines is not None:
            self.trampolines.check()

    def finish_interrupted_instruction(self) -> None:
        """Complete the instruction a stop interrupted after its access, alone, at once.

        An IGNOREd access's instruction is skipped: its registers are put back as they
        were before it and the PC moves past it (libsel4vm's ``ignore_fault``).  Any other
        interrupted instruction runs again on its own, its accesses answered from the
        record; nothing else (an interrupt, a device) may run first.  unicorn only counts
        instructions in blocks it translates while counting, so the cached block at PC is
        dropped around the single step.
        """
        self._stop_pending = False
        pc = self.pc
        if self.faults.skip_restore is not None:
            for reg_id, value in self.faults.skip_restore.items():
                self.uc.reg_write(reg_id, value)
            self.uc.reg_write(UC_ARM64_REG_PC, pc + 4)
            self.faults.skip_restore = None
            self._replay.clear()
            return
        if not self._replay:
            return
        if self._virq:
            # A pending virtual IRQ would be taken before the instruction runs again.
            set_virtual_irq(self.uc, False, self.hcr)
            self._virq = False
        self.running = True
        try:
            self.uc.ctl_remove_cache(pc, pc + 4)
            self.until = pc + 4
            try:
                self.uc.emu_start(pc, pc + 4, count=1)
            finally:
                self.raise_callback_error()
            self.uc.ctl_remove_cache(pc, pc + 4)
        except UcError as error:
            self.stop(
                StopReason.CPU_EXCEPTION,
                GuestDiagnostic(
                    f"{self.vm.name}: the emulator stopped the guest: {error}",
                    pc=pc,
                    registers=self.registers(),
                ),
            )
        finally:
            self.running = False
            self._stop_pending = False
            self._replay.clear()
            self.update_virtual_irq()

    # -- the C trampoline's callbacks (fault_pages) --------------------------------------
    def _fault_page_access(self, address: int, width: int, is_write: bool, value: int) -> int:
        """The trampoline's general path: :meth:`mmio_access` of a fault page."""
        return self.mmio_access(address, width, is_write, value, None, 0)

    def _record_replay(
        self, address: int, width: int, is_write: bool, value: int, answer: int
    ) -> None:
        """A trampoline access made while a stop was pending: its instruction runs again."""
        self._replay.append((address, width, is_write, value, answer))

    # -- exceptions: PSCI, SVC, undefined instructions -----------------------------------
    def _on_exception(self, uc: AArch64Engine, intno: int, _data: Any) -> None:
        """An exception unicorn stopped at (see :mod:`traps`): PSCI, WFI, or the guest's."""
        pc = self.pc
        esr, far = self._syndrome.read()
        if intno == EXCP_UDEF and self.system_registers is not None and self._serve(uc, pc, esr):
            return
        action = classify(intno, esr)
        if action is TrapAction.PSCI:
            self._psci(uc, pc)  # unicorn reports HVC/SMC with the PC past the call
            return
        if action is TrapAction.WFI:
            uc.reg_write(UC_ARM64_REG_PC, pc + 4)
            if pc + 4 == self.until:
                # unicorn ends emu_start at its "until" address by imitating a WFI there,
                # which HCR_EL2.TWI traps like a real one (with the PC 4 bytes early).
                uc.emu_stop()
                return
            self.wfi_trapped = True
            self.request_exit()
            return
        if action is TrapAction.VECTOR:
            self.exceptions_vectored += 1
            take_exception(
                uc,
                ExceptionKind.SYNCHRONOUS,
                pc,
                esr=esr,
                far=far if carries_fault_address(intno) else None,
            )
            return
        self.stop(
            StopReason.CPU_EXCEPTION,
            GuestDiagnostic(
                f"{self.vm.name}: the guest raised a {exception_name(intno)} at {pc:#x} "
                f"(syndrome {esr:#x}) that the VMM cannot deliver",
                pc=pc,
                registers=self.registers(),
            ),
        )

    def _psci(self, uc: AArch64Engine, pc: int) -> None:
        self.psci_calls += 1
        function_id = int(uc.reg_read(UC_ARM64_REG_X0))
        args = (
            int(uc.reg_read(UC_ARM64_REG_X1)),
            int(uc.reg_read(UC_ARM64_REG_X2)),
            int(uc.reg_read(UC_ARM64_REG_X3)),
        )
        outcome = handle_psci(function_id, args, self.power)
        uc.reg_write(UC_ARM64_REG_X0, outcome.x0)
        uc.reg_write(UC_ARM64_REG_PC, pc)
        if outcome.action is PsciAction.SYSTEM_OFF:
            self.stop(StopReason.SYSTEM_OFF)
        elif outcome.action is PsciAction.SYSTEM_RESET:
            self.stop(StopReason.SYSTEM_RESET)
        elif outcome.action is PsciAction.CPU_OFF:
            # This vCPU stops; the event loop ends the run when no vCPU is left on.
            self.powered = False
            self.request_exit()

    # -- system registers the CPU model lacks ---------------------------------------------
    def serve_system_registers(
        self, registers: TrappedSystemRegisters, id_registers: dict[SysReg, int]
    ) -> None:
        """Serve ``registers`` (a GICv3's ICC_*) from this vCPU's undefined instructions,
        and trap EL1's ID register reads (``HCR_EL2.TID3``) to report ``id_registers``."""
        self.system_registers = registers
        self.id_registers = dict(id_registers)
        self.hcr = GUEST_HCR_EL2 | HCR_TID3
        self.uc.cpr_write(*HCR_EL2, self.hcr)
        self._virq = False

    def _serve(self, uc: AArch64Engine, pc: int, esr: int) -> bool:
        """Emulate a trapped or undefined MRS/MSR the VMM provides; False: not ours."""
        move = trapped_move(uc, self.vm.ram, pc, esr)
        registers = self.system_registers
        if move is None or registers is None:
            return False
        if not emulate_move(uc, move, registers, self.id_registers, self.index, _GPR_IDS):
            return False
        self.system_register_accesses += 1
        uc.reg_write(UC_ARM64_REG_PC, pc + 4)
        # An acknowledge drops the IRQ input at once, or the guest would take it again.
        self.update_virtual_irq()
        return True

    # -- code written by another vCPU ------------------------------------------------------
    def watch_instruction_cache(self) -> None:
        """Hook ``IC`` instructions, so code another vCPU runs is retranslated.

        unicorn notices self-modifying code only within one engine; an ``IC``
        invalidation is when the other engines' translations go stale (see
        :mod:`instruction_cache`).
        """
        hook_instruction_cache_invalidations(self.uc, self._instruction_cache_invalidated)

    def _instruction_cache_invalidated(self) -> None:
        if self.code_changed is not None:
            self.code_changed()

    # -- trapped system registers ----------------------------------------------------------
    def _on_msr(self, uc: AArch64Engine, reg: int, cp: Any, _data: Any) -> int:
        del uc, reg
        if not self.timer.write(_cp_key(cp), int(cp.val)):
            return 0
        self.request_exit()  # the timer deadline moved: the loop recomputes its slice
        return 1
