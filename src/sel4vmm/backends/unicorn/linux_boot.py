"""Booting an arm64 Linux Image on the emulated board with sel4vmm's image pipeline.

The same pipeline and device-tree handling as ``run --backend qemu``: the kernel is
recognised (a gzip'd ``vmlinuz`` is inflated), placed by its header (``text_offset``,
``image_size``, a 2 MiB-aligned base), the initrd and DTB placed with every check
:mod:`sel4vmm.images.placement` makes, ``/memory`` and ``/chosen`` patched, and all of it
written through the VM's guest RAM.  The device tree is the user's (``--dtb``, or
``--dts`` with ``--overlay``s) or, without one, the board's own
(:func:`~.devicetree.build_device_tree`), which describes exactly the devices this VMM
emulates.

A kernel is classified before anything runs (:func:`classify_kernel`): an arm64 Image
boots by the Linux boot protocol, a file of no known format is a bare-metal binary
loaded at RAM + 0x80000 as before, and anything else (an x86 bzImage, an ELF, a zImage, a
uImage, a DTB, a cpio) is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unicorn.arm64_const import (
    UC_ARM64_REG_PC,
    UC_ARM64_REG_PSTATE,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
    UC_ARM64_REG_X3,
)

from sel4vmm.backends.unicorn.board import EmulatedBoard
from sel4vmm.backends.unicorn.sysregs import SPSR_EL1
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.detect import KernelImage, read_dtb, read_kernel
from sel4vmm.images.dtb import DeviceTree, compile_dts
from sel4vmm.images.loader import load_boot
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.prepare import PreparedBoot, prepare_arm64_linux

_REGISTERS = {
    "pc": UC_ARM64_REG_PC,
    "x0": UC_ARM64_REG_X0,
    "x1": UC_ARM64_REG_X1,
    "x2": UC_ARM64_REG_X2,
    "x3": UC_ARM64_REG_X3,
}


@dataclass(frozen=True)
class LinuxBootFiles:
    """What a Linux boot is made of besides the kernel: initrd, device tree, command line."""

    initrd: Path | None = None
    dtb: Path | None = None
    dts: Path | None = None
    overlays: Sequence[Path] = ()
    bootargs: str | None = None

    @property
    def any(self) -> bool:
        return bool(
            self.initrd or self.dtb or self.dts or self.overlays or self.bootargs is not None
        )


def classify_kernel(path: Path) -> KernelImage | None:
    """The arm64 Image at ``path``, or None for a raw bare-metal binary; refuses the rest."""
    kernel = read_kernel(path, arch="aarch64")
    fmt = kernel.requirements.format
    if fmt == "arm64 Image":
        return kernel
    kernel.blob.close()
    if fmt == "raw binary":
        return None
    raise Sel4VmmError(
        f"{path} is {kernel.description}, which the emulator cannot boot: it runs arm64 "
        "Linux Images and raw AArch64 binaries",
        location=Location(str(path)),
        fix="pass an arm64 Image (arch/arm64/boot/Image, or Debian's vmlinuz-*-arm64)",
    )


def _device_tree(board: EmulatedBoard, files: LinuxBootFiles) -> tuple[DeviceTree, str]:
    if files.dts is not None:
        if files.dtb is not None:
            raise Sel4VmmError(
                "both a DTB and a DTS were given", fix="pass only one of --dtb and --dts"
            )
        return DeviceTree(compile_dts(files.dts, list(files.overlays)), str(files.dts)), str(
            files.dts
        )
    if files.overlays:
        raise Sel4VmmError(
            "overlays need a device tree source to apply to", fix="pass the base tree with --dts"
        )
    if files.dtb is not None:
        return read_dtb(files.dtb), str(files.dtb)
    source = "the emulated board's device tree"
    return DeviceTree(board.device_tree(), source), source


def prepare_linux(board: EmulatedBoard, kernel: KernelImage, files: LinuxBootFiles) -> PreparedBoot:
    """Open the initrd and device tree and place everything in the guest's RAM."""
    layout = board.layout
    tree, tree_source = _device_tree(board, files)
    return prepare_arm64_linux(
        RamWindow(layout.ram_base, layout.ram_size),
        kernel,
        tree,
        tree_source,
        initrd_path=files.initrd,
        bootargs=files.bootargs,
    )


def load_linux(
    board: EmulatedBoard,
    kernel: KernelImage,
    files: LinuxBootFiles,
    virtio: VirtioBackends | None = None,
) -> int:
    """Place and write the boot into guest RAM and set vCPU 0's entry state; the entry PC.

    The final DTB's ``virtio,mmio`` nodes become devices (``virtio`` names their backends).
    """
    boot = prepare_linux(board, kernel, files)
    assert boot.boot_data is not None
    source = str(files.dts or files.dtb or "the emulated board's device tree")
    board.attach_virtio(boot.boot_data, source, virtio or VirtioBackends())
    load_boot(board.vm.ram, boot)
    state = boot.boot_state
    assert state is not None
    uc = board.vcpu.uc
    registers = state.registers()
    for name, reg_id in _REGISTERS.items():
        uc.reg_write(reg_id, registers[name])
    uc.reg_write(UC_ARM64_REG_PSTATE, registers["pstate"])
    uc.cpr_write(*SPSR_EL1, 0)  # after PSTATE: unicorn recomputes its EL state
    return registers["pc"]
