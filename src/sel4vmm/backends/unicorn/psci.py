"""PSCI, the firmware interface a guest uses to power CPUs and the system on and off.

Guests call it with ``HVC #0`` (or ``SMC #0``) following the SMC Calling Convention:
function id in ``x0``, arguments in ``x1``-``x3``, result in ``x0``.  On seL4 these calls
trap to the VMM as ``HVC``/``SMC`` faults and libvmm's ``handle_psci`` answers them; this
module is that handler, independent of the CPU emulator: it returns what to put in ``x0``
and what the VMM must do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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
    #: The calling vCPU stops (CPU_OFF); with one vCPU the VM halts.
    CPU_OFF = "cpu-off"
    #: CPU_SUSPEND: behaves as WFI.
    SUSPEND = "suspend"


@dataclass(frozen=True)
class PsciOutcome:
    result: int
    action: PsciAction = PsciAction.CONTINUE

    @property
    def x0(self) -> int:
        """The result as the 64-bit register value the guest reads."""
        return self.result & ((1 << 64) - 1)


def handle_psci(function_id: int, args: tuple[int, int, int], online_cpus: int = 1) -> PsciOutcome:
    """Answer one PSCI call from a guest with ``online_cpus`` vCPUs (only vCPU 0 exists).

    Secondary vCPUs are not emulated yet: ``CPU_ON`` for an MPIDR other than 0 is refused
    with ``INVALID_PARAMETERS`` (the target does not exist), for 0 with ``ALREADY_ON``.
    """
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
        mpidr = target & 0xFF_00FF_FFFF
        if mpidr < online_cpus:
            return PsciOutcome(PSCI_ALREADY_ON)
        return PsciOutcome(PSCI_INVALID_PARAMETERS)
    if function_id in (PSCI_AFFINITY_INFO, PSCI_AFFINITY_INFO & ~0x4000_0000):
        mpidr = target & 0xFF_00FF_FFFF
        return PsciOutcome(0 if mpidr < online_cpus else PSCI_INVALID_PARAMETERS)  # 0 = ON
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
