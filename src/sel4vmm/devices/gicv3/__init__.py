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
2. MRS/MSR: unicorn's ``UC_HOOK_INSN`` for ``UC_ARM64_INS_MRS``/``MSR``/``SYS`` hands the
   hook a ``uc_arm64_cp_reg`` (``op0, op1, crn, crm, op2, val``).  The hook does
   ``name = icc_register((op0, op1, crn, crm, op2))``; if it is not None it answers with
   ``gic.read_sysreg(cpu, name)`` or calls ``gic.write_sysreg(cpu, name, val)`` and returns
   True (instruction handled), else lets unicorn treat it as before.
3. After a change (``on_change``) and before resuming a vCPU, the backend asserts that
   vCPU's IRQ input exactly when ``gic.pending_irq(cpu)``; the guest then reads
   ``ICC_IAR1_EL1`` in its handler.
4. Devices get ``gic.line(spi)`` (an :class:`InterruptLine`: ``raise_()`` / ``lower()``);
   the timers get ``gic.line(27, cpu)`` (virtual timer PPI) and ``gic.line(30, cpu)``.
"""

from sel4vmm.devices.gicv3.cpu_interface import ICC_ENCODINGS, CpuInterface, icc_register
from sel4vmm.devices.gicv3.gic import DEFAULT_SPIS, Gicv3
from sel4vmm.devices.gicv3.layout import Gicv3Layout, gicv3_layout_from_dtb
from sel4vmm.devices.gicv3.lines import Gicv3Line, InterruptLine
from sel4vmm.devices.gicv3.state import SPURIOUS_INTID

__all__ = [
    "DEFAULT_SPIS",
    "ICC_ENCODINGS",
    "SPURIOUS_INTID",
    "CpuInterface",
    "Gicv3",
    "Gicv3Layout",
    "Gicv3Line",
    "InterruptLine",
    "gicv3_layout_from_dtb",
    "icc_register",
]
