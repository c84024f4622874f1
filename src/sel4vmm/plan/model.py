"""What a plan says: per VM, the guest-physical map, the resources, the findings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.boards import Board
from sel4vmm.config.spec import DoorbellSpec, Finding, NotificationSpec, SharedRegionSpec
from sel4vmm.errors import Location
from sel4vmm.vm import ResourceReport, VirtualMachine


@dataclass
class MapEntry:
    """One window of a guest's physical address space (or a hole between windows)."""

    start: int
    size: int
    #: "ram", "passthrough", "emulated", "shared" or "hole".
    kind: str
    name: str
    #: How it is backed: "pool frames", "1:1 frames", "fixed frames", "device frames",
    #: "VMM emulation (faults)", "not backed" or "" for holes.
    backing: str = ""
    page_bits: int | None = None
    #: Physical (paddr, size) pieces behind the window.
    physical: list[tuple[int, int]] = field(default_factory=list)
    location: Location | None = None
    #: The other VMs and components that map the same frames (a shared region), in the
    #: configuration's order; empty when the window is this VM's alone.
    shared_with: list[str] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class VmPlan:
    """One VM: the map, what it costs, and what is wrong with it."""

    name: str
    arch: str
    ram_base: int
    ram_size: int
    entries: list[MapEntry] = field(default_factory=list)
    resources: ResourceReport | None = None
    findings: list[Finding] = field(default_factory=list)
    vm: VirtualMachine | None = None


@dataclass
class SystemPlan:
    """A whole configuration planned on one board."""

    path: str
    format: str
    board: Board
    vms: list[VmPlan] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: What the VMs share, as the configuration says it (the map entries show the frames).
    shared_regions: list[SharedRegionSpec] = field(default_factory=list)
    notifications: list[NotificationSpec] = field(default_factory=list)
    doorbells: list[DoorbellSpec] = field(default_factory=list)

    def all_findings(self) -> list[Finding]:
        return [*self.findings, *(f for vm in self.vms for f in vm.findings)]

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.all_findings())
