"""Build every VM of a configuration on a board, the way a run would, and record it all.

Two passes, as the system builders do: first everything at a fixed physical address (1:1
RAM, RAM with ``phys_addr``, passthrough devices), then what may go anywhere (pool-backed
RAM, shared regions).  A failure in one region becomes a finding at that region's place in
the file and planning goes on, so one run of ``plan`` lists every problem.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sel4vmm.boards import Board, board_names, canonical_board_name, load_board
from sel4vmm.collector import cyclic_gc_paused
from sel4vmm.config.spec import Finding, GuestRegion, RegionKind, SystemSpec, VmSpec
from sel4vmm.errors import Location, ResourceExhausted, Sel4VmmError
from sel4vmm.plan.checks import (
    check_image_addresses,
    check_ram_layout,
    check_ram_on_board,
    check_untyped_sizes,
)
from sel4vmm.plan.model import MapEntry, SystemPlan, VmPlan
from sel4vmm.plan.root_task import RootTaskImage, root_task_findings
from sel4vmm.plan.shared_frames import SharedFrames
from sel4vmm.sel4.arch import arch_by_name
from sel4vmm.sel4.objects import human_size
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform, boot_untypeds_of_ram
from sel4vmm.vm import DeviceFramesRequest, DeviceUntypedRequest, PoolRequest, VirtualMachine

DEFAULT_BOARDS = {
    "aarch64": "qemu_virt_aarch64",
    "x86_64": "x86_64_generic",
    "riscv64": "qemu_virt_riscv64",
}
#: The largest QEMU ``-m`` a plan suggests before it gives up.
MAX_QEMU_RAM = 1 << 40


def _default_board(spec: SystemSpec) -> str:
    arch = spec.vms[0].arch if spec.vms else "aarch64"
    return DEFAULT_BOARDS.get(arch, "qemu_virt_aarch64")


def plan_system(
    spec: SystemSpec,
    *,
    board: str | None = None,
    ram_size: int | None = None,
    root_task: RootTaskImage | None = None,
) -> SystemPlan:
    """Plan ``spec`` on ``board`` (else the one the configuration names, else a default).

    ``root_task`` (the image the ELF loader loads, guest images embedded) adds seed 002's
    root-task sizing findings.
    """
    with cyclic_gc_paused():
        plan = _plan_system(spec, board, ram_size)
        if root_task is not None:
            plan.findings += _root_task_findings(plan, root_task)
        return plan


def _root_task_findings(plan: SystemPlan, image: RootTaskImage) -> list[Finding]:
    board = plan.board
    arch = arch_by_name("aarch64" if board.arch == "aarch32" else board.arch)
    untypeds = boot_untypeds_of_ram(board.ram, arch, device_reserved=board.reserved_memory)
    return root_task_findings(
        image_size=image.size,
        image_vaddr=image.vaddr,
        image_path=image.path,
        board=board,
        boot_untypeds=len(untypeds),
        vm_resources=[vm.resources for vm in plan.vms if vm.resources is not None],
    )


def _plan_system(spec: SystemSpec, board: str | None, ram_size: int | None) -> SystemPlan:
    name = board or spec.board or _default_board(spec)
    notes: list[Finding] = []
    if board is None and spec.board is None:
        notes.append(
            Finding(
                "note",
                f"no board given or named by the configuration; planned for {name}",
                Location(spec.path),
                "pass --board NAME",
            )
        )
    if board is None and spec.board is not None and canonical_board_name(spec.board) is None:
        raise Sel4VmmError(
            f"the path names board '{spec.board}' (a board/{spec.board}/ directory), which "
            f"sel4vmm does not know; known boards: {', '.join(board_names())}",
            location=Location(spec.path),
            fix="pass --board NAME with the board this system is for",
        )
    the_board = load_board(name, ram_size)
    _check_arch(spec, the_board)
    plan = _plan_on(spec, the_board)
    plan.findings[:0] = notes
    if the_board.ram_configurable and _board_ram_short(plan):
        qemu = _qemu_ram_finding(spec, the_board)
        plan.findings.append(qemu)
        # Every shortfall of board RAM gets the same, concrete, -m.
        for finding in plan.all_findings():
            if finding.message.startswith("board RAM:"):
                finding.fix = qemu.fix
    return plan


def _check_arch(spec: SystemSpec, board: Board) -> None:
    """A configuration for one architecture cannot be planned on another's board."""
    board_arch = "aarch64" if board.arch == "aarch32" else board.arch
    for vm in spec.vms:
        if vm.arch != board_arch:
            same = [n for n in board_names() if _arch_of(n) == vm.arch]
            raise Sel4VmmError(
                f"VM '{vm.name}' is {vm.arch} but board {board.name} is {board.arch}",
                location=vm.location or Location(spec.path),
                fix=f"plan it on a {vm.arch} board (--board {' | '.join(same) or '?'}), or "
                f"pass the --arch of {board.name}",
            )


def _arch_of(name: str) -> str:
    arch = load_board(name).arch
    return "aarch64" if arch == "aarch32" else arch


def _board_ram_short(plan: SystemPlan) -> bool:
    return any(f.message.startswith("board RAM:") for f in plan.all_findings())


def _qemu_ram_finding(spec: SystemSpec, board: Board) -> Finding:
    size = board.ram_size
    while size < MAX_QEMU_RAM:
        size *= 2
        try:
            bigger = load_board(board.name, size)
        except Sel4VmmError:
            break
        trial = _plan_on(spec, bigger)
        if not _board_ram_short(trial):
            fix = f"run QEMU with -m {size >> 20}M (and build seL4 for that much RAM)"
            return Finding(
                "error",
                f"the QEMU RAM size {human_size(board.ram_size)} is smaller than this "
                f"configuration needs",
                Location(spec.path),
                fix,
            )
    return Finding(
        "error",
        f"no QEMU RAM size up to {human_size(size)} holds this configuration",
        Location(spec.path),
        "make the memory regions smaller or fewer"
        if spec.format == "microkit"
        else "shrink the pools (simple_untypedN_pool)",
    )


def _device_reserved(spec: SystemSpec, board: Board, physmem: PhysicalMemory) -> list[MemoryRange]:
    """RAM the kernel does not get, merged: the board's reserved-memory overlay (a VM build
    of seL4 keeps it for guests) and RAM the VMs take as device untyped (``untyped_mmios``
    inside RAM).  seL4 hands both out as device untyped."""
    wanted = [(r.base, r.end, r.name) for r in board.reserved_memory]
    for vm in spec.vms:
        for untyped in vm.device_untypeds:
            base, size = untyped.paddr, 1 << untyped.size_bits
            if any(r.contains(base, size) for r in physmem.ram_ranges):
                wanted.append((base, base + size, "reserved for 1:1 guest RAM"))
    merged: list[tuple[int, int, str]] = []
    for start, end, name in sorted(wanted):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, name))
    return [MemoryRange(s, e - s, name=name) for s, e, name in merged]


def _growth_advice(spec: SystemSpec, board: Board) -> str:
    """What to do when the board's kernel RAM runs out, in the file's own terms."""
    smaller = (
        "make the memory regions smaller or fewer"
        if spec.format == "microkit"
        else "ask for fewer or smaller untyped pools (simple_untypedN_pool)"
    )
    if board.ram_configurable:
        return f"give QEMU more RAM with -m (plan --ram-size) or {smaller}"
    return f"{board.name} has {human_size(board.ram_size)} of RAM: {smaller}"


def _hold_fixed_ram(spec: SystemSpec, platform: Sel4Platform) -> None:
    """Microkit: keep every ``phys_addr`` range for its region before any object is made."""
    if spec.format != "microkit":
        return
    for vm in spec.vms:
        for region in vm.regions:
            if region.phys_addr is not None and region.size > 0:
                platform.hold_fixed(region.phys_addr, region.size, f"phys_addr of {region.name}")


def _plan_on(spec: SystemSpec, board: Board) -> SystemPlan:
    physmem = PhysicalMemory(board.memory_ranges())
    arch = arch_by_name(spec.vms[0].arch if spec.vms else "aarch64")
    platform = Sel4Platform(
        physmem,
        arch,
        device_reserved=_device_reserved(spec, board, physmem),
        board_name=board.name,
        growth_advice=_growth_advice(spec, board),
        fix_language="microkit" if spec.format == "microkit" else "camkes",
    )
    _hold_fixed_ram(spec, platform)
    plan = SystemPlan(
        spec.path,
        spec.format,
        board,
        findings=list(spec.findings),
        shared_regions=spec.shared_regions,
        notifications=spec.notifications,
        doorbells=spec.doorbells,
    )
    builders: list[tuple[VmPlan, VmSpec]] = []
    for vm_spec in spec.vms:
        vm_plan = VmPlan(vm_spec.name, vm_spec.arch, vm_spec.ram_base, vm_spec.ram_size)
        vm_plan.findings += check_untyped_sizes(vm_spec, arch)
        vm_plan.findings += check_ram_layout(vm_spec, board)
        vm_plan.findings += check_ram_on_board(vm_spec, board)
        vm_plan.findings += check_image_addresses(vm_spec)
        plan.vms.append(vm_plan)
        builders.append((vm_plan, vm_spec))
        if any(f.severity == "error" and "untyped" in f.message for f in vm_plan.findings):
            continue
        vm_plan.vm = _create_vm(vm_spec, platform, vm_plan, spec.format)
    shared = SharedFrames()
    for fixed in (True, False):
        for vm_plan, vm_spec in builders:
            if vm_plan.vm is not None:
                _place_regions(vm_spec, vm_plan, board, fixed, shared)
    for vm_plan, vm_spec in builders:
        vm_plan.entries = _map_entries(vm_spec, vm_plan)
        _mark_shared(spec, vm_spec, vm_plan.entries)
        if vm_plan.vm is not None:
            vm_plan.resources = vm_plan.vm.resources()
    return plan


def _create_vm(
    vm_spec: VmSpec, platform: Sel4Platform, vm_plan: VmPlan, fmt: str
) -> VirtualMachine | None:
    try:
        vm = VirtualMachine.create(
            vm_spec.name,
            platform,
            pools=[PoolRequest(p.size_bits, p.count) for p in vm_spec.pools],
            device_untypeds=[
                DeviceUntypedRequest(u.paddr, u.size_bits) for u in vm_spec.device_untypeds
            ],
            device_frames=[
                DeviceFramesRequest(f.paddr, f.size, f.page_bits) for f in vm_spec.device_frames
            ],
            num_vcpus=max(1, vm_spec.num_vcpus),
            share_platform_memory=fmt == "microkit",
        )
        vm.allocator.fix_language = platform.root.fix_language
        return vm
    except Sel4VmmError as error:
        location = vm_spec.pools[0].location if vm_spec.pools else vm_spec.location
        message = error.message
        if isinstance(error, ResourceExhausted) and "out of untyped memory" in message:
            message = "board RAM: " + message
        vm_plan.findings.append(Finding("error", message, location, error.fix))
        return None


def _region_is_fixed(vm_spec: VmSpec, region: GuestRegion) -> bool:
    if region.kind is RegionKind.RAM:
        return vm_spec.one_to_one or region.phys_addr is not None
    return region.kind is RegionKind.PASSTHROUGH


def _place_regions(
    vm_spec: VmSpec, vm_plan: VmPlan, board: Board, fixed: bool, shared: SharedFrames
) -> None:
    vm = vm_plan.vm
    assert vm is not None
    for region in sorted(vm_spec.regions, key=lambda r: r.guest_addr):
        if _region_is_fixed(vm_spec, region) != fixed:
            continue
        _attempt(vm_plan, vm_spec, region, partial(_place, vm, vm_spec, region, shared))
    if fixed and vm_spec.arch == "aarch64" and board.gic is not None:
        _board_gic(vm, vm_spec, vm_plan, board)


def _attempt(
    vm_plan: VmPlan, vm_spec: VmSpec, region: GuestRegion, action: Callable[[], object]
) -> None:
    try:
        action()
    except Sel4VmmError as error:
        # A pool that is too small is fixed at the pool, so point there.
        location = region.location
        pool_short = isinstance(error, ResourceExhausted) and "pool exhausted" in error.message
        if pool_short and vm_spec.pools:
            location = vm_spec.pools[0].location or location
        message = f"{region.name}: {error.message}"
        if isinstance(error, ResourceExhausted) and "out of untyped memory" in error.message:
            message = "board RAM: " + message
        vm_plan.findings.append(Finding("error", message, location, error.fix))


def _place(vm: VirtualMachine, vm_spec: VmSpec, region: GuestRegion, shared: SharedFrames) -> None:
    # Frames already made for a device window or memory region: a second VM that maps the
    # same one gets copies of the caps rather than a second, impossible, set of frames.
    # Guest RAM another VM maps too (a Microkit region two VMs execute from) is that VM's
    # frames as well: this VM maps them, it does not get RAM of its own.
    is_shared_ram = region.kind is RegionKind.RAM and region.shared is not None
    if (region.kind in (RegionKind.PASSTHROUGH, RegionKind.SHARED) or is_shared_ram) and (
        region in shared
    ):
        shared.map_copies(vm, region)
        return
    if region.kind is RegionKind.RAM:
        if vm_spec.one_to_one:
            vm.ram.register_at(
                region.guest_addr, region.size, one_to_one=True, page_bits=region.page_bits
            )
        else:
            vm.ram.register_at(
                region.guest_addr,
                region.size,
                page_bits=region.page_bits,
                paddr=region.phys_addr,
            )
        reservation = vm.memory.find(region.guest_addr)
        assert reservation is not None
        reservation.label = region.name
        if is_shared_ram:
            shared.remember(region, vm.frames_of(reservation))
    elif region.kind is RegionKind.PASSTHROUGH:
        assert region.phys_addr is not None
        reservation = vm.map_device(
            region.guest_addr,
            region.phys_addr,
            region.size,
            page_bits=region.page_bits,
            label=region.name,
        )
        shared.remember(region, vm.frames_of(reservation))
    elif region.kind is RegionKind.EMULATED:
        vm.memory.reserve_at(region.guest_addr, region.size, label=region.name)
    else:  # SHARED: frames anywhere, mapped into the guest
        shared.place(vm, region)


def _board_gic(vm: VirtualMachine, vm_spec: VmSpec, vm_plan: VmPlan, board: Board) -> None:
    """The GIC a VMM always gives an AArch64 guest: distributor emulated through faults,
    and (CAmkES's VM_Arm does this itself) the vCPU interface passed through where the
    guest expects its CPU interface."""
    gic = board.gic
    assert gic is not None
    dist = gic.distributor
    if vm.memory.find(dist.base) is None:
        try:
            vm.memory.reserve_at(dist.base, dist.size, label="vgic distributor (emulated)")
        except Sel4VmmError as error:
            vm_plan.findings.append(Finding("error", error.message, vm_spec.location, error.fix))
    cpu, vcpu = gic.cpu_interface, gic.vcpu_interface
    camkes = vm_spec.extra.get("address_config") is not None
    if camkes and cpu and vcpu and vm.memory.find(cpu.base) is None:
        try:
            vm.map_device(cpu.base, vcpu.base, 0x1000, label="vgic vcpu interface")
        except Sel4VmmError as error:
            vm_plan.findings.append(Finding("error", error.message, vm_spec.location, error.fix))


def _mark_shared(spec: SystemSpec, vm_spec: VmSpec, entries: list[MapEntry]) -> None:
    """Say, on each window of a shared region, who else maps the same frames."""
    for region in vm_spec.regions:
        shared = spec.shared_region(region.shared) if region.shared is not None else None
        if shared is None:
            continue
        others = [owner for owner in shared.sharers() if owner != vm_spec.name]
        for entry in entries:
            if entry.start == region.guest_addr and entry.kind != "hole":
                entry.shared_with = list(dict.fromkeys(others))


def _map_entries(vm_spec: VmSpec, vm_plan: VmPlan) -> list[MapEntry]:
    entries: list[MapEntry] = []
    vm = vm_plan.vm
    seen: set[int] = set()
    if vm is not None:
        for reservation in vm.memory.reservations():
            region = next((r for r in vm_spec.regions if r.guest_addr == reservation.start), None)
            kind = region.kind.value if region is not None else "emulated"
            if reservation.extents:
                one = all(e.guest_addr == e.paddr for e in reservation.extents)
                device = all(e.device for e in reservation.extents)
                if kind == "emulated":
                    kind = "passthrough"
                backing = (
                    "1:1 frames"
                    if one and kind == "ram"
                    else "device frames"
                    if device and kind != "ram"
                    else "fixed frames"
                    if region is not None and region.phys_addr is not None
                    else "pool frames"
                    if vm.allocator.given
                    else "frames from board RAM"
                )
            else:
                backing = "VMM emulation (faults)"
            physical: list[tuple[int, int]] = []
            for extent in reservation.extents:
                if physical and physical[-1][0] + physical[-1][1] == extent.paddr:
                    physical[-1] = (physical[-1][0], physical[-1][1] + extent.size)
                else:
                    physical.append((extent.paddr, extent.size))
            bits = sorted({e.page_bits for e in reservation.extents})
            entries.append(
                MapEntry(
                    reservation.start,
                    reservation.size,
                    kind,
                    reservation.label or (region.name if region else ""),
                    backing,
                    bits[0] if bits else None,
                    physical,
                    region.location if region is not None else None,
                )
            )
            seen.add(reservation.start)
    for region in vm_spec.regions:
        if region.guest_addr not in seen:
            entries.append(
                MapEntry(
                    region.guest_addr,
                    region.size,
                    region.kind.value,
                    region.name,
                    "not backed (see findings)",
                    region.page_bits,
                    [],
                    region.location,
                )
            )
    entries.sort(key=lambda e: e.start)
    with_holes: list[MapEntry] = []
    cursor = 0
    for entry in entries:
        if entry.start > cursor:
            with_holes.append(MapEntry(cursor, entry.start - cursor, "hole", ""))
        with_holes.append(entry)
        cursor = max(cursor, entry.end)
    return with_holes
