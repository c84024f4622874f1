"""The format-independent description of a VM that both configuration readers produce.

Microkit system descriptions and CAmkES VM configurations say the same things in different
words: where guest RAM is, whether it is backed 1:1, which pools of untyped memory back it,
which device windows are passed through or emulated, where the images go.  Readers turn
their format into these dataclasses (keeping the :class:`~sel4vmm.errors.Location` of every
item so findings can point back into the user's file); the planner only ever sees these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sel4vmm.errors import Location


class RegionKind(Enum):
    """What a guest-physical window is."""

    RAM = "ram"
    #: A device of the board mapped into the guest (UART, GIC vCPU interface).
    PASSTHROUGH = "passthrough"
    #: A window whose accesses fault into the VMM (GIC distributor, virtio-mmio).
    EMULATED = "emulated"
    #: Shared memory mapped into the guest (a Microkit memory region that is not RAM).
    SHARED = "shared"


@dataclass
class GuestRegion:
    """One window of the guest-physical address space."""

    name: str
    kind: RegionKind
    guest_addr: int
    size: int
    #: Physical address when fixed (1:1 RAM, passthrough devices, Microkit ``phys_addr``).
    phys_addr: int | None = None
    #: Frame size in bits the region is mapped with (12, 21 or 30).
    page_bits: int = 12
    perms: str = "rw"
    cached: bool = True
    location: Location | None = None
    #: The :class:`SharedRegionSpec` this window maps, when other VMs or components map
    #: the same memory (a Microkit memory region, a CAmkES cross-VM dataport).
    shared: str | None = None


@dataclass
class UntypedPoolSpec:
    """``simple_untypedN_pool = count``: ``count`` untyped objects of ``2**size_bits`` bytes."""

    size_bits: int
    count: int
    location: Location | None = None


@dataclass
class DeviceUntypedSpec:
    """``untyped_mmios = ["0xADDR:bits"]``: a device untyped at a fixed physical address."""

    paddr: int
    size_bits: int
    location: Location | None = None


@dataclass
class DeviceFramesSpec:
    """``mmios = ["0xADDR:0xSIZE:bits"]``: device frames of ``2**page_bits`` at a fixed address."""

    paddr: int
    size: int
    page_bits: int
    location: Location | None = None


@dataclass
class ImageSpec:
    """Where the guest images go and what the VMM tells the kernel (CAmkES image config)."""

    kernel: str | None = None
    dtb: str | None = None
    initrd: str | None = None
    bootargs: str | None = None
    stdout: str | None = None
    kernel_entry_addr: int | None = None
    dtb_addr: int | None = None
    initrd_addr: int | None = None
    #: Name of the DTB file to start from (``dtb_base_name``) or None.
    dtb_base: str | None = None
    provide_dtb: bool = True
    generate_dtb: bool = False
    provide_initrd: bool = True
    locations: dict[str, Location] = field(default_factory=dict)


@dataclass
class VmSpec:
    """One virtual machine as a configuration describes it."""

    name: str
    arch: str = "aarch64"
    board: str | None = None
    ram_base: int = 0
    ram_size: int = 0
    #: Where guest RAM lives physically; ``None`` means "any frames from the pools".
    ram_paddr_base: int | None = None
    one_to_one: bool = False
    num_vcpus: int = 1
    regions: list[GuestRegion] = field(default_factory=list)
    pools: list[UntypedPoolSpec] = field(default_factory=list)
    device_untypeds: list[DeviceUntypedSpec] = field(default_factory=list)
    device_frames: list[DeviceFramesSpec] = field(default_factory=list)
    #: Device-tree paths passed through (CAmkES ``dtb = dtb({"path": ...})``).
    dtb_passthrough: list[str] = field(default_factory=list)
    images: ImageSpec = field(default_factory=ImageSpec)
    #: Set when the configuration never said ``kernel_entry_addr`` (deprecated default).
    location: Location | None = None
    ram_location: Location | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class SharedMapping:
    """One mapping of a shared region: who maps it, where, with which rights."""

    #: A VM's name, or a component's (Microkit protection domain, CAmkES instance).
    owner: str
    #: ``"vm"`` (a guest-physical address) or ``"component"`` (a VMM or other PD's
    #: virtual address, which the VMM reads and writes for a VM-to-VMM region).
    owner_kind: str
    #: Guest-physical (VM) or virtual (component) address; ``None`` where the build
    #: chooses it (a CAmkES component's dataport symbol).
    addr: int | None
    perms: str = "rw"
    location: Location | None = None


@dataclass
class SharedRegionSpec:
    """Memory several parties map: one set of frames, several mappings of it."""

    name: str
    size: int
    page_bits: int = 12
    phys_addr: int | None = None
    mappings: list[SharedMapping] = field(default_factory=list)
    location: Location | None = None

    @property
    def vm_names(self) -> list[str]:
        return [m.owner for m in self.mappings if m.owner_kind == "vm"]

    def sharers(self) -> list[str]:
        """Every owner, in the order the configuration maps them."""
        return [m.owner for m in self.mappings]


@dataclass
class NotificationSpec:
    """A notification one party signals and another receives (a Microkit channel between
    two protection domains, a CAmkES event over ``seL4Notification``/``seL4GlobalAsynch``).

    For a guest the VMM turns a signal into an interrupt; ``receiver_id`` is the badge
    (Microkit channel id) the receiver knows it by, ``sender_id`` the one the sender uses.
    """

    name: str
    sender: str
    sender_kind: str  # "vm" | "component"
    sender_id: int
    receiver: str
    receiver_kind: str
    receiver_id: int
    location: Location | None = None


@dataclass
class DoorbellSpec:
    """Where a VM's doorbell page sits and which interrupt the VMM injects through it.

    ``layout`` names the register layout (:mod:`sel4vmm.devices.doorbell`):
    ``"microkit"`` (one page per VM, one register per channel id) or ``"camkes-crossvm"``
    (camkes-vm's event bar, one page per cross-VM connection, ``index`` its position).
    """

    vm: str
    layout: str
    base: int
    irq: int | None
    index: int = 0
    #: The connection (CAmkES) the page belongs to; empty for Microkit.
    connection: str = ""
    location: Location | None = None


@dataclass
class Finding:
    """A warning or error about a configuration, with the place and the fix."""

    severity: str  # "error" | "warning" | "note"
    message: str
    location: Location | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


@dataclass
class SystemSpec:
    """Everything one configuration file describes: its VMs and the checker's findings."""

    path: str
    format: str  # "microkit" | "camkes"
    vms: list[VmSpec] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    board: str | None = None
    #: Memory mapped by more than one VM or by a VM and a component.
    shared_regions: list[SharedRegionSpec] = field(default_factory=list)
    #: Notifications into or out of a VM.
    notifications: list[NotificationSpec] = field(default_factory=list)
    #: The doorbell pages through which guests ring and receive notifications.
    doorbells: list[DoorbellSpec] = field(default_factory=list)
    #: The non-VM components a VM shares memory or events with: instance -> type name
    #: (CAmkES ``component CrossvmInit crossvm_init;``; a Microkit PD's type is "pd").
    components: dict[str, str] = field(default_factory=dict)

    def shared_region(self, name: str) -> SharedRegionSpec | None:
        return next((r for r in self.shared_regions if r.name == name), None)
