"""Is this KVM hardware-backed, or a paravirtualised nested KVM where guest kernel code crawls?

Some hosts (nested cloud VMs with a paravirtual KVM) run guest *user* mode at native speed
but guest *kernel* mode thousands of times slower.  Booting a compressed Linux there takes
many minutes because the kernel decompresses itself in kernel mode, so long boots are only
worth attempting when kernel-mode guest code runs at hardware speed.  There is no flag
that says which kind of KVM we have, so we measure: a tight ``dec``/``jnz`` loop at CPL 0
takes well under 1 ns per iteration on VT-x/AMD-V and hundreds of ns when emulated.

``SEL4VMM_KVM_HARDWARE=1`` (or ``0``) overrides the measurement, for CI machines that
know what they are.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import time
from dataclasses import dataclass
from typing import Final

from sel4vmm.backends.kvm import ioctls, x86_boot
from sel4vmm.backends.kvm.system import KvmSystem
from sel4vmm.backends.kvm.vcpu import KvmVcpu
from sel4vmm.backends.kvm.vm import KvmVm

OVERRIDE_VARIABLE: Final = "SEL4VMM_KVM_HARDWARE"
#: Iterations of the probe loop: ~0.1 ms on hardware, ~0.1 s where kernel mode is emulated.
PROBE_ITERATIONS: Final = 200_000
#: Slower than this per iteration means kernel mode is not running on the hardware.
HARDWARE_NS_PER_ITERATION: Final = 20.0
_PROBE_MEMORY: Final = 2 << 20
_CODE_ADDR: Final = 0x10_0000


@dataclass(frozen=True)
class KernelModeSpeed:
    ns_per_iteration: float
    overridden: bool = False

    @property
    def hardware_backed(self) -> bool:
        return self.ns_per_iteration <= HARDWARE_NS_PER_ITERATION

    def describe(self) -> str:
        if self.overridden:
            kind = "hardware" if self.hardware_backed else "not hardware"
            return f"KVM declared {kind}-backed by {OVERRIDE_VARIABLE}"
        return (
            f"guest kernel-mode loop: {self.ns_per_iteration:.1f} ns per iteration "
            f"(hardware-backed KVM: <= {HARDWARE_NS_PER_ITERATION:.0f} ns)"
        )


def _probe_code(iterations: int) -> bytes:
    """``mov rcx, n; 1: dec rcx; jnz 1b; mov dx, 0xf4; out dx, eax; jmp .``"""
    return (
        b"\x48\xb9"
        + struct.pack("<Q", iterations)
        + b"\x48\xff\xc9\x75\xfb"
        + b"\x66\xba\xf4\x00\xef\xeb\xfe"
    )


def measure_kernel_mode_speed(iterations: int = PROBE_ITERATIONS) -> KernelModeSpeed:
    """Run the probe loop at CPL 0 in a throw-away VM and time it (honours the override)."""
    override = os.environ.get(OVERRIDE_VARIABLE)
    if override in ("0", "1"):
        return KernelModeSpeed(0.0 if override == "1" else float("inf"), overridden=True)
    memory = mmap.mmap(-1, _PROBE_MEMORY)
    host = ctypes.c_char.from_buffer(memory)
    try:
        with KvmSystem() as system:
            vm = KvmVm(system)
            vcpu = KvmVcpu(vm)
            try:
                vm.set_memory_region(0, 0, _PROBE_MEMORY, ctypes.addressof(host))
                layout = x86_boot.LongModeLayout(identity_map_bytes=1 << 30)

                def write(addr: int, data: bytes) -> None:
                    memory[addr : addr + len(data)] = data

                x86_boot.write_long_mode_tables(layout, write)
                write(_CODE_ADDR, _probe_code(iterations))
                sregs = vcpu.get_sregs()
                x86_boot.long_mode_sregs(sregs, layout)
                vcpu.set_sregs(sregs)
                vcpu.set_regs(x86_boot.entry_regs(x86_boot.EntryState(rip=_CODE_ADDR)))
                start = time.perf_counter()
                reason = vcpu.run()
                elapsed = time.perf_counter() - start
                if reason != ioctls.KVM_EXIT_IO:
                    return KernelModeSpeed(float("inf"))
            finally:
                vcpu.close()
                vm.close()
    finally:
        del host
        memory.close()
    return KernelModeSpeed(elapsed * 1e9 / iterations)
