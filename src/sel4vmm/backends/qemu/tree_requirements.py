"""What the guest's device tree asks of the QEMU machine: its GIC and its PSCI conduit.

On seL4 these are the VMM's business (libvmm's vGIC, its SMC handler for PSCI).  Under
QEMU the emulated board must match them, or Linux finds no interrupt controller at the
addresses it was told, or its ``poweroff`` traps as an undefined instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.fdt_tree import Fdt, read_fdt

#: Compatible strings of the interrupt controllers QEMU ``virt`` can present.
GICV2_COMPATIBLES = ("arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic")
GICV3_COMPATIBLES = ("arm,gic-v3",)


@dataclass(frozen=True)
class TreeRequirements:
    gic_version: int
    #: PSCI over SMC needs an emulated EL2 (``virtualization=on``); HVC needs none.
    psci_smc: bool


def _compatibles(fdt: Fdt) -> set[str]:
    """Every compatible string of every node."""
    found: set[str] = set()
    for node in fdt.root.walk():
        raw = node.properties.get("compatible", b"")
        found.update(s.decode(errors="replace") for s in raw.split(b"\0") if s)
    return found


def tree_requirements(dtb: bytes, source: str = "the device tree") -> TreeRequirements:
    """Read the GIC version and PSCI method from a final DTB."""
    fdt = read_fdt(dtb, source)
    compatibles = _compatibles(fdt)
    if compatibles.intersection(GICV3_COMPATIBLES):
        gic = 3
    elif compatibles.intersection(GICV2_COMPATIBLES):
        gic = 2
    else:
        raise Sel4VmmError(
            f"{source} has no interrupt controller QEMU virt emulates "
            f"({', '.join(GICV2_COMPATIBLES + GICV3_COMPATIBLES)})",
            fix="use a device tree written for qemu_virt_aarch64 (libvmm's board/"
            "qemu_virt_aarch64/linux.dts)",
        )
    psci = fdt.find("/psci")
    method = b"smc"
    if psci is not None and "method" in psci.properties:
        method = psci.properties["method"].rstrip(b"\0")
    if method not in (b"smc", b"hvc"):
        raise Sel4VmmError(
            f"{source}: PSCI method {method.decode(errors='replace')!r} is neither smc nor hvc",
            fix='set method = "smc" in the /psci node',
        )
    return TreeRequirements(gic_version=gic, psci_smc=method == b"smc")
