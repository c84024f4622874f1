"""A virtual machine: its CSpace, its allocator over its untyped, its address space and RAM.

This is what libsel4vm's ``vm_t`` holds for memory.  :meth:`VirtualMachine.create` does what
a VMM does at start-up — take the untyped objects, device untyped and device frames the
configuration promised from the platform, then make the VSpace root and, per vCPU, a TCB
and a VCPU object — so the resources it reports are what a real start-up would consume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.address_space import GuestAddressSpace, frame_iterator
from sel4vmm.memory.faults import FaultCallback
from sel4vmm.memory.guest_ram import GuestRam
from sel4vmm.memory.reservation import Reservation
from sel4vmm.memory.stage2 import Stage2Tables
from sel4vmm.sel4.allocator import ObjectAllocator, Request
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ENDPOINT_BITS, ObjectKind, ObjectRun
from sel4vmm.sel4.ownership import PhysicalOwnership, ownership_of
from sel4vmm.sel4.platform import Sel4Platform


@dataclass(frozen=True)
class PoolRequest:
    """``simple_untyped<size_bits>_pool = count``."""

    size_bits: int
    count: int


@dataclass(frozen=True)
class DeviceUntypedRequest:
    """``untyped_mmios = ["paddr:size_bits"]``."""

    paddr: int
    size_bits: int


@dataclass(frozen=True)
class DeviceFramesRequest:
    """``mmios = ["paddr:size:page_bits"]``."""

    paddr: int
    size: int
    page_bits: int = 12


@dataclass
class ResourceReport:
    """The seL4 resources one VM consumed."""

    untyped_given: Counter[tuple[int, bool]] = field(default_factory=Counter)
    untyped_used: Counter[tuple[int, bool]] = field(default_factory=Counter)
    objects: Counter[tuple[str, int]] = field(default_factory=Counter)
    bytes_lost_to_alignment: int = 0
    cspace_used: int = 0
    cspace_peak: int = 0
    cnode_bits: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "untyped_given": [
                {"size_bits": b, "device": d, "count": n}
                for (b, d), n in sorted(self.untyped_given.items())
            ],
            "untyped_used": [
                {"size_bits": b, "device": d, "count": n}
                for (b, d), n in sorted(self.untyped_used.items())
            ],
            "objects": [
                {"kind": k, "size_bits": b, "count": n}
                for (k, b), n in sorted(self.objects.items())
            ],
            "bytes_lost_to_alignment": self.bytes_lost_to_alignment,
            "cspace_slots_used": self.cspace_used,
            "cspace_slots_peak": self.cspace_peak,
            "cnode_size_bits": self.cnode_bits,
        }


class VirtualMachine:
    """One guest's memory system over the seL4 objects it was given."""

    def __init__(self, name: str, platform: Sel4Platform, *, cnode_bits: int | None = None):
        self.name = name
        self.platform = platform
        self.arch = platform.arch
        self.physmem = platform.physmem
        self.undo = platform.undo
        self.cspace = CSpace(self.undo, cnode_bits)
        self.allocator = ObjectAllocator(self.arch, self.cspace, self.undo, owner=name)
        self.tables = Stage2Tables(self.arch, self.allocator, self.undo)
        self.memory = GuestAddressSpace(self.arch, self.cspace, self.tables, self.undo, vm=self)
        self.ram = GuestRam(
            self.memory, self.allocator, self.physmem, self.cspace, self.undo, vm=self
        )
        self.device_frames: list[ObjectRun] = []
        self.num_vcpus = 0
        #: libsel4vm's ``CONFIG_X86_64_VTX_64BIT_GUESTS`` (from seL4's
        #: ``KernelX86_64VTX64BitGuests``): sel4vmm's x86 guests are 64-bit, so on by default.
        self.vtx_64bit_guests = self.arch.name == "x86_64"

    @classmethod
    def create(
        cls,
        name: str,
        platform: Sel4Platform,
        *,
        pools: Iterable[PoolRequest] = (),
        device_untypeds: Iterable[DeviceUntypedRequest] = (),
        device_frames: Iterable[DeviceFramesRequest] = (),
        num_vcpus: int = 1,
        cnode_bits: int | None = None,
        share_platform_memory: bool = False,
    ) -> VirtualMachine:
        """Give the VM its resources and make its kernel objects; all or nothing."""
        if num_vcpus < 1:
            raise Sel4VmmError(f"{name}: a VM needs at least one vCPU", fix="num_vcpus = 1")
        vm = cls(name, platform, cnode_bits=cnode_bits)
        with platform.undo.transaction():
            # Fixed-address objects first, as the capDL loader and Microkit tool do, so
            # that pools carved "anywhere" cannot land on them.
            for request in device_untypeds:
                vm.allocator.add_untyped(
                    platform.carve_untyped_at(request.paddr, request.size_bits, "untyped_mmios")
                )
            for frames in device_frames:
                run = platform.carve_frames_at(frames.paddr, frames.size, frames.page_bits)
                vm.allocator.add_frames(run)
                vm.device_frames.append(run)
            if share_platform_memory:
                # Microkit: no pools; the tool retypes a VM's objects straight from the
                # kernel's untyped, so the VM allocates from the platform's own list.
                vm.allocator.untypeds = platform.root.untypeds
                vm.allocator.growth_advice = platform.root.growth_advice
                vm.allocator.owner = f"{name} ({platform.board_name} RAM)"
                vm.allocator.frames_may_use_device = False
            for pool in pools:
                if pool.count < 0:
                    raise Sel4VmmError(f"{name}: negative pool size {pool.count}")
                for untyped in platform.carve_untyped(
                    pool.size_bits, pool.count, f"simple_untyped{pool.size_bits}_pool"
                ):
                    vm.allocator.add_untyped(untyped)
            vm.tables.create_root()
            vm.allocator.retype_batch(
                [
                    Request(ObjectKind.VCPU, vm.arch.vcpu_bits, num_vcpus),
                    Request(ObjectKind.TCB, vm.arch.tcb_bits, num_vcpus),
                    Request(ObjectKind.ENDPOINT, ENDPOINT_BITS, 1),
                ]
            )
            vm.num_vcpus = num_vcpus
        vm.ownership.add(vm.allocator)
        return vm

    @property
    def ownership(self) -> PhysicalOwnership:
        """Who owns which physical memory on this VM's platform (every VM made on it)."""
        return ownership_of(self.physmem, self.platform.root)

    # -- libsel4vm-style conveniences -------------------------------------------------------
    def set_unhandled_fault_handler(
        self, callback: FaultCallback | None, cookie: Any = None
    ) -> None:
        """``vm_register_unhandled_mem_fault_callback``."""
        self.memory.set_unhandled_fault_handler(callback, cookie)

    def _covering_device_frames(self, paddr: int, size: int) -> ObjectRun | None:
        return next(
            (r for r in self.device_frames if r.paddr <= paddr and paddr + size <= r.end), None
        )

    def device_frame_run(self, paddr: int, size: int) -> tuple[ObjectRun, int]:
        """The device-frame run and first index covering ``[paddr, paddr + size)``."""
        run = self._covering_device_frames(paddr, size)
        if run is not None:
            return run, (paddr - run.paddr) >> run.size_bits
        raise Sel4VmmError(
            f"{self.name}: no device frames cover [{paddr:#x}, {paddr + size:#x})",
            fix=f'give the VM mmios = ["{paddr:#x}:{size:#x}:12"]',
        )

    def map_device(
        self, guest_addr: int, paddr: int, size: int, *, page_bits: int = 12, label: str = "device"
    ) -> Reservation:
        """Pass a device window through: frames at ``paddr`` mapped at ``guest_addr``.

        Frames come from the VM's ``mmios`` frames if they cover the window, else from a
        device untyped the VM holds (``untyped_mmios``), else from the board's device
        untyped (what the Microkit tool does for a memory region with ``phys_addr``).
        """
        frame = 1 << page_bits
        if paddr % frame or size % frame or guest_addr % frame or size <= 0:
            raise Sel4VmmError(
                f"{self.name}: device window {label} {paddr:#x}+{size:#x} at {guest_addr:#x} "
                f"is not a whole number of aligned 2^{page_bits} frames",
                fix=f"align addresses and size to {frame:#x}",
            )
        count = size // frame
        with self.undo.transaction():
            runs: list[ObjectRun]
            covering = self._covering_device_frames(paddr, size)
            if covering is not None and covering.size_bits == page_bits:
                # The whole run laid out so that the window's first frame is at guest_addr.
                run_base = guest_addr - (paddr - covering.paddr)
                reservation = self.memory.reserve_at(guest_addr, size, label=label)
                self.memory.map(reservation, frame_iterator([covering], run_base, "rw"))
                return reservation
            if self.allocator.covering(paddr) is not None:
                runs = self.allocator.retype_at(ObjectKind.FRAME, paddr, page_bits, count)
            else:
                carved = self.platform.carve_frames_at(paddr, size, page_bits)
                self.allocator.add_frames(carved)
                self.device_frames.append(carved)
                runs = [carved]
            reservation = self.memory.reserve_at(guest_addr, size, label=label)
            self.memory.map(reservation, frame_iterator(runs, guest_addr, "rw"))
            return reservation

    def map_shared_frames(
        self, guest_addr: int, runs: list[ObjectRun], *, label: str, rights: str = "rw"
    ) -> Reservation:
        """Map copies of frame caps another component holds (a Microkit memory region
        mapped into several VMs, the GIC vCPU interface every VM sees): one copy per frame
        in this VM's CSpace, the frames themselves shared."""
        with self.undo.transaction():
            copies = []
            for run in runs:
                copy = replace(run, first_cptr=0, mapped=None)
                self.allocator.add_frames(copy)
                copies.append(copy)
            size = sum(run.size for run in runs)
            reservation = self.memory.reserve_at(guest_addr, size, label=label)
            self.memory.map(reservation, frame_iterator(copies, guest_addr, rights))
            return reservation

    def frames_of(self, reservation: Reservation) -> list[ObjectRun]:
        """The frame runs mapped in ``reservation`` (to share them with another VM)."""
        runs: list[ObjectRun] = []
        for cptr, _count in reservation.mapped_caps:
            found = self.cspace.lookup(cptr)
            owner = found[0] if found is not None else None
            if isinstance(owner, ObjectRun) and (not runs or runs[-1] is not owner):
                runs.append(owner)
        return runs

    def resources(self) -> ResourceReport:
        """What this VM consumed so far: untyped, objects, CSpace."""
        report = ResourceReport()
        for untyped in self.allocator.given:
            report.untyped_given[(untyped.size_bits, untyped.device)] += 1
            if untyped.watermark:
                report.untyped_used[(untyped.size_bits, untyped.device)] += 1
        for (kind, bits), count in self.allocator.object_counts().items():
            report.objects[(kind.value, bits)] += count
        report.bytes_lost_to_alignment = sum(u.lost for u in self.allocator.untypeds)
        report.cspace_used = self.cspace.used
        report.cspace_peak = self.cspace.peak
        report.cnode_bits = self.cspace.cnode_bits()
        return report
