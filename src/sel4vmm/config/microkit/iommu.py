"""``<io_address_space>``: what one DMA-capable device may reach through the IOMMU.

Each address space belongs to one device (a PCI function on x86) and holds ``<iomap>``s
placing memory regions at I/O virtual addresses.  Names, x86 IOMMU domain ids and device
identifiers must all be unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    required,
    required_number,
)
from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.model import IoMap
from sel4vmm.config.microkit.pci import PciAddressError, parse_pci_address
from sel4vmm.config.microkit.target import MAX_IOVA, MicrokitTarget
from sel4vmm.config.microkit.xmlsource import XmlElement


@dataclass
class IoAddressSpaceRegistry:
    """What earlier ``<io_address_space>`` elements claimed, to catch reuse."""

    names: set[str] = field(default_factory=set)
    domain_ids: set[int] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)


def _device(element: XmlElement, target: MicrokitTarget) -> str:
    identifier = required(element, "peripheral_id")
    if target.arch != "x86_64":
        reason = f"IOMMU device identifiers are not supported on {target.display_name}"
    else:
        try:
            return f"PCI device {parse_pci_address(identifier)}"
        except PciAddressError as error:
            reason = str(error)
    raise MicrokitError.on_element(
        element, f"failed to parse device peripheral_id '{identifier}': {reason}"
    )


def _iomap(element: XmlElement, space: str, device: str) -> IoMap:
    check_attributes(element, ("mr", "iovaddr", "perms"))
    mr = required(element, "mr")
    iovaddr = required_number(element, "iovaddr")
    if iovaddr > MAX_IOVA:
        raise MicrokitError.on_element(
            element, f"iovaddr ({iovaddr:#x}) must be less than {MAX_IOVA + 1:#x}"
        )
    perms = element.get("perms")
    if perms is None:
        perms = "rw"
    if not perms or any(flag not in "rw" for flag in perms):
        raise MicrokitError.on_element(
            element,
            "perms for io mapped memory must only be a combination of 'r' and 'w'",
            fix="devices cannot execute; use r, w or rw",
        )
    return IoMap(space, device, mr, iovaddr, "r" in perms, "w" in perms, element.location)


def parse_io_address_space(
    element: XmlElement, target: MicrokitTarget, registry: IoAddressSpaceRegistry
) -> list[IoMap]:
    if not target.iommu:
        raise MicrokitError.colon(
            "io address space requires seL4 to be built with IOMMU support",
            element.location,
        )
    check_attributes(element, ("name", "peripheral_id", "domain_id"))
    name = required(element, "name")
    if name in registry.names:
        raise MicrokitError.on_element(element, f"duplicate name '{name}'")
    registry.names.add(name)
    if target.arch == "x86_64":
        domain_id = required_number(element, "domain_id")
        if domain_id in registry.domain_ids:
            raise MicrokitError.on_element(element, "reusing a domain id is forbidden")
        registry.domain_ids.add(domain_id)
    device = _device(element, target)
    if device in registry.devices:
        raise MicrokitError.on_element(element, f"duplicate device peripheral_id '{device}'")
    registry.devices.add(device)

    iomaps = []
    for child in element.children:
        if child.tag != "iomap":
            raise MicrokitError.colon(f"invalid XML element '{child.tag}'", child.location)
        iomaps.append(_iomap(child, name, device))
    return iomaps
