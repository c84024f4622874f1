"""A virtual machine: its CSpace, its allocator over its untyped, its address space and RAM.

This is what libsel4vm's ``vm_t`` holds for memory.  :meth:`VirtualMachine.create` does what
a VMM does at start-up — take the untyped objects, device untyped and device frames the
configuration promised from the platform, then make the VSpace root and, per vCPU, a TCB
and a VCPU object — so the resources it reports are what a real start-up would consume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.address_space import GuestAddressSpace
from sel4vmm.memory.faults import FaultCallback
from sel4vmm.memory.guest_ram import GuestRam
from sel4vmm.memory.stage2 import Stage2Tables
from sel4vmm.sel4.allocator import ObjectAllocator, Request
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ENDPOINT_BITS, ObjectKind, ObjectRun
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.sel4.untyped import Untyped


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
    ) -> VirtualMachine:
        """Give the VM its resources and make its kernel objects; all or nothing."""
        if num_vcpus < 1:
            raise Sel4VmmError(f"{name}: a VM needs at least one vCPU", fix="num_vcpus = 1")
        vm = cls(name, platform, cnode_bits=cnode_bits)
        with platform.undo.transaction():
            for pool in pools:
                if pool.count < 0:
                    raise Sel4VmmError(f"{name}: negative pool size {pool.count}")
                for untyped in platform.carve_untyped(
                    pool.size_bits, pool.count, f"simple_untyped{pool.size_bits}_pool"
                ):
                    vm.allocator.add_untyped(untyped)
            for request in device_untypeds:
                vm.allocator.add_untyped(
                    platform.carve_untyped_at(request.paddr, request.size_bits, "untyped_mmios")
                )
            for frames in device_frames:
                run = platform.carve_frames_at(frames.paddr, frames.size, frames.page_bits)
                vm.allocator.add_frames(run)
                vm.device_frames.append(run)
            vm.tables.create_root()
            vm.allocator.retype_batch(
                [
                    Request(ObjectKind.VCPU, vm.arch.vcpu_bits, num_vcpus),
                    Request(ObjectKind.TCB, vm.arch.tcb_bits, num_vcpus),
                    Request(ObjectKind.ENDPOINT, ENDPOINT_BITS, 1),
                ]
            )
            vm.num_vcpus = num_vcpus
        return vm

    # -- libsel4vm-style conveniences -------------------------------------------------------
    def set_unhandled_fault_handler(
        self, callback: FaultCallback | None, cookie: Any = None
    ) -> None:
        """``vm_register_unhandled_mem_fault_callback``."""
        self.memory.set_unhandled_fault_handler(callback, cookie)

    def device_frame_run(self, paddr: int, size: int) -> tuple[ObjectRun, int]:
        """The device-frame run and first index covering ``[paddr, paddr + size)``."""
        for run in self.device_frames:
            if run.paddr <= paddr and paddr + size <= run.end:
                return run, (paddr - run.paddr) >> run.size_bits
        raise Sel4VmmError(
            f"{self.name}: no device frames cover [{paddr:#x}, {paddr + size:#x})",
            fix=f'give the VM mmios = ["{paddr:#x}:{size:#x}:12"]',
        )

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

    def given_untypeds(self) -> list[Untyped]:
        return list(self.allocator.given)
