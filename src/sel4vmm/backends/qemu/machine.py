"""The QEMU command line: QEMU plays the board, sel4vmm owns the memory.

Two boots are built from one machine description so that they differ only in who loads
the images (the benchmark compares them):

* :func:`sel4vmm_boot_command` - RAM is sel4vmm's shared file
  (``-object memory-backend-file,...,share=on`` + ``-M virt,memory-backend=``), no
  ``-kernel``; ``-device loader,addr=,cpu-num=0`` only sets the first CPU's PC to the boot
  stub sel4vmm wrote into that RAM.
* :func:`direct_kernel_command` - QEMU's own loader (``-kernel``/``-initrd``/``-dtb``/
  ``-append``) on anonymous RAM of the same size.

The machine is chosen to match what the guest's device tree expects, because on seL4 the
VMM provides what QEMU has to provide here: the GIC version of the tree's interrupt
controller, and an EL2 (``virtualization=on``) when the tree's PSCI ``method`` is ``smc`` -
QEMU handles PSCI calls on the SMC conduit only when the CPU has EL2 and no EL3, and on
the HVC conduit otherwise (``hw/arm/virt.c``), just as libvmm handles the guest's SMCs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sel4vmm.errors import Sel4VmmError

QEMU_BINARY: Final = "qemu-system-aarch64"
#: The Debian/Ubuntu package that installs ``qemu-system-aarch64``.
QEMU_PACKAGE: Final = "qemu-system-arm"
MEMORY_BACKEND_ID: Final = "sel4vmm-ram"
#: A CPU every QEMU since 2.x emulates quickly; ``max`` adds pointer authentication, whose
#: emulated QARMA cipher slows TCG down noticeably.
DEFAULT_CPU: Final = "cortex-a57"
#: A GICv2 has 8 CPU interfaces (GIC_NCPU); with a GICv3 QEMU virt takes at most 512 CPUs.
MAX_GICV2_CPUS: Final = 8
MAX_GICV3_CPUS: Final = 512


@dataclass(frozen=True)
class QemuMachine:
    """The emulated board: ``virt`` with the VM's vCPUs, a PL011 on stdio, nothing else."""

    ram_size: int
    cpu: str = DEFAULT_CPU
    #: vCPUs; QEMU starts all but the first powered off, for the guest's PSCI CPU_ON.
    cpus: int = 1
    gic_version: int = 2
    #: EL2 present (the guest's PSCI conduit is SMC, as on seL4 with libvmm).
    virtualization: bool = True
    #: Exit instead of resetting when the guest reboots or panics with ``panic=-1``.
    no_reboot: bool = True

    def __post_init__(self) -> None:
        if self.ram_size <= 0 or self.ram_size % (1 << 20):
            raise Sel4VmmError(
                f"QEMU machine RAM of {self.ram_size:#x} bytes is not a whole number of MiB",
                fix="give the VM RAM in whole MiB",
            )
        if self.gic_version not in (2, 3):
            raise Sel4VmmError(
                f"GIC version {self.gic_version} is not one QEMU virt emulates",
                fix="use a device tree with an arm,cortex-a15-gic (v2) or arm,gic-v3",
            )
        limit = MAX_GICV2_CPUS if self.gic_version == 2 else MAX_GICV3_CPUS
        if not 1 <= self.cpus <= limit:
            raise Sel4VmmError(
                f"{self.cpus} vCPUs: QEMU virt with a GICv{self.gic_version} takes 1 to {limit}",
                fix="give the VM fewer vCPUs"
                + (" (or use a GICv3 device tree)" if self.gic_version == 2 else ""),
            )

    def machine_option(self, memory_backend: str | None = None) -> str:
        """The ``-M`` value."""
        parts = [
            "virt",
            f"gic-version={self.gic_version}",
            f"virtualization={'on' if self.virtualization else 'off'}",
        ]
        if memory_backend is not None:
            parts.append(f"memory-backend={memory_backend}")
        return ",".join(parts)

    def common_arguments(self) -> list[str]:
        """Everything both boots share: CPU, accelerator and a console on stdio only."""
        arguments = [
            "-cpu",
            self.cpu,
            "-smp",
            str(self.cpus),
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ]
        if self.no_reboot:
            arguments.append("-no-reboot")
        return arguments


def find_qemu(binary: str | os.PathLike[str] | None = None) -> str:
    """The QEMU executable: ``binary`` if given, else ``qemu-system-aarch64`` on PATH."""
    name = os.fspath(binary) if binary is not None else QEMU_BINARY
    found = shutil.which(name)
    if found is None:
        raise Sel4VmmError(
            f"{name} was not found"
            + (" on PATH" if os.sep not in name else "")
            + "; the QEMU backend runs guests in it",
            fix=f"install it (Debian/Ubuntu: apt-get install {QEMU_PACKAGE}) or pass the path "
            "of a qemu-system-aarch64 binary",
        )
    return found


def sel4vmm_boot_command(
    qemu: str,
    machine: QemuMachine,
    ram_file: Path,
    stub_addr: int,
    *,
    qmp_socket: Path | None = None,
) -> list[str]:
    """Boot from RAM sel4vmm prepares in ``ram_file``, starting at the stub.

    With ``qmp_socket`` QEMU starts paused (``-S``) with a QMP server there, so it can
    initialise while sel4vmm is still loading; ``cont`` on the socket starts the CPU.
    """
    backend = (
        f"memory-backend-file,id={MEMORY_BACKEND_ID},mem-path={_option_value(ram_file)},"
        f"share=on,size={machine.ram_size}"
    )
    command = [
        qemu,
        "-M",
        machine.machine_option(MEMORY_BACKEND_ID),
        "-object",
        backend,
        *machine.common_arguments(),
        "-device",
        f"loader,addr={stub_addr:#x},cpu-num=0",
    ]
    if qmp_socket is not None:
        command += ["-S", "-qmp", f"unix:{_option_value(qmp_socket)},server=on,wait=off"]
    return command


def direct_kernel_command(
    qemu: str,
    machine: QemuMachine,
    kernel: Path,
    *,
    initrd: Path | None = None,
    dtb: Path | None = None,
    append: str | None = None,
) -> list[str]:
    """QEMU's own Linux loader on the same machine: the baseline sel4vmm is compared with."""
    command = [
        qemu,
        "-M",
        machine.machine_option(),
        "-m",
        f"{machine.ram_size >> 20}M",
        *machine.common_arguments(),
        "-kernel",
        str(kernel),
    ]
    if initrd is not None:
        command += ["-initrd", str(initrd)]
    if dtb is not None:
        command += ["-dtb", str(dtb)]
    if append is not None:
        command += ["-append", append]
    return command


def dump_dtb_command(qemu: str, machine: QemuMachine, output: Path) -> list[str]:
    """Ask QEMU for the device tree it generates for ``machine`` (``dumpdtb``) and exit."""
    return [
        qemu,
        "-M",
        f"{machine.machine_option()},dumpdtb={_option_value(output)}",
        "-m",
        f"{machine.ram_size >> 20}M",
        *machine.common_arguments(),
    ]


def _option_value(path: Path) -> str:
    """A path inside a QEMU ``key=value,...`` option: commas are escaped by doubling."""
    return str(path).replace(",", ",,")
