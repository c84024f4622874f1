"""A GICv3 model: distributor and redistributors through faults, the CPU interface as ICC_*
system registers, SGI/PPI banking per PE and affinity routing of SPIs (ARM IHI 0069H).

Modules, one concept each: :mod:`.state` (interrupt and PE state, the signalling rules),
:mod:`.bank` (the per-interrupt register layout GICD and GICR share), :mod:`.distributor`,
:mod:`.redistributor`, :mod:`.cpu_interface` (ICC_* and their encodings), :mod:`.lines`
(the raise/lower line shape), :mod:`.layout` (frames from an ``arm,gic-v3`` DTB node) and
:mod:`.gic` (the whole GIC).

Wiring it into a backend (what the unicorn backend's integration does):

1. ``layout = gicv3_layout_from_dtb(guest_dtb)``; ``gic = Gicv3(num_cpus, on_change=kick)``;
   ``gic.attach(vm, layout)`` reserves the 64 KiB distributor and 128 KiB per vCPU of
   redistributors in ``vm.memory`` with the model's fault callbacks: the backend's existing
   MMIO fault path (``vm.memory.handle_fault``) then serves them; the fault's ``vcpu`` is
   not needed (GICv3 frames are not banked by who accesses them).
2. MRS/MSR: unicorn 2.1's CPU models have no GIC CPU interface, so an ICC_* access is an
   undefined instruction.  Measured with unicorn 2.1.4: a ``UC_HOOK_INSN`` MRS/MSR hook is
   called for it, but a hook that returns 1 (claimed) makes unicorn execute the same
   instruction again, forever; returning 0 gives ``UC_HOOK_INTR`` intno 1 (EXCP_UDEF) with
   the PC at the instruction.  So the backend serves ICC_* in that UDEF path: ``move =
   decode_sysreg_move(word at PC)``; if ``icc_register(move.encoding)`` names one, MRS
   writes ``gic.read_sysreg(vcpu.index, name)`` to X[rt] (nothing for rt = 31, XZR;
   unicorn's X29/X30 ids are not ``X0 + 29/30``), MSR calls ``gic.write_sysreg(vcpu.index,
   name, X[rt])``, then PC += 4 and the run resumes, before the UDEF would be vectored to
   the guest
   (``tests/devices/gicv3/test_gicv3_unicorn.py`` does exactly this on a real unicorn).
   The encoding order ``(op0, op1, CRn, CRm, op2)`` is the backend's ``_cp_key``.  PE
   ``i``'s affinity must be the Aff fields of the MPIDR_EL1 reported for vCPU ``i`` (Aff0
   = ``i`` by default).  Linux also reads ID_AA64PFR0_EL1.GIC (bits 27:24) to know the CPU
   has the system-register interface: the backend should report 1 there with this GICv3.
3. After a change (``on_change``) and before resuming a vCPU, the backend asserts that
   vCPU's IRQ input exactly when ``gic.pending_irq(cpu)``; the guest then reads
   ``ICC_IAR1_EL1`` in its handler.
4. Devices get ``IrqLine(gic, spi)`` from ``devices/irq.py`` (``Gicv3.set_level`` is the
   ``InterruptController`` call) or ``gic.line(spi)`` (``raise_()`` / ``lower()``); a
   vCPU's timer drives ``gic.private_lines(cpu)`` (PPI 27 virtual, 30 physical).
"""

from sel4vmm.devices.gicv3.cpu_interface import (
    ICC_ENCODINGS,
    CpuInterface,
    Encoding,
    SysregMove,
    decode_sysreg_move,
    icc_register,
)
from sel4vmm.devices.gicv3.gic import DEFAULT_SPIS, Gicv3
from sel4vmm.devices.gicv3.layout import Gicv3Layout, gicv3_layout_from_dtb
from sel4vmm.devices.gicv3.lines import Gicv3Line, InterruptLine, PrivateLines
from sel4vmm.devices.gicv3.state import SPURIOUS_INTID

__all__ = [
    "DEFAULT_SPIS",
    "ICC_ENCODINGS",
    "SPURIOUS_INTID",
    "CpuInterface",
    "Encoding",
    "Gicv3",
    "Gicv3Layout",
    "Gicv3Line",
    "InterruptLine",
    "PrivateLines",
    "SysregMove",
    "decode_sysreg_move",
    "gicv3_layout_from_dtb",
    "icc_register",
]
