"""Checks that need the whole system: names, ids, maps, overlaps -- in the tool's order.

After every element has been read on its own, the tool flattens the PD tree, reads the
channels, and then validates global properties one after another, stopping at the first
failure.  This module does the same, so the error a user sees is the one ``microkit``
would print (the rules for the maps of one address space are in :mod:`.map_checks`).  It
also performs the tool's silent page-size upgrade: a region whose size and every mapping
address are 2 MiB aligned is backed with 2 MiB frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sel4vmm.config.microkit.channels import parse_channel
from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, location_text, warning
from sel4vmm.config.microkit.map_checks import U64_LIMIT, check_io_maps, check_maps
from sel4vmm.config.microkit.model import (
    Channel,
    Map,
    MemoryRegion,
    PhysAddrKind,
    ProtectionDomain,
    SetVar,
    SystemDescription,
)
from sel4vmm.config.microkit.overlaps import first_overlap
from sel4vmm.config.microkit.parse import ParsedSystem
from sel4vmm.config.microkit.protection_domains import add_setvar
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import MicrokitVersion

MONITOR_PD_NAME = "monitor"


def flatten(pds: Sequence[ProtectionDomain]) -> list[ProtectionDomain]:
    """Parents before their children, depth first, with child ids checked per parent."""
    flat: list[ProtectionDomain] = []
    for pd in pds:
        seen: set[int] = set()
        vcpu_ids = {vcpu.id for vcpu in pd.virtual_machine.vcpus} if pd.virtual_machine else set()
        for child in pd.children:
            assert child.id is not None
            if child.id in seen:
                raise MicrokitError.at(
                    f"duplicate id: {child.id} in protection domain: '{pd.name}'",
                    child.location,
                )
            if child.id in vcpu_ids:
                raise MicrokitError.at(
                    f"duplicate id: {child.id} clashes with virtual machine vcpu id in "
                    f"protection domain: '{pd.name}'",
                    child.location,
                )
            seen.add(child.id)
        flat.append(pd)
        for child in pd.children:
            child.parent = pd.name
        flat.extend(flatten(pd.children))
    return flat


def _check_names(
    pds: Sequence[ProtectionDomain],
    regions: Sequence[MemoryRegion],
    max_pds: int,
    *,
    reserve_monitor: bool,
) -> None:
    if not pds:
        raise MicrokitError.bare(
            "at least one protection domain must be defined",
            fix="add a <protection_domain> with a <program_image>",
        )
    if len(pds) > max_pds:
        raise MicrokitError.bare(
            f"too many protection domains ({len(pds)}) defined. Maximum is {max_pds}."
        )
    seen_pds: set[str] = set()
    for pd in pds:
        if pd.name in seen_pds:
            raise MicrokitError.bare(
                f"duplicate protection domain name '{pd.name}'.", location=pd.location
            )
        seen_pds.add(pd.name)
        if reserve_monitor and pd.name == MONITOR_PD_NAME:
            raise MicrokitError.bare(
                "the PD name 'monitor' is reserved for the Microkit Monitor.",
                location=pd.location,
            )
    seen_regions: set[str] = set()
    for region in regions:
        if region.name in seen_regions:
            raise MicrokitError.bare(
                f"duplicate memory region name '{region.name}'.", location=region.location
            )
        seen_regions.add(region.name)


def _check_vms(pds: Sequence[ProtectionDomain], target: MicrokitTarget) -> None:
    names: set[str] = set()
    for pd in pds:
        vm = pd.virtual_machine
        if vm is not None:
            if vm.name in names:
                raise MicrokitError.bare(
                    f"duplicate virtual machine name '{vm.name}'.", location=vm.location
                )
            names.add(vm.name)
        if target.arch == "x86_64" and vm is not None and pd.has_children:
            # seL4_VMEnter only checks the VMM's bound notification, so child PDs that
            # fault into the VMM's endpoint would never be served while the guest runs.
            raise MicrokitError.colon(
                f"It is not possible for PD '{pd.name}' with a bound vCPU to have children "
                "on x86_64",
                pd.location,
            )


def _check_irqs_and_channels(system: SystemDescription, target: MicrokitTarget) -> None:
    pds = {pd.name: pd for pd in system.protection_domains}
    numbers: set[int] = set()
    for pd in system.protection_domains:
        for irq in pd.irqs:
            if irq.number in numbers:
                raise MicrokitError.at(
                    f"duplicate irq: {irq.number} in protection domain: '{pd.name}'",
                    pd.location,
                )
            numbers.add(irq.number)

    channel_ids: dict[str, set[int]] = {name: set() for name in pds}
    for pd in system.protection_domains:
        for irq in pd.irqs:
            if irq.id in channel_ids[pd.name]:
                raise MicrokitError.at(
                    f"duplicate channel id: {irq.id} in protection domain: '{pd.name}'",
                    pd.location,
                )
            channel_ids[pd.name].add(irq.id)

    for channel in system.channels:
        for end in (channel.end_a, channel.end_b):
            if end.id in channel_ids[end.pd]:
                raise MicrokitError.at(
                    f"duplicate channel id: {end.id} in protection domain: '{end.pd}'",
                    pds[end.pd].location,
                )
        if target.microkit is MicrokitVersion.V1_4:
            # 1.4.1 sdf.rs checks no PPC direction or priority.
            channel_ids[channel.end_a.pd].add(channel.end_a.id)
            channel_ids[channel.end_b.pd].add(channel.end_b.id)
            continue
        pd_a, pd_b = pds[channel.end_a.pd], pds[channel.end_b.pd]
        for caller_end, caller, callee in (
            (channel.end_a, pd_a, pd_b),
            (channel.end_b, pd_b, pd_a),
        ):
            if caller_end.pp and caller.priority >= callee.priority:
                raise MicrokitError.bare(
                    "PPCs must be to protection domains of strictly higher priorities; "
                    f"channel with PPC exists from pd {caller.name} (priority: "
                    f"{caller.priority}) to pd {callee.name} (priority: {callee.priority})",
                    location=channel.location,
                    fix=f"give '{callee.name}' a higher priority than '{caller.name}'",
                )
        if target.arch == "x86_64":
            for caller_end, caller, callee in (
                (channel.end_a, pd_a, pd_b),
                (channel.end_b, pd_b, pd_a),
            ):
                if caller_end.pp and callee.virtual_machine is not None:
                    raise MicrokitError.at(
                        f"It is not possible to PPC to PD '{callee.name}' with a bound vCPU "
                        f"from PD '{caller.name}' on x86_64",
                        pd_a.location,
                    )
        channel_ids[channel.end_a.pd].add(channel.end_a.id)
        channel_ids[channel.end_b.pd].add(channel.end_b.id)


def _check_ioports(pds: Sequence[ProtectionDomain]) -> None:
    for pd in pds:
        ids: set[int] = set()
        for port in pd.ioports:
            if port.id in ids:
                raise MicrokitError.at(
                    f"duplicate I/O port id: {port.id} in protection domain: '{pd.name}'",
                    pd.location,
                )
            ids.add(port.id)
    ports = [(pd.name, port) for pd in pds for port in pd.ioports]
    overlap = first_overlap([(port.addr, port.addr + port.size) for _, port in ports])
    if overlap is not None:
        (pd_name, port), (other_pd, other) = ports[overlap[0]], ports[overlap[1]]
        start, end = port.addr, port.addr + port.size
        raise MicrokitError.bare(
            f"I/O port id: {port.id}, half-open range: [{start:#x}, {end:#x}) in "
            f"protection domain: '{pd_name}' @ {location_text(port.location)} "
            f"overlaps with I/O port id: {other.id}, half-open range: "
            f"[{other.addr:#x}, {other.addr + other.size:#x}) in protection domain: "
            f"'{other_pd}' @ {location_text(other.location)}",
            location=port.location,
        )


def _check_cap_maps(pds: Sequence[ProtectionDomain]) -> None:
    for pd in pds:
        by_slot: dict[int, list[int]] = {}
        for index, cap_map in enumerate(pd.cap_maps):
            by_slot.setdefault(cap_map.slot, []).append(index)
        for slot, indices in by_slot.items():
            if len(indices) > 1:
                lines = "".join(
                    f"\n  type {pd.cap_maps[i].cap_type} from '{pd.cap_maps[i].pd_name}' at "
                    f"'{location_text(pd.cap_maps[i].location)}'"
                    for i in indices
                )
                raise MicrokitError.bare(
                    f"overlapping user caps in slot {slot} of protection domain "
                    f"'{pd.name}':{lines}",
                    location=pd.cap_maps[indices[-1]].location,
                )


def any_overlap(ranges: Sequence[tuple[int, int]]) -> bool:
    """Whether any two half-open ``(start, end)`` ranges intersect as the tool tests it."""
    return first_overlap(ranges) is not None


def _check_physical_overlap(regions: Sequence[MemoryRegion]) -> None:
    fixed = [region for region in regions if region.phys_addr is not None]
    ranges = [(r.phys_addr, r.phys_addr + r.size) for r in fixed if r.phys_addr is not None]
    overlap = first_overlap(ranges)
    if overlap is None:
        return
    region, other = fixed[overlap[0]], fixed[overlap[1]]
    (start, end), (other_start, other_end) = ranges[overlap[0]], ranges[overlap[1]]
    raise MicrokitError.at(
        f"memory region '{region.name}' physical address range "
        f"[{start:#x}..{end:#x}) overlaps with another memory region '{other.name}' "
        f"[{other_start:#x}..{other_end:#x})",
        region.location,
        fix="give the regions physical ranges that do not intersect",
    )


def _unused_regions(system: SystemDescription) -> list[Diagnostic]:
    used = {mapping.mr for maps in _all_maps(system) for mapping in maps}
    return [
        warning(
            f"unused memory region '{region.name}'",
            region.location,
            fix="map it somewhere or remove it",
        )
        for region in system.memory_regions
        if region.name not in used
    ]


def _all_maps(system: SystemDescription) -> list[list[Map]]:
    maps = []
    for pd in system.protection_domains:
        maps.append(pd.maps)
        if pd.virtual_machine is not None:
            maps.append(pd.virtual_machine.maps)
    return maps


def upgrade_page_sizes(system: SystemDescription, target: MicrokitTarget) -> None:
    """Back a region with 2 MiB frames when its size and all its addresses allow it.

    The tool does this for regions whose ``page_size`` the user left out (and that no
    device maps through the IOMMU): fewer, larger frames mean fewer page-table entries and
    TLB misses.  Like the tool, the upgrade goes to the smallest larger frame size every
    mapping address (and the physical address) is aligned to.
    """
    io_regions = {iomap.mr for iomap in system.iomaps}
    addresses: dict[str, list[int]] = {}
    for maps in _all_maps(system):
        for mapping in maps:
            addresses.setdefault(mapping.mr, []).append(mapping.vaddr)
    for region in system.memory_regions:
        if region.page_size_given or region.name in io_regions:
            continue
        largest = max(
            (size for size in target.page_sizes if region.size % size == 0),
            default=target.page_sizes[0],
        )
        if largest == region.page_size:
            continue
        candidates = list(addresses.get(region.name, []))
        if region.phys_addr is not None:
            candidates.append(region.phys_addr)
        for size in sorted((s for s in target.page_sizes if s > region.page_size), reverse=True):
            if all(address % size == 0 for address in candidates):
                region.page_size = size


def _check_setvars(system: SystemDescription, target: MicrokitTarget) -> None:
    regions = {region.name: region for region in system.memory_regions}
    wanting_paddr: set[str] = set()
    for pd in system.protection_domains:
        for setvar in pd.setvars:
            if setvar.kind == "paddr":
                wanting_paddr.add(str(setvar.value))
            if setvar.kind == "prefill_size":
                region = regions.get(str(setvar.value))
                if region is not None and region.prefill_size is None:
                    raise MicrokitError.plain(
                        "Error: 'setvar_prefill_size' used for MR without a `prefill_path` @ "
                        f"'{region.name}' {location_text(region.location)}",
                        location=region.location,
                        message=f"'setvar_prefill_size' used for MR '{region.name}' without a "
                        "`prefill_path`",
                        fix="add prefill_path to the memory region or drop setvar_prefill_size",
                    )
    for region in system.memory_regions:
        if region.name in wanting_paddr and region.phys_addr is None:
            if target.arch == "x86_64":
                raise MicrokitError.plain(
                    "Error: setvar with 'region_paddr' for MR without a specified paddr is "
                    f"unsupported on x86-64 @ '{region.name}' {location_text(region.location)}",
                    location=region.location,
                    message=f"setvar with 'region_paddr' for MR '{region.name}' without a "
                    "specified paddr is unsupported on x86-64",
                    fix="give the memory region a phys_addr",
                )
            region.phys_addr_kind = PhysAddrKind.TOOL_ALLOCATED


def _with_1_4_callers(channel: Channel, pds: dict[str, ProtectionDomain]) -> Channel:
    """Microkit 1.4's ``pp`` marks the callee PD; record it as 2.x does, on the caller's end."""
    end_a, end_b = channel.end_a, channel.end_b
    return replace(
        channel,
        end_a=replace(end_a, pp=pds[end_b.pd].pp),
        end_b=replace(end_b, pp=pds[end_a.pd].pp),
    )


def check_system(
    parsed: ParsedSystem, target: MicrokitTarget, path: str
) -> tuple[SystemDescription, list[Diagnostic]]:
    """Run the global checks; return the checked system and its warnings."""
    pds = flatten(parsed.root_pds)
    pd_index = {pd.name: pd for pd in pds}
    channels = []
    for element in parsed.channel_elements:
        channel = parse_channel(element, pd_index, target.microkit)
        if target.microkit is MicrokitVersion.V1_4:
            channel = _with_1_4_callers(channel, pd_index)
        for end in (channel.end_a, channel.end_b):
            if end.setvar_id is not None:
                add_setvar(pd_index[end.pd], SetVar(end.setvar_id, "id", end.id), element)
        channels.append(channel)
    for pd in pds:
        for cap_map in pd.cap_maps:
            if cap_map.pd_name not in pd_index:
                raise MicrokitError.colon(f"unknown PD name '{cap_map.pd_name}'", cap_map.location)

    for region in parsed.memory_regions:
        if region.phys_addr is not None:
            region.phys_addr_kind = PhysAddrKind.FIXED
    system = SystemDescription(
        path=path,
        memory_regions=parsed.memory_regions,
        protection_domains=pds,
        channels=channels,
        iomaps=parsed.iomaps,
        domains=parsed.domains,
    )
    _check_names(
        pds,
        parsed.memory_regions,
        target.max_pds,
        reserve_monitor=target.microkit is not MicrokitVersion.V1_4,
    )
    _check_vms(pds, target)
    _check_irqs_and_channels(system, target)
    _check_ioports(pds)

    regions: dict[str, MemoryRegion] = {}
    for region in system.memory_regions:
        regions.setdefault(region.name, region)
    # Microkit 1.4 bounds no map by the address-space top (only by overflow).
    unbounded = U64_LIMIT if target.microkit is MicrokitVersion.V1_4 else None
    for pd in pds:
        check_maps(
            regions,
            pd.maps,
            f"protection domain '{pd.name}'",
            unbounded or target.pd_map_max_vaddr(pd.stack_size),
        )
        vm = pd.virtual_machine
        # Microkit 1.4.1 validates the maps of protection domains only, not of VMs.
        if vm is not None and target.microkit is not MicrokitVersion.V1_4:
            check_maps(
                regions,
                vm.maps,
                f"virtual machine '{vm.name}'",
                unbounded or target.vm_map_max_vaddr(),
            )
    check_io_maps(regions, system.iomaps)
    _check_cap_maps(pds)
    _check_physical_overlap(system.memory_regions)
    warnings = parsed.warnings + _unused_regions(system)
    upgrade_page_sizes(system, target)
    _check_setvars(system, target)
    return system, warnings
