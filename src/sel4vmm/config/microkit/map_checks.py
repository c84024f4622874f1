"""Every map of one address space names a region, is aligned, fits and overlaps no other.

A protection domain's ``<map>``s, a virtual machine's and each IOMMU address space's
``<iomap>``s are checked by the same rules of the tool (``check_maps`` in ``sdf.rs``), in
the same order, once the whole system is known: a map's own rules first, then the first
overlap with an earlier map (found by :mod:`.overlaps`).  :mod:`.system_checks` calls
these at its place in the tool's sequence of global checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.model import IoMap, Map, MemoryRegion
from sel4vmm.config.microkit.overlaps import first_overlap
from sel4vmm.config.microkit.target import MAX_IOVA

U64_LIMIT = 1 << 64


def check_maps(
    regions: dict[str, MemoryRegion],
    maps: Sequence[Map] | Sequence[IoMap],
    address_space: str,
    max_end: int,
) -> None:
    """Every map names a region, is aligned to its frames, fits, and overlaps no other."""
    io = bool(maps) and isinstance(maps[0], IoMap)
    element, addr_name, range_name = (
        ("iomap", "iovaddr", "io address range")
        if io
        else ("map", "vaddr", "virtual address range")
    )
    # The tool checks each map in turn -- its own rules, then against every earlier map.
    # Own rules first, for all maps (stopping at the first that fails); then the first
    # overlap among the maps before it, found in O(n log n) (see :mod:`.overlaps`).
    ranges: list[tuple[int, int]] = []
    failure: MicrokitError | None = None
    for mapping in maps:
        failure = _map_failure(regions, mapping, element, addr_name, range_name, max_end, ranges)
        if failure is not None:
            break
    overlap = first_overlap(ranges)
    if overlap is not None:
        later, earlier = overlap
        (start, end), (other_start, other_end) = ranges[later], ranges[earlier]
        raise MicrokitError.at(
            f"map for '{maps[later].mr}' has {range_name} [{start:#x}..{end:#x}) which "
            f"overlaps with map for '{maps[earlier].mr}' [{other_start:#x}..{other_end:#x}) "
            f"in {address_space}",
            maps[later].location,
            fix="move one of the maps so their ranges do not intersect",
        )
    if failure is not None:
        raise failure


def _map_failure(
    regions: dict[str, MemoryRegion],
    mapping: Map | IoMap,
    element: str,
    addr_name: str,
    range_name: str,
    max_end: int,
    ranges: list[tuple[int, int]],
) -> MicrokitError | None:
    """The error of one map's own rules, or None after appending its range."""
    start = mapping.iovaddr if isinstance(mapping, IoMap) else mapping.vaddr
    mr_name, location = mapping.mr, mapping.location
    region = regions.get(mr_name)
    if region is None:
        return MicrokitError.at(
            f"invalid memory region name '{mr_name}' on '{element}'",
            location,
            fix="declare the <memory_region> or fix the name",
        )
    if start % region.page_size:
        return MicrokitError.at(
            f"invalid {addr_name} alignment on '{element}'",
            location,
            fix=f"use a multiple of the region's page size {region.page_size:#x}",
        )
    end = start + region.size
    if end >= U64_LIMIT:
        return MicrokitError.at(
            f"{element} for '{mr_name}' has address range that overflows", location
        )
    if end > max_end:
        return MicrokitError.at(
            f"{element} for '{mr_name}' has {range_name} [{start:#x}..{end:#x}) which "
            f"exceeds valid address space [0x0..{max_end:#x})",
            location,
        )
    ranges.append((start, end))
    return None


def check_io_maps(regions: dict[str, MemoryRegion], iomaps: Sequence[IoMap]) -> None:
    """``<iomap>``s: 4 KiB frames only, then each IOMMU address space checked as a map's."""
    if any(
        (region := regions.get(iomap.mr)) is not None and region.page_size == 0x200_000
        for iomap in iomaps
    ):
        raise MicrokitError.bare(
            "currently seL4 does not have large page support for the IOMMU",
            fix="back regions used by <iomap> with 4 KiB pages",
        )
    by_space: dict[str, list[IoMap]] = {}
    for iomap in iomaps:
        by_space.setdefault(iomap.address_space, []).append(iomap)
    for maps in by_space.values():
        check_maps(regions, maps, maps[-1].device, MAX_IOVA + 1)
