"""PSCI, the firmware interface a guest uses to power CPUs and the system on and off.

Guests call it with ``HVC #0`` (or ``SMC #0``) following the SMC Calling Convention:
function id in ``x0``, arguments in ``x1``-``x3``, result in ``x0``.  On seL4 these calls
trap to the VMM as ``HVC``/``SMC`` faults and libvmm's ``handle_psci`` answers them; this
module is that handler, independent of the CPU emulator: it returns what to put in ``x0``
and what the VMM must do next.  The power state of the VM's vCPUs (``CPU_ON``,
``AFFINITY_INFO``) comes from a :class:`CpuPower`, which the event loop implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

PSCI_VERSION = 0x8400_0000
PSCI_CPU_SUSPEND = 0xC400_0001
PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON = 0xC400_0003
PSCI_AFFINITY_INFO = 0xC400_0004
PSCI_MIGRATE_INFO_TYPE = 0x8400_0006
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
SMCCC_VERSION = 0x8000_0000

#: PSCI return codes (signed, returned in x0 as 64-bit two's complement).
PSCI_SUCCESS = 0
PSCI_NOT_SUPPORTED = -1
PSCI_INVALID_PARAMETERS = -2
PSCI_ALREADY_ON = -4
#: The affinity fields of an MPIDR (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0).
MPIDR_AFFINITY_MASK = 0xFF_00FF_FFFF
#: MIGRATE_INFO_TYPE: "Trusted OS not present or does not require migration".
MIGRATE_NOT_REQUIRED = 2

#: PSCI 1.0, what libvmm reports.
VERSION_1_0 = 0x0001_0000
#: SMCCC 1.1.
SMCCC_VERSION_1_1 = 0x0001_0001

_SUPPORTED = frozenset(
    {
        PSCI_VERSION,
        PSCI_CPU_ON,
        PSCI_CPU_OFF,
        PSCI_AFFINITY_INFO,
        PSCI_MIGRATE_INFO_TYPE,
        PSCI_SYSTEM_OFF,
        PSCI_SYSTEM_RESET,
        PSCI_FEATURES,
        PSCI_CPU_SUSPEND,
    }
)


class PsciAction(Enum):
    """What the VMM does after answering."""

    CONTINUE = "continue"
    SYSTEM_OFF = "system-off"
    SYSTEM_RESET = "system-reset"
    #: The calling vCPU stops (CPU_OFF); when it was the last one running the VM halts.
    CPU_OFF = "cpu-off"
    #: CPU_SUSPEND: behaves as WFI.
    SUSPEND = "suspend"


class AffinityState(IntEnum):
    """AFFINITY_INFO's answers (PSCI 1.0, 5.7)."""

    ON = 0
    OFF = 1
    ON_PENDING = 2


class CpuPower(Protocol):
    """The VM's vCPUs as PSCI powers them, by MPIDR affinity value."""

    def cpu_state(self, mpidr: int) -> AffinityState | None:
        """The state of the vCPU with this MPIDR, or None if there is none."""
        ...

    def cpu_on(self, mpidr: int, entry: int, context_id: int) -> None:
        """Power the (off) vCPU on at ``entry`` in EL1h with ``x0 = context_id``."""
        ...


class OneCpu:
    """A VM with a single vCPU, MPIDR 0, always on: PSCI's view without an event loop."""

    def cpu_state(self, mpidr: int) -> AffinityState | None:
        return AffinityState.ON if mpidr == 0 else None

    def cpu_on(self, mpidr: int, entry: int, context_id: int) -> None:
        raise AssertionError("the only vCPU is always on")


@dataclass(frozen=True)
class PsciOutcome:
    result: int
    action: PsciAction = PsciAction.CONTINUE

    @property
    def x0(self) -> int:
        """The result as the 64-bit register value the guest reads."""
        return self.result & ((1 << 64) - 1)


def handle_psci(
    function_id: int, args: tuple[int, int, int], power: CpuPower | None = None
) -> PsciOutcome:
    """Answer one PSCI call from a guest whose vCPUs ``power`` describes (default: one).

    ``CPU_ON`` is synchronous: the target is on when the call returns, so ``ON_PENDING``
    is never reported; a target that does not exist gets ``INVALID_PARAMETERS``, one that
    is on ``ALREADY_ON`` (PSCI 1.0, 5.6).
    """
    power = power if power is not None else OneCpu()
    function_id &= 0xFFFF_FFFF
    target = args[0]
    if function_id == PSCI_VERSION:
        return PsciOutcome(VERSION_1_0)
    if function_id == SMCCC_VERSION:
        return PsciOutcome(SMCCC_VERSION_1_1)
    if function_id in (PSCI_FEATURES,):
        return PsciOutcome(
            PSCI_SUCCESS if (target & 0xFFFF_FFFF) in _SUPPORTED else PSCI_NOT_SUPPORTED
        )
    if function_id in (PSCI_CPU_ON, PSCI_CPU_ON & ~0x4000_0000):
        mpidr = target & MPIDR_AFFINITY_MASK
        state = power.cpu_state(mpidr)
        if state is None:
            return PsciOutcome(PSCI_INVALID_PARAMETERS)
        if state is not AffinityState.OFF:
            return PsciOutcome(PSCI_ALREADY_ON)
        entry, context_id = args[1], args[2]
        if function_id == PSCI_CPU_ON & ~0x4000_0000:  # SMC32: 32-bit arguments
            entry, context_id = entry & 0xFFFF_FFFF, context_id & 0xFFFF_FFFF
        power.cpu_on(mpidr, entry, context_id)
        return PsciOutcome(PSCI_SUCCESS)
    if function_id in (PSCI_AFFINITY_INFO, PSCI_AFFINITY_INFO & ~0x4000_0000):
        state = power.cpu_state(target & MPIDR_AFFINITY_MASK)
        if state is None or args[1] != 0:  # only affinity level 0 (a single vCPU) exists
            return PsciOutcome(PSCI_INVALID_PARAMETERS)
        return PsciOutcome(int(state))
    if function_id == PSCI_MIGRATE_INFO_TYPE:
        return PsciOutcome(MIGRATE_NOT_REQUIRED)
    if function_id == PSCI_SYSTEM_OFF:
        return PsciOutcome(PSCI_SUCCESS, PsciAction.SYSTEM_OFF)
    if function_id == PSCI_SYSTEM_RESET:
        return PsciOutcome(PSCI_SUCCESS, PsciAction.SYSTEM_RESET)
    if function_id == PSCI_CPU_OFF:
        return PsciOutcome(PSCI_SUCCESS, PsciAction.CPU_OFF)
    if function_id in (PSCI_CPU_SUSPEND, PSCI_CPU_SUSPEND & ~0x4000_0000):
        return PsciOutcome(PSCI_SUCCESS, PsciAction.SUSPEND)
    return PsciOutcome(PSCI_NOT_SUPPORTED)
