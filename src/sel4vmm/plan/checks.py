"""Address-level checks a plan makes before anything is built.

Each returns findings with the place in the user's file and the value that would work.
These are the mistakes seL4 VM users lose days to: a RAM base Linux cannot boot from, RAM
on top of the GIC, DTB and initrd addresses outside RAM or on top of each other, the
deprecated kernel entry default.  (A 1:1 guest whose ``ram_paddr_base`` differs from
``ram_base`` is reported by the CAmkES reader, which sees both keys.)
"""

from __future__ import annotations

from sel4vmm.boards import Board
from sel4vmm.config.spec import Finding, RegionKind, VmSpec
from sel4vmm.sel4.arch import Arch
from sel4vmm.sel4.objects import human_size

TWO_MIB = 0x200000
#: arm64 booting.txt: the DTB must not exceed 2 MiB.
MAX_DTB_SIZE = TWO_MIB
#: CAmkES VM_Arm's deprecated default entry: RAM base + 0x80000 (the old text_offset).
DEPRECATED_ENTRY_OFFSET = 0x80000


def _overlaps(a: int, a_size: int, b: int, b_size: int) -> bool:
    return a < b + b_size and b < a + a_size


def check_untyped_sizes(vm: VmSpec, arch: Arch) -> list[Finding]:
    findings = []
    for pool in vm.pools:
        if not arch.min_untyped_bits <= pool.size_bits <= arch.max_untyped_bits:
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: simple_untyped{pool.size_bits}_pool asks for untyped objects of "
                    f"2^{pool.size_bits} bytes, which {arch.name} seL4 cannot have",
                    pool.location,
                    f"use a size between {arch.min_untyped_bits} and {arch.max_untyped_bits} bits "
                    "(e.g. simple_untyped24_pool)",
                )
            )
        if pool.count < 0:
            findings.append(
                Finding("error", f"{vm.name}: negative pool size {pool.count}", pool.location)
            )
    for untyped in vm.device_untypeds:
        if not arch.min_untyped_bits <= untyped.size_bits <= arch.max_untyped_bits:
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: untyped_mmios entry {untyped.paddr:#x}:{untyped.size_bits} has "
                    f"an impossible size 2^{untyped.size_bits}",
                    untyped.location,
                    f"use a size between {arch.min_untyped_bits} and {arch.max_untyped_bits} bits",
                )
            )
        elif untyped.paddr % (1 << untyped.size_bits):
            aligned = untyped.paddr & ~((1 << untyped.size_bits) - 1)
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: untyped_mmios entry {untyped.paddr:#x}:{untyped.size_bits} is "
                    f"not aligned to its size",
                    untyped.location,
                    f"an untyped of 2^{untyped.size_bits} must start at a multiple of "
                    f"{1 << untyped.size_bits:#x}, e.g. {aligned:#x}",
                )
            )
    return findings


def check_ram_layout(vm: VmSpec, board: Board) -> list[Finding]:
    findings = []
    ram_regions = [r for r in vm.regions if r.kind is RegionKind.RAM]
    if vm.arch == "aarch64":
        for region in ram_regions:
            if region.guest_addr % TWO_MIB:
                aligned = (region.guest_addr + TWO_MIB - 1) // TWO_MIB * TWO_MIB
                findings.append(
                    Finding(
                        "error",
                        f"{vm.name}: guest RAM starts at {region.guest_addr:#x}, which is not "
                        "2 MiB aligned; arm64 Linux places its Image at a 2 MiB aligned base "
                        "and will not boot",
                        region.location,
                        f"start guest RAM at {aligned:#x}",
                    )
                )
    windows: list[tuple[str, int, int]] = []
    if board.gic is not None:
        windows += [(name, w.base, w.size) for name, w in board.gic.windows().items()]
    if not board.uart.io_port:
        windows.append(("uart", board.uart.base, board.uart.size))
    windows += [(d.name or "device", d.base, d.size) for d in board.devices]
    for region in ram_regions:
        for name, base, size in windows:
            if _overlaps(region.guest_addr, region.size, base, size):
                findings.append(
                    Finding(
                        "error",
                        f"{vm.name}: guest RAM [{region.guest_addr:#x}, "
                        f"{region.guest_addr + region.size:#x}) overlaps the board's {name} at "
                        f"[{base:#x}, {base + size:#x}); the guest could not reach the device",
                        region.location,
                        "move guest RAM clear of the board's device windows",
                    )
                )
    return findings


def check_image_addresses(vm: VmSpec) -> list[Finding]:
    """CAmkES ``dtb_addr`` / ``initrd_addr`` / ``kernel_entry_addr`` against guest RAM."""
    findings: list[Finding] = []
    images = vm.images
    ram = [(r.guest_addr, r.size) for r in vm.regions if r.kind is RegionKind.RAM]
    if not ram:
        return findings

    def in_ram(addr: int, size: int) -> bool:
        return any(base <= addr and addr + size <= base + length for base, length in ram)

    ram_text = ", ".join(f"[{b:#x}, {b + n:#x})" for b, n in ram)
    initrd_size = vm.extra.get("initrd_max_size")
    initrd_len = initrd_size if isinstance(initrd_size, int) and initrd_size > 0 else 1
    placed: list[tuple[str, int, int]] = []
    if images.dtb_addr is not None:
        placed.append(("dtb_addr", images.dtb_addr, MAX_DTB_SIZE))
    if images.initrd_addr is not None:
        placed.append(("initrd_addr", images.initrd_addr, initrd_len))
    for key, addr, _size in placed:
        if not in_ram(addr, 1):
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: {key} {addr:#x} is outside guest RAM {ram_text}",
                    images.locations.get(key, vm.location),
                    f"put it inside guest RAM, e.g. {ram[0][0] + ram[0][1] // 2:#x}",
                )
            )
        elif images.dtb_addr is not None and key == "dtb_addr" and addr % 8:
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: dtb_addr {addr:#x} is not 8-byte aligned",
                    images.locations.get(key, vm.location),
                    f"use {addr // 8 * 8:#x}",
                )
            )
    if len(placed) == 2:
        (_, dtb, dtb_size), (_, initrd, initrd_span) = placed
        if _overlaps(dtb, dtb_size, initrd, initrd_span):
            what = f"initrd_max_size {human_size(initrd_span)}" if initrd_span > 1 else "the initrd"
            findings.append(
                Finding(
                    "error",
                    f"{vm.name}: the DTB at {dtb:#x} (up to 2 MiB) and {what} at {initrd:#x} "
                    "overlap",
                    images.locations.get("dtb_addr", vm.location),
                    f"place the DTB at or after {initrd + initrd_span:#x} "
                    f"(page aligned: {(initrd + initrd_span + 0xFFF) // 0x1000 * 0x1000:#x})",
                )
            )
    if vm.images.kernel_entry_addr is None and vm.extra.get("address_config") is not None:
        entry = vm.ram_base + DEPRECATED_ENTRY_OFFSET
        findings.append(
            Finding(
                "warning",
                f"{vm.name}: kernel_entry_addr is not set, so the VMM uses the deprecated "
                f"default ram_base + 0x80000 = {entry:#x}; kernels since Linux 5.8 have "
                "text_offset 0 and expect a 2 MiB aligned base",
                vm.ram_location,
                f'set "kernel_entry_addr" explicitly (for an arm64 Image: {vm.ram_base:#x} + '
                "its header's text_offset)",
            )
        )
    return findings


def check_ram_on_board(vm: VmSpec, board: Board) -> list[Finding]:
    """Guest RAM pinned to physical memory (1:1, ``phys_addr``) must be memory the board has.

    Without this check a guest could be "backed" by the device untyped seL4 makes for the
    empty physical address space above a board's RAM: it plans and builds, and the guest's
    RAM is nothing.
    """
    findings: list[Finding] = []
    ram = sorted(board.ram, key=lambda r: r.base)
    for region in vm.regions:
        if region.kind is not RegionKind.RAM:
            continue
        paddr = region.phys_addr
        if paddr is None and vm.one_to_one:
            paddr = region.guest_addr
        if paddr is None or region.size <= 0:
            continue
        end = paddr + region.size
        if any(r.base <= paddr and end <= r.end for r in ram):
            continue
        have = ", ".join(f"[{r.base:#x}, {r.end:#x})" for r in ram) or "none"
        if board.ram_configurable and ram and ram[0].base <= paddr:
            need = -(-(end - ram[0].base) // (1 << 20))
            fix = (
                f"run QEMU with -m {need}M (plan --ram-size {need}M) and build seL4 for it, "
                "or move the RAM inside the board's RAM"
            )
        else:
            fix = f"back the guest RAM with physical memory inside the board's RAM {have}"
        findings.append(
            Finding(
                "error",
                f"{vm.name}: guest RAM {region.name} is placed at physical [{paddr:#x}, "
                f"{end:#x}), which is not memory on {board.name} "
                f"({human_size(board.ram_size)} of RAM at {have})",
                region.location,
                fix,
            )
        )
    return findings
