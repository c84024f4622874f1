"""The system registers the VMM sets on a unicorn AArch64 engine, and why each one.

A seL4 guest runs at EL1 with a hypervisor (seL4) at EL2 above it.  unicorn's CPU starts
with EL2 and EL3 present but configured for AArch32 below them (``SCR_EL3.RW`` = 0,
``HCR_EL2.RW`` = 0), so its MMU walks EL1's translation tables in the 32-bit format and
a 64-bit kernel faults as soon as it turns the MMU on (Debian's kernel: a prefetch abort
at 0x40d7d3f4).  :func:`configure_guest_el1` makes the engine what a guest of seL4 sees:

* ``SCR_EL3`` = NS | RW | HCE: EL1 is 64-bit and non-secure, and ``HVC`` is a hypervisor
  call (unicorn then reports it as exception 11, ``EXCP_HVC``, with the PC past it,
  instead of an undefined instruction);
* ``HCR_EL2`` = RW | IMO | TWI: EL1 is 64-bit, physical IRQs belong to the hypervisor so
  the *virtual* IRQ input (``HCR_EL2.VI``) drives EL1's IRQ exception — unicorn then takes
  the interrupt itself, at the first instruction boundary where ``PSTATE.I`` is clear,
  with the architectural entry (``ELR``, ``SPSR``, SP banking); and ``WFI`` traps to the
  hypervisor (exception 1 with syndrome EC 0x01 and the PC at the ``WFI``), which is how
  a seL4 VMM learns that a vCPU idles;
* ``VMPIDR_EL2``: what EL1 reads as ``MPIDR_EL1`` (unicorn reports 0x80000000 on every
  instance otherwise), so each vCPU has its own affinity without trapping ``MRS``;
* with a GICv3, ``HCR_EL2.TID3`` as well: EL1's reads of the ID registers trap to the
  hypervisor, so the VMM can report ``ID_AA64PFR0_EL1.GIC`` = 1 (system-register CPU
  interface present), which unicorn's CPU models only do with QEMU's own GICv3;
* ``CNTVOFF_EL2``: the offset of the virtual counter from the host's, which the VMM moves
  to skip guest time while every vCPU idles (:mod:`timer`).
"""

from __future__ import annotations

from sel4vmm.backends.unicorn.engine import AArch64Engine

#: System registers as (op0, op1, CRn, CRm, op2).
SysReg = tuple[int, int, int, int, int]
SCR_EL3: SysReg = (3, 6, 1, 1, 0)
HCR_EL2: SysReg = (3, 4, 1, 1, 0)
VMPIDR_EL2: SysReg = (3, 4, 0, 0, 5)
CNTVOFF_EL2: SysReg = (3, 4, 14, 0, 3)
SCTLR_EL1: SysReg = (3, 0, 1, 0, 0)
MPIDR_EL1: SysReg = (3, 0, 0, 0, 5)
SPSR_EL1: SysReg = (3, 0, 4, 0, 0)
ID_AA64PFR0_EL1: SysReg = (3, 0, 0, 4, 0)
#: ID_AA64PFR0_EL1.GIC, bits [27:24]: 1 = GICv3/v4 system-register CPU interface.
PFR0_GIC_SYSREGS = 1 << 24

SCR_NS = 1 << 0
SCR_HCE = 1 << 8
SCR_RW = 1 << 10
#: NS | RW | HCE.
GUEST_SCR_EL3 = SCR_NS | SCR_RW | SCR_HCE

HCR_IMO = 1 << 4
HCR_VI = 1 << 7
HCR_TWI = 1 << 13
HCR_TID3 = 1 << 18
HCR_RW = 1 << 31
GUEST_HCR_EL2 = HCR_RW | HCR_IMO | HCR_TWI

_MASK64 = (1 << 64) - 1


def configure_guest_el1(uc: AArch64Engine, mpidr: int) -> None:
    """Make ``uc`` a 64-bit EL1 guest of a hypervisor, with MPIDR ``mpidr`` (see above)."""
    uc.cpr_write(*SCR_EL3, GUEST_SCR_EL3)
    uc.cpr_write(*HCR_EL2, GUEST_HCR_EL2)
    uc.cpr_write(*VMPIDR_EL2, mpidr)


def set_virtual_irq(uc: AArch64Engine, asserted: bool, hcr: int = GUEST_HCR_EL2) -> None:
    """Drive the vCPU's virtual IRQ input (``HCR_EL2.VI``), as the GIC's list registers do;
    ``hcr`` is the rest of the vCPU's ``HCR_EL2`` (``GUEST_HCR_EL2``, plus TID3 with a GICv3)."""
    uc.cpr_write(*HCR_EL2, hcr | (HCR_VI if asserted else 0))


def is_id_register(encoding: SysReg) -> bool:
    """Whether ``HCR_EL2.TID3`` traps reads of ``encoding``: the ID group 3 space
    op0 = 3, op1 = 0, CRn = 0, CRm = 1..7 (reserved encodings there read as zero)."""
    op0, op1, crn, crm, _ = encoding
    return op0 == 3 and op1 == 0 and crn == 0 and 1 <= crm <= 7


def set_counter_offset(uc: AArch64Engine, offset: int) -> None:
    """Set ``CNTVOFF_EL2``: the guest's virtual counter reads host counter minus ``offset``."""
    uc.cpr_write(*CNTVOFF_EL2, offset & _MASK64)
