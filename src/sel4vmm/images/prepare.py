"""From a VM's configuration and image files to a checked, ready-to-load boot.

The order matters because the pieces depend on each other: the DTB must carry the initrd's
final address, but where the DTB goes depends on its size.  So the tree is first edited
with the guest RAM, ``bootargs``, ``stdout-path`` and *placeholder* initrd cells of the
final width; its size is then final, placement runs, and the placeholders are overwritten
in place with the chosen addresses.  On x86 the zero page plays the DTB's part.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.config.spec import Finding, RegionKind, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.bootstate import (
    Arm32BootState,
    Arm64BootState,
    X86BootState,
    arm32_boot_state,
    arm64_boot_state,
    build_x86_boot_data,
    x86_boot_data_size,
)
from sel4vmm.images.bzimage import BzImageHeader
from sel4vmm.images.detect import InitrdImage, KernelImage, read_dtb, read_initrd, read_kernel
from sel4vmm.images.dtb import DeviceTree, compile_dts
from sel4vmm.images.placement import (
    CAMKES_GENERATED_DTB_RESERVE,
    ImagePlan,
    PlacementRequest,
    RamWindow,
    plan_images,
)

BootState = Arm64BootState | Arm32BootState | X86BootState


@dataclass
class BootInputs:
    """Everything a boot is prepared from, already opened."""

    arch: str
    ram: Sequence[RamWindow]
    kernel: KernelImage | None
    initrd: InitrdImage | None = None
    #: The base device tree (arm); None with ``generate_dtb`` starts from an empty tree.
    device_tree: DeviceTree | None = None
    generate_dtb: bool = False
    bootargs: str | None = None
    stdout_path: str | None = None
    kernel_addr: int | None = None
    initrd_addr: int | None = None
    dtb_addr: int | None = None
    dtb_reserve: int | None = None
    locations: Mapping[str, Location] = field(default_factory=dict)
    dtb_source: str = ""


@dataclass
class PreparedBoot:
    """A placement plan plus the exact bytes and registers to boot with."""

    plan: ImagePlan
    kernel: KernelImage | None
    initrd: InitrdImage | None
    #: The final DTB (arm) or zero page + command line (x86), written at plan.boot_data.
    boot_data: bytes | None
    boot_state: BootState | None
    device_tree: DeviceTree | None = None

    @property
    def findings(self) -> list[Finding]:
        notes: list[Finding] = []
        for image in (self.kernel, self.initrd):
            if image is not None:
                notes.extend(image.notes)
        return [*notes, *self.plan.findings]

    @property
    def ok(self) -> bool:
        return self.plan.ok


def _placeholder(cells: int) -> int:
    return (1 << (32 * cells)) - 1


def _prepare_tree(inputs: BootInputs, findings: list[Finding]) -> DeviceTree | None:
    tree = inputs.device_tree
    if tree is None:
        if not inputs.generate_dtb:
            return None
        tree = DeviceTree.empty()
        findings.append(
            Finding(
                "warning",
                "no device tree given: a minimal one with only /memory and /chosen is "
                "generated; Linux also needs the interrupt controller, timer and console nodes",
                inputs.locations.get("dtb"),
                "pass the board's device tree with --dtb or --dts",
            )
        )
    ram = [(w.base, w.size) for w in sorted(inputs.ram, key=lambda w: w.base)]
    declared = sorted(tree.memory_ranges())
    if declared and declared != ram:
        shown = ", ".join(f"[{b:#x}, {b + s:#x})" for b, s in declared)
        findings.append(
            Finding(
                "warning",
                f"the device tree's memory node says {shown}; it is replaced with the VM's "
                "guest RAM so the kernel does not use memory the VM does not have",
                inputs.locations.get("dtb"),
                "make the device tree's memory node match the configured guest RAM",
            )
        )
    tree.set_memory(ram)
    tree.set_chosen(bootargs=inputs.bootargs, stdout_path=inputs.stdout_path)
    if inputs.initrd is not None:
        cells = tree.address_cells
        tree.set_chosen(initrd=(_placeholder(cells), _placeholder(cells)))
    elif tree.initrd is not None:
        findings.append(
            Finding(
                "warning",
                "the device tree names an initrd (linux,initrd-start/end) but none is "
                "loaded; the stale properties are removed",
                inputs.locations.get("dtb"),
                "pass --initrd, or drop the properties from the device tree",
            )
        )
        tree.remove_initrd()
    return tree


def prepare_boot(inputs: BootInputs) -> PreparedBoot:
    """Place and finish the boot data; problems are findings on ``plan`` (never raises for
    placement problems, so a checker can list them all)."""
    findings: list[Finding] = []
    x86 = inputs.arch == "x86_64"
    tree = None if x86 else _prepare_tree(inputs, findings)
    cmdline = inputs.bootargs or ""
    bz_header = (
        inputs.kernel.header
        if inputs.kernel is not None and isinstance(inputs.kernel.header, BzImageHeader)
        else None
    )
    if x86:
        boot_size: int | None = x86_boot_data_size(cmdline) if bz_header else None
    else:
        boot_size = tree.size if tree is not None else None
    request = PlacementRequest(
        arch=inputs.arch,
        ram=inputs.ram,
        kernel=inputs.kernel.requirements if inputs.kernel else None,
        initrd_size=inputs.initrd.blob.size if inputs.initrd else None,
        boot_data_size=boot_size,
        boot_data_reserve=inputs.dtb_reserve,
        kernel_addr=inputs.kernel_addr,
        initrd_addr=inputs.initrd_addr,
        boot_data_addr=inputs.dtb_addr,
        locations=inputs.locations,
        kernel_source=inputs.kernel.path if inputs.kernel else "",
        initrd_source=inputs.initrd.path if inputs.initrd else "",
        boot_data_source=inputs.dtb_source,
    )
    plan = plan_images(request)
    plan.findings[:0] = findings
    if x86 and inputs.kernel is not None and bz_header is None:
        plan.findings.append(
            Finding(
                "error",
                f"x86_64 guests boot through the Linux boot protocol, which needs a bzImage; "
                f"the kernel is {inputs.kernel.description}",
                inputs.locations.get("kernel"),
                "use arch/x86/boot/bzImage",
            )
        )
    if not x86 and tree is None and inputs.kernel is not None:
        plan.findings.append(
            Finding(
                "warning",
                "no device tree: the kernel starts with x0/r2 = 0 and Linux will not boot",
                inputs.locations.get("dtb"),
                "pass --dtb or --dts (or set generate_dtb)",
            )
        )
    boot_data: bytes | None = None
    state: BootState | None = None
    if plan.ok and plan.entry is not None:
        initrd = plan.initrd
        if x86 and bz_header is not None and plan.boot_data is not None:
            try:
                boot_data, state = build_x86_boot_data(
                    bz_header,
                    addr=plan.boot_data.addr,
                    entry=plan.entry,
                    ram=plan.ram,
                    cmdline=cmdline,
                    initrd=(initrd.addr, initrd.size) if initrd else None,
                )
            except Sel4VmmError as error:
                plan.findings.append(
                    Finding("error", error.message, inputs.locations.get("bootargs"), error.fix)
                )
        elif tree is not None:
            if initrd is not None:
                size_before = tree.size
                tree.set_chosen(initrd=(initrd.addr, initrd.end))
                assert tree.size == size_before, "initrd cells changed the DTB size"
            boot_data = tree.to_bytes()
            dtb_addr = plan.boot_data.addr if plan.boot_data else None
            arch = inputs.kernel.requirements.arch if inputs.kernel else inputs.arch
            state = (
                arm32_boot_state(plan.entry, dtb_addr)
                if arch == "arm"
                else arm64_boot_state(plan.entry, dtb_addr)
            )
        else:
            state = arm64_boot_state(plan.entry, None)
    return PreparedBoot(plan, inputs.kernel, inputs.initrd, boot_data, state, tree)


# -- an arm64 Linux boot from files on the command line -------------------------------------


def prepare_arm64_linux(
    ram: RamWindow,
    kernel: KernelImage,
    tree: DeviceTree,
    tree_source: str,
    *,
    initrd_path: str | os.PathLike[str] | None = None,
    bootargs: str | None = None,
    kernel_addr: int | None = None,
) -> PreparedBoot:
    """Place an arm64 Image, its initrd and device tree in one RAM window, errors raised.

    The one preparation both VMM backends use for ``--kernel/--initrd/--dtb`` boots (the
    emulator and QEMU differ only in ``kernel_addr``: QEMU writes its own DTB at the start
    of RAM at every reset, so its kernel goes above that), so a user gets the same
    placement and the same located errors on either.
    """
    initrd = read_initrd(initrd_path) if initrd_path is not None else None
    locations = {"kernel": Location(kernel.path), "dtb": Location(tree_source)}
    if initrd_path is not None:
        locations["initrd"] = Location(os.fspath(initrd_path))
    boot = prepare_boot(
        BootInputs(
            arch="aarch64",
            ram=[ram],
            kernel=kernel,
            initrd=initrd,
            device_tree=tree,
            bootargs=bootargs,
            kernel_addr=kernel_addr,
            locations=locations,
            dtb_source=tree_source,
        )
    )
    boot.plan.raise_if_errors()
    return boot


# -- from a configuration ------------------------------------------------------------------


def ram_windows_of(vm: VmSpec) -> list[RamWindow]:
    """Guest RAM of a VM spec: ``ram_base``/``ram_size`` and every RAM region, merged."""
    spans = []
    if vm.ram_size:
        spans.append((vm.ram_base, vm.ram_base + vm.ram_size))
    spans += [(r.guest_addr, r.guest_addr + r.size) for r in vm.regions if r.kind is RegionKind.RAM]
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [RamWindow(start, end - start) for start, end in merged]


def _resolve(
    name: str | None, base_dir: Path | None, *, role: str, option: str, vm: VmSpec
) -> str | None:
    """A file the configuration names, beside the configuration or as given.

    CAmkES names its images by file-server entry ("linux", "linux-dtb"), which are not
    files a user has lying around: a name that is no file says which option to pass.
    """
    if name is None:
        return None
    path = Path(name)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        return str(base_dir / path)
    if not path.exists():
        key = {"kernel": "kernel", "initrd": "initrd", "device tree": "dtb"}[role]
        raise Sel4VmmError(
            f"VM '{vm.name}': the configuration names the {role} '{name}', which is not a "
            "file here (CAmkES names are file-server entries of the build)",
            location=vm.images.locations.get(key, vm.location),
            fix=f"pass the file with {option}",
        )
    return str(path)


def prepare_from_spec(
    vm: VmSpec,
    *,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    dtb: str | os.PathLike[str] | None = None,
    dts: str | os.PathLike[str] | None = None,
    overlays: Sequence[str | os.PathLike[str]] = (),
    bootargs: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    camkes: bool = False,
) -> PreparedBoot:
    """Open the VM's images (command-line paths win over the configuration's) and prepare.

    ``camkes`` applies VM_Arm's loader rules: a generated DTB reserves 0x50000 bytes.
    """
    spec = vm.images
    base = Path(base_dir) if base_dir is not None else None
    locations = dict(spec.locations)
    if vm.ram_location is not None:
        locations.setdefault("ram", vm.ram_location)
    kernel_path = (
        os.fspath(kernel)
        if kernel is not None
        else _resolve(spec.kernel, base, role="kernel", option="--kernel", vm=vm)
    )
    initrd_path = (
        os.fspath(initrd)
        if initrd is not None
        else _resolve(
            spec.initrd if spec.provide_initrd else None,
            base,
            role="initrd",
            option="--initrd",
            vm=vm,
        )
    )
    if kernel_path is None:
        raise Sel4VmmError(
            f"VM '{vm.name}': no kernel image given",
            location=vm.location,
            fix="pass --kernel PATH",
        )
    guest_ram = sum(window.size for window in ram_windows_of(vm)) or None
    opened_kernel = read_kernel(kernel_path, arch=vm.arch, guest_ram=guest_ram)
    locations.setdefault("kernel", Location(kernel_path))
    opened_initrd = None
    if initrd_path is not None and (initrd is not None or spec.provide_initrd):
        opened_initrd = read_initrd(initrd_path, guest_ram=guest_ram)
        locations.setdefault("initrd", Location(initrd_path))
    tree: DeviceTree | None = None
    dtb_source = ""
    if dts is not None:
        tree = DeviceTree(compile_dts(Path(dts), [Path(o) for o in overlays]), os.fspath(dts))
        dtb_source = os.fspath(dts)
    else:
        if overlays:
            raise Sel4VmmError(
                "overlays need a device tree source to apply to",
                fix="pass the base tree with --dts",
            )
        # CAmkES: a generated DTB starts from ``dtb_base_name`` when one is given.
        configured = spec.dtb_base if spec.generate_dtb and spec.dtb_base else spec.dtb
        wanted = configured if (spec.provide_dtb or spec.generate_dtb) else None
        dtb_path = (
            os.fspath(dtb)
            if dtb is not None
            else _resolve(wanted, base, role="device tree", option="--dtb or --dts", vm=vm)
        )
        if dtb_path is not None:
            tree = read_dtb(dtb_path)
            dtb_source = dtb_path
    if dtb_source:
        locations.setdefault("dtb", Location(dtb_source))
    generated = spec.generate_dtb and dtb is None and dts is None
    inputs = BootInputs(
        arch=vm.arch,
        ram=ram_windows_of(vm),
        kernel=opened_kernel,
        initrd=opened_initrd,
        device_tree=tree,
        generate_dtb=spec.generate_dtb or vm.arch != "x86_64",
        bootargs=bootargs if bootargs is not None else spec.bootargs,
        stdout_path=spec.stdout,
        kernel_addr=spec.kernel_entry_addr,
        initrd_addr=spec.initrd_addr,
        dtb_addr=spec.dtb_addr,
        dtb_reserve=CAMKES_GENERATED_DTB_RESERVE if camkes and generated else None,
        locations=locations,
        dtb_source=dtb_source,
    )
    boot = prepare_boot(inputs)
    if camkes and opened_initrd is not None and opened_initrd.compression != "gzip":
        # VM_Arm's image loader only accepts gzip initrds ("Unknown Linux image format").
        boot.plan.findings.append(
            Finding(
                "error",
                f"CAmkES's VM_Arm loader only loads gzip initrds; this one is "
                f"{opened_initrd.description}",
                locations.get("initrd"),
                "gzip the initrd (gzip -9 rootfs.cpio)",
            )
        )
    return boot
