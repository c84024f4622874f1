"""What a Microkit system description says, once parsed: plain dataclasses.

These mirror the tool's own structures (``SysMemoryRegion``, ``SysMap``,
``ProtectionDomain``, ``VirtualMachine``, ``Channel``, ...) closely enough that each check
can be written the way the tool writes it, and every item keeps the :class:`Location` of
the element it came from so findings and the converted :class:`~sel4vmm.config.spec.SystemSpec`
can point back into the user's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sel4vmm.errors import Location


class PhysAddrKind(Enum):
    """Where a memory region's frames come from."""

    #: Any frames; the tool allocates them.
    ANY = "any"
    #: ``phys_addr=`` was given (a device or a fixed carve-out).
    FIXED = "fixed"
    #: No ``phys_addr`` but a ``<setvar region_paddr>`` asks for it, so the tool must pick
    #: one up front.
    TOOL_ALLOCATED = "tool_allocated"


@dataclass
class MemoryRegion:
    """``<memory_region>``: a set of frames, mapped into zero or more address spaces."""

    name: str
    size: int
    page_size: int
    page_size_given: bool
    phys_addr: int | None
    location: Location
    phys_addr_kind: PhysAddrKind = PhysAddrKind.ANY
    prefill_path: str | None = None
    prefill_size: int | None = None
    prefill_bootinfo: str | None = None

    @property
    def page_count(self) -> int:
        return self.size // self.page_size


@dataclass(frozen=True)
class Map:
    """``<map>`` in a PD or VM (``<iomap>`` uses :class:`IoMap`)."""

    mr: str
    vaddr: int
    read: bool
    write: bool
    execute: bool
    cached: bool
    location: Location

    @property
    def perms(self) -> str:
        return "".join(flag for flag, on in zip("rwx", self.access, strict=True) if on)

    @property
    def access(self) -> tuple[bool, bool, bool]:
        return (self.read, self.write, self.execute)


@dataclass(frozen=True)
class SetVar:
    """A symbol in a PD's program image that the tool patches with a value it knows."""

    symbol: str
    #: ``vaddr`` | ``size`` | ``paddr`` | ``id`` | ``ioport_addr`` | ``prefill_size``
    kind: str
    #: The address/id for ``vaddr``/``id``/``ioport_addr``; for the others the MR name.
    value: int | str


@dataclass(frozen=True)
class Irq:
    """``<irq>``: one of the three forms (ARM/RISC-V number, x86 I/O APIC pin, x86 MSI)."""

    id: int
    #: ``conventional`` | ``ioapic`` | ``msi``
    kind: str
    #: The IRQ number (conventional) or the vector (x86); two PDs may not share it.
    number: int
    trigger: str | None = None
    polarity: str | None = None
    ioapic: int | None = None
    pin: int | None = None
    pci_device: PciAddress | None = None
    handle: int | None = None


@dataclass(frozen=True, order=True)
class PciAddress:
    """``bus:device.function``, written and shown in hexadecimal."""

    bus: int
    device: int
    function: int

    def __str__(self) -> str:
        return f"{self.bus:02x}:{self.device:02x}.{self.function:x}"


@dataclass(frozen=True)
class IoPort:
    """``<ioport>`` (x86 only): a range of port I/O space granted to a PD."""

    id: int
    addr: int
    size: int
    #: The tool reports port clashes at the owning PD, so this is the PD's location.
    location: Location


@dataclass(frozen=True)
class CapMap:
    """``<cspace><cap_tcb|cap_sc|cap_vspace>``: another PD's cap copied into a slot."""

    cap_type: str  # "Tcb" | "Sc" | "VSpace"
    pd_name: str
    slot: int
    location: Location


@dataclass(frozen=True)
class VirtualCpu:
    id: int
    cpu: int | None
    setvar_id: str | None
    location: Location


@dataclass
class VirtualMachine:
    """``<virtual_machine>``: a guest whose vCPUs the enclosing PD (the VMM) drives."""

    name: str
    vcpus: list[VirtualCpu]
    maps: list[Map]
    location: Location
    priority: int | None = None
    budget: int | None = None
    period: int | None = None


@dataclass
class ProtectionDomain:
    """``<protection_domain>``; children are nested PDs, flattened after parsing."""

    name: str
    location: Location
    program_image: str
    priority: int = 0
    budget: int = 1000
    period: int = 1000
    passive: bool = False
    stack_size: int = 0x2000
    smc: bool = False
    cpu: int = 0
    fpu: bool = True
    domain: int | None = None
    id: int | None = None
    setvar_id: str | None = None
    #: Microkit 1.4 only: ``pp="true"`` -- other PDs may call this one (2.x marks the
    #: caller's ``<end>`` instead).
    pp: bool = False
    parent: str | None = None
    maps: list[Map] = field(default_factory=list)
    irqs: list[Irq] = field(default_factory=list)
    ioports: list[IoPort] = field(default_factory=list)
    setvars: list[SetVar] = field(default_factory=list)
    cap_maps: list[CapMap] = field(default_factory=list)
    virtual_machine: VirtualMachine | None = None
    children: list[ProtectionDomain] = field(default_factory=list)
    #: The symbols in ``setvars``: duplicates are found in O(1), not by a scan per setvar.
    setvar_symbols: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def has_children(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class ChannelEnd:
    pd: str
    id: int
    notify: bool
    pp: bool
    setvar_id: str | None


@dataclass(frozen=True)
class Channel:
    end_a: ChannelEnd
    end_b: ChannelEnd
    location: Location


@dataclass(frozen=True)
class IoMap:
    """``<iomap>`` inside an ``<io_address_space>``: an MR visible to one device's DMA."""

    address_space: str
    device: str  # e.g. "PCI device 00:03.0"
    mr: str
    iovaddr: int
    read: bool
    write: bool
    location: Location


@dataclass(frozen=True)
class ScheduleEntry:
    domain: int
    #: ``None`` for ``<schedule_end_marker>``.
    duration: int | None
    unit: str | None


@dataclass
class DomainSchedule:
    """``<domains>``: named scheduling domains and the kernel's domain schedule."""

    ids: dict[str, int] = field(default_factory=dict)
    entries: list[ScheduleEntry] = field(default_factory=list)
    start_index: int = 0
    index_shift: int | None = None

    @property
    def declared(self) -> bool:
        return bool(self.ids)


@dataclass
class SystemDescription:
    """A whole ``.system`` file; ``protection_domains`` is flat, parents before children."""

    path: str
    memory_regions: list[MemoryRegion]
    protection_domains: list[ProtectionDomain]
    channels: list[Channel]
    iomaps: list[IoMap]
    domains: DomainSchedule

    def memory_region(self, name: str) -> MemoryRegion | None:
        for region in self.memory_regions:
            if region.name == name:
                return region
        return None
