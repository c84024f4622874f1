"""Walk the ``<system>`` element and read each top-level element in document order.

Order matters exactly as it does for the tool: a PD can only name domains declared
*above* it, and the first problem met is the one reported.  Channels are kept as elements
here and read once every PD is known (see :mod:`.system_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, location_text
from sel4vmm.config.microkit.iommu import IoAddressSpaceRegistry, parse_io_address_space
from sel4vmm.config.microkit.model import DomainSchedule, IoMap, MemoryRegion, ProtectionDomain
from sel4vmm.config.microkit.protection_domains import parse_protection_domain
from sel4vmm.config.microkit.regions import parse_memory_region
from sel4vmm.config.microkit.schedule import parse_domains
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import SYSTEM_ELEMENTS_1_4, MicrokitVersion
from sel4vmm.config.microkit.xmlsource import XmlElement


@dataclass
class ParsedSystem:
    """Top-level elements read one by one; PDs still nested, channels still XML."""

    root_pds: list[ProtectionDomain] = field(default_factory=list)
    memory_regions: list[MemoryRegion] = field(default_factory=list)
    channel_elements: list[XmlElement] = field(default_factory=list)
    iomaps: list[IoMap] = field(default_factory=list)
    domains: DomainSchedule = field(default_factory=DomainSchedule)
    warnings: list[Diagnostic] = field(default_factory=list)


def _check_no_text(system: XmlElement) -> None:
    """Only whitespace and comments may sit between the top-level elements."""
    for run in system.texts:
        # sdf.rs check_no_text: text that comes first is <system>'s own text() (reported
        # at <system>); any later text node is checked on its own, and a text node's tag
        # name is empty -- so the tool names the element ''.
        if run.is_first_child:
            where, name = system.location, "system"
        else:
            where, name = run.location, ""
        raise MicrokitError.at(
            f"unexpected text found in element '{name}'",
            where,
            message=f"unexpected text found in <{system.tag}>",
            fix="remove the stray text or wrap it in <!-- -->",
        )


def parse_system(root: XmlElement, target: MicrokitTarget) -> ParsedSystem:
    if root.tag != "system":
        # sdf.rs: ``doc.root().children().find(.. == "system").unwrap()`` -- a panic.
        raise MicrokitError.crash(
            root,
            f"a root element <{root.tag}>: it looks for <system> and unwraps the result",
            "called `Option::unwrap()` on a `None` value",
            fix="a Microkit system description is one <system> element",
        )
    _check_no_text(root)
    parsed = ParsedSystem()
    registry = IoAddressSpaceRegistry()
    v14 = target.microkit is MicrokitVersion.V1_4
    if v14 and target.arch == "x86_64":
        raise MicrokitError.bare(
            "Microkit 1.4 does not support x86-64",
            location=root.location,
            fix="x86-64 systems need Microkit 2.x: check without --microkit 1.4",
        )
    for child in root.children:
        tag = child.tag
        if v14 and tag not in SYSTEM_ELEMENTS_1_4:
            # 1.4.1 sdf.rs: no "Error: " prefix here.
            raise MicrokitError.plain(
                f"Invalid XML element '{tag}': {location_text(child.location)}",
                location=child.location,
                message=f"invalid XML element '{tag}' (Microkit 1.4)",
                fix=f"Microkit 1.4 has no <{tag}> at the top level; it needs 2.x",
            )
        if tag == "protection_domain":
            parsed.root_pds.append(
                parse_protection_domain(child, target, parsed.domains, parsed.warnings)
            )
        elif tag == "channel":
            parsed.channel_elements.append(child)
        elif tag == "memory_region":
            parsed.memory_regions.append(parse_memory_region(child, target))
        elif tag == "io_address_space":
            parsed.iomaps.extend(parse_io_address_space(child, target, registry))
        elif tag == "virtual_machine":
            raise MicrokitError.colon(
                "virtual machine must be a child of a protection domain",
                child.location,
                fix="move the <virtual_machine> inside its VMM's <protection_domain>",
            )
        elif tag == "domains":
            if parsed.domains.declared:
                raise MicrokitError.on_element(child, "domains must only be specified once")
            parsed.domains = parse_domains(child, target)
        else:
            raise MicrokitError.colon(f"invalid XML element '{tag}'", child.location)
    return parsed
