"""Choose and check where the kernel, initrd and boot data (DTB or zero page) go.

Two loaders define the rules users meet today, and both check too little:

* libvmm (``src/arch/aarch64/linux.c``) puts an arm64 Image at RAM base + ``text_offset``
  and refuses a RAM base that is not 2 MiB aligned, a DTB over 2 MiB or not 8-byte aligned,
  destinations outside guest RAM, and overlaps - but compares the kernel's *file size* at
  its *source* address, so a kernel whose BSS runs into the DTB passes.
* CAmkES's VM_Arm loads a raw Image at ``kernel_entry_addr``, a zImage at its link address
  or RAM base + 0x8000, and the DTB and initrd at ``dtb_addr``/``initrd_addr`` with no
  overlap check at all; a generated DTB reserves a 0x50000-byte buffer.

This module applies all of their checks plus the ones they miss (Linux's ``image_size``
footprint, arm64's "initrd and kernel inside one 1 GiB-aligned 32 GiB window",
``initrd_addr_max`` on x86, zero-length images) and reports each problem as a
:class:`~sel4vmm.config.spec.Finding` that says what is wrong, where it was configured and an
address that would work.  Unconfigured addresses are chosen: the kernel where its header
allows, the initrd high in the kernel's RAM window, the boot data page-aligned after the
initrd (or before it when there is no room).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from sel4vmm.config.spec import Finding
from sel4vmm.images.kernel import KernelRequirements
from sel4vmm.images.placement_model import (
    ARM64_BASE_ALIGNMENT,
    ARM64_INITRD_WINDOW_ALIGN,
    ARM64_INITRD_WINDOW_MAX,
    CAMKES_GENERATED_DTB_RESERVE,
    DTB_ALIGNMENT,
    DTB_MAX_SIZE,
    PAGE,
    ImagePlan,
    Placed,
    PlacementRequest,
    RamWindow,
    align_down,
    align_up,
    ram_windows,
)

__all__ = [
    "ARM64_BASE_ALIGNMENT",
    "ARM64_INITRD_WINDOW_ALIGN",
    "ARM64_INITRD_WINDOW_MAX",
    "CAMKES_GENERATED_DTB_RESERVE",
    "DTB_ALIGNMENT",
    "DTB_MAX_SIZE",
    "PAGE",
    "ImagePlan",
    "Placed",
    "PlacementRequest",
    "RamWindow",
    "align_down",
    "align_up",
    "plan_images",
    "ram_windows",
]


def _range(addr: int, size: int) -> str:
    return f"[{addr:#x}, {addr + size:#x})"


class _Planner:
    """One placement run; a class only to share the request, plan and finding helpers."""

    def __init__(self, request: PlacementRequest) -> None:
        self.request = request
        self.ram = tuple(sorted(request.ram, key=lambda w: w.base))
        self.plan = ImagePlan(arch=request.arch, ram=self.ram)

    # -- helpers -------------------------------------------------------------------------

    def error(self, message: str, key: str | None = None, fix: str | None = None) -> None:
        location = self.request.locations.get(key) if key else None
        self.plan.findings.append(Finding("error", message, location, fix))

    def window_of(self, addr: int, size: int) -> RamWindow | None:
        for window in self.ram:
            if window.contains(addr, max(size, 1)):
                return window
        return None

    def find_slot(
        self,
        size: int,
        alignment: int,
        taken: Sequence[Placed],
        *,
        high: bool,
        windows: Sequence[RamWindow] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> int | None:
        """An address ``a = base + offset`` with ``base % alignment == 0`` such that
        ``[base, a + size)`` lies in RAM below ``limit`` and clear of ``taken``; the highest
        or lowest such address."""
        candidates: list[int] = []
        for window in windows if windows is not None else self.ram:
            top = window.end if limit is None else min(window.end, limit)
            # Free gaps of this window between the taken ranges.
            edges = sorted((p.addr, p.end) for p in taken if p.end > window.base)
            gaps: list[tuple[int, int]] = []
            cursor = window.base
            for start, end in edges:
                if start > cursor:
                    gaps.append((cursor, min(start, top)))
                cursor = max(cursor, end)
            gaps.append((cursor, top))
            for lo, hi in gaps:
                if high:
                    base = align_down(hi - size - offset, alignment)
                    if base >= lo:
                        candidates.append(base + offset)
                else:
                    base = align_up(lo, alignment)
                    if base + offset + size <= hi:
                        candidates.append(base + offset)
        if not candidates:
            return None
        return max(candidates) if high else min(candidates)

    # -- steps ---------------------------------------------------------------------------

    def check_ram(self) -> bool:
        if not self.ram:
            self.error(
                "the VM has no guest RAM to load images into",
                "ram",
                "give the VM a RAM region (ram_base/ram_size, or a mapped memory region)",
            )
            return False
        for window in self.ram:
            if window.size <= 0:
                self.error(
                    f"guest RAM window at {window.base:#x} is empty", "ram", "give it a size"
                )
                return False
        return True

    def place_kernel(self) -> None:
        req = self.request
        kernel = req.kernel
        if kernel is None:
            return
        key = "kernel_entry_addr"
        if kernel.load_size == 0:
            self.error("the kernel image is empty (0 bytes)", "kernel", "rebuild the kernel")
            return
        configured = req.kernel_addr is not None
        addr: int | None
        if req.kernel_addr is not None:
            addr = req.kernel_addr
            if kernel.fixed_address is not None and addr != kernel.fixed_address:
                self.error(
                    f"kernel_entry_addr is {addr:#x} but the {kernel.format} must be loaded at "
                    f"{kernel.fixed_address:#x} (its header says so)",
                    key,
                    f"set kernel_entry_addr = {kernel.fixed_address:#x} or leave it unset",
                )
                addr = kernel.fixed_address
            elif not kernel.allows(addr):
                aligned = kernel.load_address_for_base_at_or_above(addr - kernel.offset_from_base)
                self.error(
                    f"a {kernel.format} cannot be loaded at {addr:#x}: "
                    f"its base (address - {kernel.offset_from_base:#x}) must be a multiple of "
                    f"{kernel.base_alignment:#x}",
                    key,
                    f"use kernel_entry_addr = {aligned:#x}",
                )
        elif kernel.fixed_address is not None:
            addr = kernel.fixed_address
        elif kernel.needs_configured_address:
            suggestion = self.find_slot(kernel.footprint, PAGE, [], high=False)
            self.error(
                f"the kernel is a {kernel.format}: nothing in it says where it goes",
                key,
                f"set kernel_entry_addr (e.g. {suggestion:#x})"
                if suggestion is not None
                else "set kernel_entry_addr",
            )
            return
        else:
            addr = self.default_kernel_address(kernel)
            if addr is None:
                return
        size = kernel.footprint
        placed = Placed("kernel", addr, size, kernel.load_size, configured, req.kernel_source)
        self.plan.kernel = placed
        self.plan.entry = kernel.entry_for(addr)
        if self.window_of(addr, size) is None:
            good = self.find_slot(
                size, kernel.base_alignment, [], high=False, offset=kernel.offset_from_base
            )
            fix = (
                f"load it at {good:#x}"
                if good is not None and kernel.fixed_address is None
                else f"guest RAM must cover {_range(addr, size)}"
            )
            self.error(
                f"the kernel {_range(addr, size)} ({kernel.format}, {size:#x} bytes including "
                f"BSS) is not inside guest RAM ({self.ram_text()})",
                key if configured else "ram",
                fix,
            )

    def default_kernel_address(self, kernel: KernelRequirements) -> int | None:
        first = self.ram[0]
        if kernel.format == "arm64 Image":
            # libvmm's rule: RAM base + text_offset, with the RAM base 2 MiB aligned.
            if first.base % ARM64_BASE_ALIGNMENT == 0:
                return first.base + kernel.offset_from_base
            fixed = kernel.load_address_for_base_at_or_above(first.base)
            self.error(
                f"guest RAM starts at {first.base:#x}, which is not 2 MiB aligned: Linux arm64 "
                "must be loaded text_offset bytes above a 2 MiB-aligned base, and memory below "
                "that base is lost to it",
                "ram",
                f"start guest RAM at {align_up(first.base, ARM64_BASE_ALIGNMENT):#x} (or "
                f"{align_down(first.base, ARM64_BASE_ALIGNMENT):#x}), or load the kernel at "
                f"{fixed:#x}",
            )
            return fixed
        if kernel.preferred_address is not None and self.window_of(
            kernel.preferred_address, kernel.footprint
        ):
            return kernel.preferred_address
        addr = self.find_slot(
            kernel.footprint,
            kernel.base_alignment,
            [],
            high=False,
            offset=kernel.offset_from_base,
        )
        if addr is None:
            self.error(
                f"no guest RAM window can hold the {kernel.format} ({kernel.footprint:#x} bytes "
                f"including BSS); RAM is {self.ram_text()}",
                "ram",
                f"give the VM at least {align_up(kernel.footprint, 1 << 20) >> 20} MiB of "
                "contiguous RAM for the kernel alone",
            )
        return addr

    def ram_text(self) -> str:
        return ", ".join(_range(w.base, w.size) for w in self.ram)

    def kernel_window(self) -> list[RamWindow]:
        kernel = self.plan.kernel
        window = self.window_of(kernel.addr, kernel.size) if kernel else None
        return [window] if window else list(self.ram)

    def place_initrd(self) -> None:
        req = self.request
        size = req.initrd_size
        if size is None:
            return
        key = "initrd_addr"
        if size == 0:
            self.error("the initrd is empty (0 bytes)", "initrd", "rebuild it or drop it")
            return
        limit = req.kernel.initrd_limit if req.kernel else None
        taken = [p for p in (self.plan.kernel,) if p]
        reserve = self.boot_data_reserve()
        if req.boot_data_addr is not None:
            # A configured DTB is already somewhere: keep clear of it, leave no room after.
            taken.append(Placed("boot data", req.boot_data_addr, reserve, reserve, True))
            reserve = 0
        if req.initrd_addr is not None:
            addr = req.initrd_addr
            configured = True
        else:
            configured = False
            # High in the kernel's window, leaving room for the boot data right after it.
            with_room = self.find_slot(
                size + reserve, PAGE, taken, high=True, windows=self.kernel_window(), limit=limit
            )
            found = (
                with_room
                if with_room is not None
                else self.find_slot(size, PAGE, taken, high=True, limit=limit)
            )
            if found is None:
                self.error(
                    f"no room for the initrd ({size:#x} bytes) in guest RAM "
                    f"({self.ram_text()}) next to the kernel",
                    "ram",
                    f"give the VM at least {align_up(size, 1 << 20) >> 20} MiB more RAM",
                )
                return
            addr = found
        self.plan.initrd = Placed("initrd", addr, size, size, configured, req.initrd_source)
        if self.window_of(addr, size) is None:
            good = self.find_slot(size, PAGE, taken, high=True, limit=limit)
            self.error(
                f"the initrd {_range(addr, size)} is not inside guest RAM ({self.ram_text()})",
                key,
                f"use initrd_addr = {good:#x}" if good is not None else "give the VM more RAM",
            )
        if limit is not None and addr + size > limit:
            good = self.find_slot(size, PAGE, taken, high=True, limit=limit)
            self.error(
                f"the initrd {_range(addr, size)} ends above the kernel's initrd_addr_max "
                f"({limit - 1:#x})",
                key,
                f"use initrd_addr = {good:#x}" if good is not None else "move RAM lower",
            )

    def boot_data_reserve(self) -> int:
        req = self.request
        if req.boot_data_size is None:
            return 0
        return align_up(max(req.boot_data_size, req.boot_data_reserve or 0), PAGE)

    def place_boot_data(self) -> None:
        req = self.request
        size = req.boot_data_size
        if size is None:
            return
        role = req.boot_data_role
        key = "dtb_addr"
        reserve = max(size, req.boot_data_reserve or 0)
        if role == "dtb" and req.arch == "aarch64" and size > DTB_MAX_SIZE:
            self.error(
                f"the DTB is {size:#x} bytes; Linux arm64 refuses device trees over 2 MiB",
                "dtb",
                "remove unused nodes (or disabled devices) from the device tree",
            )
        taken = [p for p in (self.plan.kernel, self.plan.initrd) if p]
        alignment = DTB_ALIGNMENT if role == "dtb" else PAGE
        if req.boot_data_addr is not None:
            addr = req.boot_data_addr
            configured = True
            if addr % alignment:
                self.error(
                    f"dtb_addr {addr:#x} is not {alignment}-byte aligned; Linux requires it",
                    key,
                    f"use dtb_addr = {align_up(addr, alignment):#x}",
                )
        else:
            configured = False
            found = self.choose_boot_data(reserve, taken)
            if found is None:
                self.error(
                    f"no room for the {role} ({reserve:#x} bytes) in guest RAM "
                    f"({self.ram_text()}) beside the kernel and initrd",
                    "ram",
                    "give the VM more RAM",
                )
                return
            addr = found
        self.plan.boot_data = Placed(role, addr, reserve, size, configured, req.boot_data_source)
        if self.window_of(addr, reserve) is None:
            good = self.choose_boot_data(reserve, taken)
            self.error(
                f"the {role} {_range(addr, reserve)} is not inside guest RAM ({self.ram_text()})",
                key,
                f"use dtb_addr = {good:#x}" if good is not None else "give the VM more RAM",
            )

    def choose_boot_data(self, size: int, taken: Sequence[Placed]) -> int | None:
        """Page-aligned right after the initrd, else right before it, else top of RAM."""
        initrd = self.plan.initrd
        if initrd is not None:
            after = align_up(initrd.end, PAGE)
            before = align_down(initrd.addr - size, PAGE)
            for addr in (after, before):
                slot = Placed("probe", addr, size, size, False)
                if self.window_of(addr, size) and not any(slot.overlaps(p) for p in taken):
                    return addr
        return self.find_slot(size, PAGE, taken, high=True, windows=self.kernel_window())

    def check_overlaps(self) -> None:
        placed = self.plan.placed
        keys = {"kernel": "kernel_entry_addr", "initrd": "initrd_addr"}
        for a, b in combinations(placed, 2):
            if not a.overlaps(b):
                continue
            # Blame the one the user configured; a kernel is moved last (it is the biggest
            # and its address is the least free), and never when its header fixes it.
            movable = b if b.configured or not a.configured else a
            kernel = self.request.kernel
            if movable.role == "kernel" and (
                (kernel is not None and kernel.fixed_address is not None) or not movable.configured
            ):
                movable = b if movable is a else a
            fixed = a if movable is b else b
            others = [p for p in placed if p is not movable]
            if movable.role == "kernel" and kernel is not None:
                good = self.find_slot(
                    movable.size,
                    kernel.base_alignment,
                    others,
                    high=False,
                    offset=kernel.offset_from_base,
                )
            else:
                good = self.find_slot(movable.size, PAGE, others, high=True)
            key = keys.get(movable.role, "dtb_addr")
            self.error(
                f"the {a.role} {_range(a.addr, a.size)} overlaps the {b.role} "
                f"{_range(b.addr, b.size)}"
                + (
                    " (the kernel's size includes its BSS, not just the file)"
                    if "kernel" in (a.role, b.role)
                    else ""
                ),
                key if movable.configured else "ram",
                (
                    (
                        f"use {key} = {good:#x}"
                        if movable.configured
                        else f"put the {movable.role} at {good:#x}"
                    )
                    if good is not None
                    else f"give the VM more RAM (clear of the {fixed.role})"
                ),
            )

    def check_arm64_initrd_window(self) -> None:
        kernel, initrd = self.plan.kernel, self.plan.initrd
        if self.request.arch != "aarch64" or kernel is None or initrd is None:
            return
        start = align_down(min(kernel.addr, initrd.addr), ARM64_INITRD_WINDOW_ALIGN)
        end = max(kernel.end, initrd.end)
        if end - start > ARM64_INITRD_WINDOW_MAX:
            self.error(
                f"the kernel and initrd span {_range(start, end - start)}: Linux arm64 needs "
                "both inside one 1 GiB-aligned window of at most 32 GiB",
                "initrd_addr",
                "place the initrd within 32 GiB of the kernel",
            )

    def run(self) -> ImagePlan:
        if not self.check_ram():
            return self.plan
        self.place_kernel()
        self.place_initrd()
        self.place_boot_data()
        self.check_overlaps()
        self.check_arm64_initrd_window()
        return self.plan


def plan_images(request: PlacementRequest) -> ImagePlan:
    """Choose unconfigured addresses and check every placement rule; never raises."""
    return _Planner(request).run()
