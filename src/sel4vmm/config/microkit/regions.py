"""``<memory_region>`` and ``<map>``: frames, and windows onto them.

A memory region fixes a size, a frame size and optionally a physical address (devices,
carve-outs); it may be prefilled from a file or from boot information.  A map places a
region at a virtual address of one PD or VM with some permissions.  The per-element rules
(page size supported, size a multiple of it, ``phys_addr`` aligned, perms never write-only,
``vaddr`` below the address-space limit) are checked here, as the tool does while parsing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    optional_bool,
    optional_number,
    required,
    required_number,
)
from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.model import Map, MemoryRegion
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import MicrokitVersion, attributes
from sel4vmm.config.microkit.xmlsource import XmlElement

MEMORY_REGION_ATTRIBUTES = (
    "name",
    "size",
    "page_size",
    "phys_addr",
    "prefill_path",
    "prefill_bootinfo",
)

#: ``prefill_bootinfo`` kinds: boot information seL4 hands the initial task.
BOOTINFO_KINDS = (
    "x86_vbe",
    "x86_mbmmap",
    "x86_acpi_rsdp",
    "x86_framebuffer",
    "x86_tsc_freq",
    "fdt",
)

MAP_ATTRIBUTES = ("mr", "vaddr", "perms", "cached")
PD_MAP_SETVAR_ATTRIBUTES = ("setvar_vaddr", "setvar_size", "setvar_prefill_size")


def round_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def find_prefill(path_text: str, search_paths: tuple[Path, ...]) -> Path | None:
    """The tool's ``get_full_path``: the first ``search_path.join(path)`` that *exists* --
    a directory or a device counts (reading it fails later), an absolute path replaces the
    search directory, and ``""`` names the search directory itself."""
    for directory in search_paths:
        place = directory / path_text
        try:
            if os.path.lexists(place) and place.exists():
                return place
        except (OSError, ValueError):  # a name too long for the OS, or with a NUL
            continue
    return None


def _prefill_size(element: XmlElement, path_text: str, target: MicrokitTarget) -> int:
    """The prefill's size in bytes, without reading it: the tool reads the whole file, so a
    regular file is all it can use; anything else is the tool's "failed to read"."""
    found = find_prefill(path_text, target.search_paths)
    if found is None:
        searched = ", ".join(str(p) for p in target.search_paths) or "(no search paths)"
        raise MicrokitError.on_element(
            element,
            f"unable to find prefill file: '{path_text}'",
            fix=f"put the file in one of: {searched} (or pass --search-path)",
        )
    try:
        status = found.stat()
    except OSError:
        status = None
    if status is None or not stat.S_ISREG(status.st_mode):
        kind = "cannot be read" if status is None else _kind_of(status.st_mode)
        raise MicrokitError.on_element(
            element,
            f"failed to read file '{path_text}' at prefill_path",
            fix=f"'{found}' {kind}: name a regular file to prefill the region from",
        )
    if status.st_size == 0:
        raise MicrokitError.on_element(
            element,
            f"prefill file '{path_text}' is empty",
            fix="prefill from a non-empty file, or drop prefill_path",
        )
    return status.st_size


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (the tool would wait on it forever)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device (the tool would read it without end)"
    return "is not a regular file"


def parse_memory_region(element: XmlElement, target: MicrokitTarget) -> MemoryRegion:
    check_attributes(
        element, attributes(target.microkit, "memory_region", MEMORY_REGION_ATTRIBUTES)
    )
    name = required(element, "name")
    # Microkit 1.4.1: size= is required (no prefills) and read before page_size=.
    size_1_4 = required_number(element, "size") if target.microkit is MicrokitVersion.V1_4 else None

    given_page_size = optional_number(element, "page_size")
    page_size = target.page_sizes[0] if given_page_size is None else given_page_size
    if page_size not in target.page_sizes:
        supported = ", ".join(f"{size:#x}" for size in target.page_sizes)
        raise MicrokitError.on_element(
            element, f"page size {page_size:#x} not supported", fix=f"use one of {supported}"
        )

    prefill_path = element.get("prefill_path")
    prefill_size = None if prefill_path is None else _prefill_size(element, prefill_path, target)

    bootinfo = element.get("prefill_bootinfo")
    if bootinfo is not None and bootinfo not in BOOTINFO_KINDS:
        raise MicrokitError.on_element(
            element,
            f"BootInfoMap type: '{bootinfo}' is not supported",
            fix=f"use one of {', '.join(BOOTINFO_KINDS)}",
        )
    if prefill_path is not None and bootinfo is not None:
        raise MicrokitError.on_element(
            element, "prefill_path and prefill_bootinfo cannot be both specified"
        )

    if size_1_4 is not None and size_1_4 % page_size:
        raise MicrokitError.on_element(element, "size is not a multiple of the page size")
    size = (
        size_1_4
        if size_1_4 is not None
        else _region_size(element, page_size, prefill_size, bootinfo is not None)
    )

    phys_addr = optional_number(element, "phys_addr")
    if phys_addr is not None and phys_addr % page_size:
        raise MicrokitError.on_element(
            element,
            "phys_addr is not aligned to the page size",
            fix=f"use a multiple of {page_size:#x}",
        )

    return MemoryRegion(
        name=name,
        size=size,
        page_size=page_size,
        page_size_given=given_page_size is not None,
        phys_addr=phys_addr,
        location=element.location,
        prefill_path=prefill_path,
        prefill_size=prefill_size,
        prefill_bootinfo=bootinfo,
    )


def _region_size(
    element: XmlElement, page_size: int, prefill_size: int | None, bootinfo: bool
) -> int:
    """``size=`` if given (checked against the page size and the prefill), else derived."""
    if element.get("size") is not None:
        size = required_number(element, "size")
        if size % page_size:
            raise MicrokitError.on_element(
                element,
                "size is not a multiple of the page size",
                fix=f"round the size up to {round_up(size, page_size):#x}",
            )
        if prefill_size is not None and prefill_size > size:
            raise MicrokitError.on_element(
                element,
                f"size of prefill file exceeds memory region size: {prefill_size:x} > {size:x}",
            )
        return size
    if bootinfo:
        return page_size
    if prefill_size is not None:
        return round_up(prefill_size, page_size)
    raise MicrokitError.on_element(
        element,
        "size must be specified if memory region is not prefilled",
        fix='add size="0x..." (a multiple of the page size)',
    )


def parse_map(
    element: XmlElement,
    *,
    allow_setvar: bool,
    max_vaddr: int,
    allowed: tuple[str, ...] | None = None,
) -> Map:
    """A ``<map>``; ``max_vaddr`` is the first address the map may not start at;
    ``allowed`` replaces the attribute list (another Microkit release's)."""
    if allowed is None:
        allowed = MAP_ATTRIBUTES + (PD_MAP_SETVAR_ATTRIBUTES if allow_setvar else ())
    check_attributes(element, allowed)
    mr = required(element, "mr")
    vaddr = required_number(element, "vaddr")
    if vaddr >= max_vaddr:
        raise MicrokitError.on_element(
            element,
            f"vaddr ({vaddr:#x}) must be less than {max_vaddr:#x}",
            fix="map the region lower in the address space",
        )

    perms = element.get("perms")
    if perms is None:
        read, write, execute = True, True, False
    else:
        if any(flag not in "rwx" for flag in perms):
            raise MicrokitError.on_element(
                element, "perms must only be a combination of 'r', 'w', and 'x'"
            )
        read, write, execute = ("r" in perms), ("w" in perms), ("x" in perms)
    if write and not read and not execute:
        raise MicrokitError.on_element(
            element,
            "perms must not be 'w', write-only mappings are not allowed",
            fix='use perms="rw"',
        )

    cached = optional_bool(element, "cached")
    return Map(
        mr=mr,
        vaddr=vaddr,
        read=read,
        write=write,
        execute=execute,
        cached=True if cached is None else cached,
        location=element.location,
    )
