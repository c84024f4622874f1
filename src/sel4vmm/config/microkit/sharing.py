"""What a Microkit system shares between VMs: memory regions and notification channels.

Microkit has no "shared memory" element: a ``<memory_region>`` is shared as soon as more than
one ``<map>`` names it, and the tool gives every map the *same* frames (one allocation, a
capability copy per mapping).  This module reads those facts off a checked system:

* a region is shared when a ``<virtual_machine>`` maps it and at least one other VM or
  protection domain maps it too -- except a VM's guest RAM mapped only by its own VMM,
  which is the boot convention (the VMM copies the kernel in), not sharing;
* a ``<channel>`` between two protection domains that *both* hold a ``<virtual_machine>``
  is a notification between the two guests: each end that may ``notify`` (the default) is
  one :class:`~sel4vmm.config.spec.NotificationSpec`, from its VM to the other.  A channel
  between a VMM and a plain PD stays the VMM's own business (virtio back ends, drivers)
  and is not listed.

A guest rings and hears those channels through a doorbell page the VMM emulates
(:mod:`sel4vmm.devices.doorbell`, layout ``"microkit"``).  Microkit has no place to say
where it goes, so sel4vmm's convention is fixed and documented (README, "Shared regions and
notifications"): one 4 KiB page at guest-physical :data:`MICROKIT_DOORBELL_BASE`
(0x0b100000), and the
VMM injects :data:`MICROKIT_DOORBELL_INTID` -- the interrupt camkes-vm gives cross-VM events
on qemu-arm-virt (``free_plat_interrupts[0]`` = 50 + 32), so one guest driver serves both.
The page is a window of the VM's spec like any other, so the planner reports a clash with a
region the system maps there.

Overlaps and alignment of the maps were already checked by :mod:`.system_checks` with the
tool's own messages, so nothing here can fail.
"""

from __future__ import annotations

from sel4vmm.config.microkit.model import ProtectionDomain, SystemDescription
from sel4vmm.config.spec import (
    DoorbellSpec,
    GuestRegion,
    NotificationSpec,
    RegionKind,
    SharedMapping,
    SharedRegionSpec,
    SystemSpec,
)

#: Guest-physical address of a Microkit VM's doorbell page: 1 MiB above the emulated DMA engine
#: (0x0b000000), below qemu virt's platform bus (0x0c000000), clear of its virtio-mmio
#: transports (0x0a000000).
MICROKIT_DOORBELL_BASE = 0x0B10_0000
MICROKIT_DOORBELL_SIZE = 0x1000
#: The interrupt (INTID, SPI 50) the VMM raises in a guest when a peer rings it.
MICROKIT_DOORBELL_INTID = 82


def _mappings(system: SystemDescription) -> dict[str, list[SharedMapping]]:
    """Every map of every region, in file order: PDs by name, VMs by their own name."""
    by_region: dict[str, list[SharedMapping]] = {}
    for pd in system.protection_domains:
        for mapping in pd.maps:
            by_region.setdefault(mapping.mr, []).append(
                SharedMapping(pd.name, "component", mapping.vaddr, mapping.perms, mapping.location)
            )
        vm = pd.virtual_machine
        if vm is not None:
            for mapping in vm.maps:
                by_region.setdefault(mapping.mr, []).append(
                    SharedMapping(vm.name, "vm", mapping.vaddr, mapping.perms, mapping.location)
                )
    return by_region


def _is_boot_ram(spec: SystemSpec, region: str, mappings: list[SharedMapping]) -> bool:
    """Guest RAM seen only by its VM and that VM's VMM (how every VMM loads its guest)."""
    vms = [m.owner for m in mappings if m.owner_kind == "vm"]
    if len(vms) != 1:
        return False
    vm = next((v for v in spec.vms if v.name == vms[0]), None)
    if vm is None:
        return False
    is_ram = any(r.name == region and r.kind is RegionKind.RAM for r in vm.regions)
    vmm = vm.extra.get("vmm")
    return is_ram and all(m.owner == vmm for m in mappings if m.owner_kind == "component")


def add_shared_regions(spec: SystemSpec, system: SystemDescription) -> None:
    """Fill ``spec.shared_regions`` and mark each VM's window of a shared region."""
    by_region = _mappings(system)
    for region in system.memory_regions:
        mappings = by_region.get(region.name, [])
        if len(mappings) < 2 or not any(m.owner_kind == "vm" for m in mappings):
            continue
        if _is_boot_ram(spec, region.name, mappings):
            continue
        spec.shared_regions.append(
            SharedRegionSpec(
                name=region.name,
                size=region.size,
                page_bits=region.page_size.bit_length() - 1,
                phys_addr=region.phys_addr,
                mappings=mappings,
                location=region.location,
            )
        )
        for mapping in mappings:
            if mapping.owner_kind == "component":
                spec.components[mapping.owner] = "pd"
        sharers = {m.owner for m in mappings if m.owner_kind == "vm"}
        for vm in spec.vms:
            if vm.name in sharers:
                for guest in vm.regions:
                    if guest.name == region.name:
                        guest.shared = region.name


def add_notifications(spec: SystemSpec, system: SystemDescription) -> None:
    """Fill ``spec.notifications`` from the channels between two VMMs (see module doc)."""
    pds: dict[str, ProtectionDomain] = {pd.name: pd for pd in system.protection_domains}
    for channel in system.channels:
        pd_a, pd_b = pds.get(channel.end_a.pd), pds.get(channel.end_b.pd)
        if pd_a is None or pd_b is None:
            continue
        vm_a, vm_b = pd_a.virtual_machine, pd_b.virtual_machine
        if vm_a is None or vm_b is None:
            continue
        for sender, receiver, vm_from, vm_to in (
            (channel.end_a, channel.end_b, vm_a, vm_b),
            (channel.end_b, channel.end_a, vm_b, vm_a),
        ):
            if not sender.notify:
                continue
            spec.notifications.append(
                NotificationSpec(
                    name=f"channel {sender.pd}:{sender.id} -> {receiver.pd}:{receiver.id}",
                    sender=vm_from.name,
                    sender_kind="vm",
                    sender_id=sender.id,
                    receiver=vm_to.name,
                    receiver_kind="vm",
                    receiver_id=receiver.id,
                    location=channel.location,
                )
            )
    _add_doorbells(spec)


def _add_doorbells(spec: SystemSpec) -> None:
    """One doorbell page per VM that sends or receives a notification."""
    for vm in spec.vms:
        ends = [n for n in spec.notifications if vm.name in (n.sender, n.receiver)]
        if not ends:
            continue
        location = ends[0].location
        spec.doorbells.append(
            DoorbellSpec(
                vm.name,
                "microkit",
                MICROKIT_DOORBELL_BASE,
                MICROKIT_DOORBELL_INTID,
                location=location,
            )
        )
        vm.regions.append(
            GuestRegion(
                "doorbell",
                RegionKind.EMULATED,
                MICROKIT_DOORBELL_BASE,
                MICROKIT_DOORBELL_SIZE,
                location=location,
            )
        )
