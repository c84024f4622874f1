"""The virtual GICv2: a distributor the VMM emulates and a CPU interface with list registers.

This is the split seL4 VMMs use on GICv2 (libvmm ``src/arch/aarch64/vgic``, libsel4vm's
``vgic``): the guest's accesses to the *distributor* fault into the VMM through a
fault-callback reservation (:meth:`~.distributor.Vgic.distributor_fault`), while the guest's *CPU
interface* is the hardware's virtual CPU interface (GICV), mapped straight into the guest.
The VMM injects an interrupt by writing it into a *list register*; the virtual CPU interface
presents it to the guest (IAR), and on EOI the list register empties and the VMM refills it
from its overflow queue (the maintenance interrupt).

With several vCPUs each has its own virtual CPU interface (its own list registers and
overflow queue), and the distributor banks the private interrupts per CPU as GICv2 does
(ARM IHI 0048B 3.3): SGIs and PPIs (INTID 0-31) have an enable, pending, active and
priority state per CPU, and a distributor access acts on the bank of the vCPU that made
it (the fault's ``vcpu``).  Shared peripheral interrupts go to the CPU interface that
``GICD_ITARGETSR`` names (the lowest-numbered target: GICv2 lets an implementation pick
one), and ``GICD_SGIR`` sends SGIs between vCPUs, the sender's number reaching the target
in ``GICC_IAR[12:10]``.

:class:`~.cpu_interface.VirtualCpuInterface` is that hardware here: the board maps it like a
passthrough device, so guest accesses to it never go through the VMM's fault path.

Modules: :mod:`.distributor` (the emulated GICD and injection), :mod:`.cpu_interface` (the
GICV frame and its list registers) and :mod:`.lines` (devices' level-triggered SPI lines).
"""

from sel4vmm.devices.gicv2.cpu_interface import (
    GICC_BPR,
    GICC_CTLR,
    GICC_DIR,
    GICC_EOIR,
    GICC_HPPIR,
    GICC_IAR,
    GICC_IIDR,
    GICC_PMR,
    GICC_RPR,
    NUM_SGIS,
    SPURIOUS_INTID,
    InterruptState,
    ListRegister,
    ListRegisterState,
    VirtualCpuInterface,
)
from sel4vmm.devices.gicv2.distributor import (
    CPU_INTERFACE_FRAME_SIZE,
    DEFAULT_LIST_REGISTERS,
    DEFAULT_NUM_LINES,
    DISTRIBUTOR_FRAME_SIZE,
    GICD_CPENDSGIR,
    GICD_CTLR,
    GICD_ICACTIVER,
    GICD_ICENABLER,
    GICD_ICFGR,
    GICD_ICPENDR,
    GICD_IGROUPR,
    GICD_IIDR,
    GICD_IPRIORITYR,
    GICD_ISACTIVER,
    GICD_ISENABLER,
    GICD_ISPENDR,
    GICD_ITARGETSR,
    GICD_SGIR,
    GICD_SPENDSGIR,
    GICD_TYPER,
    MAX_CPUS,
    NUM_PRIVATE,
    Vgic,
)
from sel4vmm.devices.gicv2.lines import VgicLines

__all__ = [
    "CPU_INTERFACE_FRAME_SIZE",
    "DEFAULT_LIST_REGISTERS",
    "DEFAULT_NUM_LINES",
    "DISTRIBUTOR_FRAME_SIZE",
    "GICC_BPR",
    "GICC_CTLR",
    "GICC_DIR",
    "GICC_EOIR",
    "GICC_HPPIR",
    "GICC_IAR",
    "GICC_IIDR",
    "GICC_PMR",
    "GICC_RPR",
    "GICD_CPENDSGIR",
    "GICD_CTLR",
    "GICD_ICACTIVER",
    "GICD_ICENABLER",
    "GICD_ICFGR",
    "GICD_ICPENDR",
    "GICD_IGROUPR",
    "GICD_IIDR",
    "GICD_IPRIORITYR",
    "GICD_ISACTIVER",
    "GICD_ISENABLER",
    "GICD_ISPENDR",
    "GICD_ITARGETSR",
    "GICD_SGIR",
    "GICD_SPENDSGIR",
    "GICD_TYPER",
    "MAX_CPUS",
    "NUM_PRIVATE",
    "NUM_SGIS",
    "SPURIOUS_INTID",
    "InterruptState",
    "ListRegister",
    "ListRegisterState",
    "Vgic",
    "VgicLines",
    "VirtualCpuInterface",
]
