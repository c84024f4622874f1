"""How a vCPU's run ends: the reason, and the diagnostic the VMM prints when it had to stop
the guest (where, what, and the register file) — never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class StopReason(Enum):
    """Why the vCPU stopped for good."""

    SYSTEM_OFF = "the guest powered the system off (PSCI SYSTEM_OFF)"
    SYSTEM_RESET = "the guest asked for a reset (PSCI SYSTEM_RESET)"
    CPU_OFF = "the guest turned its last running vCPU off (PSCI CPU_OFF)"
    GUEST_FAULT = "the guest made an access the VMM could not handle"
    CPU_EXCEPTION = "the guest hit an exception the VMM cannot deliver"
    IDLE_FOREVER = "the guest waits for an interrupt that can never arrive"
    TIME_LIMIT = "the run reached its time limit"
    KERNEL_PANIC = "the guest kernel panicked"
    CONSOLE_MATCH = "the console printed the text the run waits for"
    INTERRUPTED = "the run was interrupted"
    ESCAPE = "the VM was stopped from the console (Ctrl-A X)"


@dataclass
class GuestDiagnostic:
    """What the VMM reports when it stops a guest: where, what, and the register file."""

    message: str
    pc: int
    registers: dict[str, int] = field(default_factory=dict)
    address: int | None = None
    access: str | None = None

    def __str__(self) -> str:
        lines = [self.message, f"  pc  {self.pc:#018x}"]
        if self.address is not None:
            lines.append(f"  address {self.address:#x} ({self.access})")
        names = [n for n in self.registers if n.startswith("x")]
        for i in range(0, len(names), 4):
            lines.append(
                "  " + "  ".join(f"{n:>3} {self.registers[n]:#018x}" for n in names[i : i + 4])
            )
        for name in ("sp", "pstate", "elr_el1", "esr_el1", "vbar_el1"):
            if name in self.registers:
                lines.append(f"  {name} {self.registers[name]:#x}")
        return "\n".join(lines)
