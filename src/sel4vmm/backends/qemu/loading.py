"""Place and load a Linux boot into shared guest RAM with sel4vmm's own image pipeline.

The images package does the work (format detection, DTB patching, placement checks,
chunked copies through ``vm.ram``); this module adds the two things only the QEMU backend
knows: the bottom 2 MiB of RAM belong to QEMU's generated DTB and the boot stub, so an
arm64 Image goes at the next 2 MiB-aligned base instead of at the RAM base libvmm uses;
and the stub that enters the kernel is written last, pointing at the placed DTB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sel4vmm.backends.qemu.shared_ram import SharedGuestRam
from sel4vmm.backends.qemu.stub import boot_stub
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.detect import read_dtb, read_kernel
from sel4vmm.images.dtb import DeviceTree, compile_dts
from sel4vmm.images.loader import LoadReport, ProgressCallback, load_boot
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.prepare import PreparedBoot, prepare_arm64_linux


@dataclass(frozen=True)
class BootFiles:
    """The images a run boots: a kernel, optionally an initrd, and one device tree
    (a DTB, or a DTS with overlays)."""

    kernel: Path
    initrd: Path | None = None
    dtb: Path | None = None
    dts: Path | None = None
    overlays: Sequence[Path] = ()
    bootargs: str | None = None

    def open_tree(self) -> DeviceTree:
        if self.dts is not None:
            if self.dtb is not None:
                raise Sel4VmmError(
                    "both a DTB and a DTS were given", fix="pass only one of --dtb and --dts"
                )
            data = compile_dts(self.dts, list(self.overlays))
            return DeviceTree(data, str(self.dts))
        if self.overlays:
            raise Sel4VmmError(
                "overlays need a device tree source to apply to",
                fix="pass the base tree with --dts",
            )
        if self.dtb is None:
            raise Sel4VmmError(
                "the QEMU backend needs the guest's device tree",
                fix="pass --dtb FILE, or --dts linux.dts [--overlay overlay.dts] (libvmm's "
                "board/qemu_virt_aarch64 has both)",
            )
        return read_dtb(self.dtb)

    @property
    def tree_source(self) -> str:
        return str(self.dts if self.dts is not None else self.dtb)


@dataclass(frozen=True)
class LoadedBoot:
    """A boot written into guest RAM: where everything went and the stub that enters it."""

    prepared: PreparedBoot
    report: LoadReport
    stub_addr: int
    dtb: bytes

    @property
    def dtb_addr(self) -> int:
        assert self.prepared.plan.boot_data is not None
        return self.prepared.plan.boot_data.addr


def prepare_for_qemu(
    ram: SharedGuestRam, files: BootFiles, tree: DeviceTree | None = None
) -> PreparedBoot:
    """Open the images and plan them into ``ram``'s guest RAM above QEMU's window.

    ``tree`` is ``files``' device tree when the caller opened it already; it is edited.
    """
    kernel = read_kernel(files.kernel, arch="aarch64")
    if kernel.requirements.format != "arm64 Image":
        raise Sel4VmmError(
            f"{files.kernel} is not an arm64 Linux Image ({kernel.description}); the QEMU "
            "backend boots Linux by the arm64 boot protocol",
            location=Location(str(files.kernel)),
            fix="pass arch/arm64/boot/Image (or a gzip'd vmlinuz); run bare-metal binaries "
            "with --backend emulator",
        )
    if tree is None:
        tree = files.open_tree()
    requirements = kernel.requirements
    kernel_addr = (
        requirements.load_address_for_base_at_or_above(ram.first_free)
        if requirements.fixed_address is None
        else None
    )
    boot = prepare_arm64_linux(
        RamWindow(ram.ram_base, ram.ram_size),
        kernel,
        tree,
        files.tree_source,
        initrd_path=files.initrd,
        bootargs=files.bootargs,
        kernel_addr=kernel_addr,
    )
    for item in boot.plan.placed:
        if item.addr < ram.first_free:
            raise Sel4VmmError(
                f"the {item.role} would go to [{item.addr:#x}, {item.end:#x}), but QEMU "
                f"writes its own device tree to [{ram.ram_base:#x}, {ram.first_free:#x}) at "
                "every reset",
                location=Location(item.source) if item.source else None,
                fix=f"load the {item.role} at or above {ram.first_free:#x}",
            )
    return boot


def load_for_qemu(
    ram: SharedGuestRam,
    files: BootFiles,
    tree: DeviceTree | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> LoadedBoot:
    """Prepare, write the images into the shared RAM, then write the boot stub."""
    boot = prepare_for_qemu(ram, files, tree)
    report = load_boot(ram.vm.ram, boot, progress=progress)
    plan = boot.plan
    assert plan.entry is not None and plan.boot_data is not None and boot.boot_data is not None
    ram.vm.ram.write(ram.stub_addr, boot_stub(plan.boot_data.addr, plan.entry))
    return LoadedBoot(boot, report, ram.stub_addr, boot.boot_data)
