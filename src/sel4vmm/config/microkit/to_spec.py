"""Turn a checked Microkit system into the format-independent :class:`SystemSpec`.

Microkit never says "this is guest RAM": a ``<virtual_machine>``'s maps are just memory
regions placed at guest-physical addresses.  The VMM convention (libvmm, the Microkit
VMM guide) makes the roles recognisable, and this module applies it:

* guest RAM is a region the VM maps **and** its VMM protection domain maps too (the VMM
  needs it to copy the kernel, DTB and initrd in) -- the executable one, the largest if
  several; failing that, the largest ``rwx`` region without ``phys_addr``.  Exactly one
  region is RAM;
* a region with ``phys_addr`` that the VMM does not share is a passthrough device (UART,
  GIC vCPU interface) at that physical address;
* anything else is shared memory (virtio queues, buffers shared with other PDs).

Frame sizes come from the region's page size after the tool's 2 MiB upgrade.
"""

from __future__ import annotations

from sel4vmm.config.microkit.check import CheckResult
from sel4vmm.config.microkit.model import Map, MemoryRegion, ProtectionDomain
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.spec import Finding, GuestRegion, RegionKind, SystemSpec, VmSpec


def _ram_region_name(vmm: ProtectionDomain, regions: dict[str, MemoryRegion]) -> str | None:
    """The one region that is the guest's RAM, by the VMM convention (see module doc)."""
    vm = vmm.virtual_machine
    assert vm is not None
    vmm_regions = {m.mr for m in vmm.maps}
    shared = [m for m in vm.maps if m.mr in vmm_regions]
    # Several regions may be shared with the VMM (virtio rings, a UEFI flash image); RAM
    # is the one the guest executes from, and the largest if that still leaves several.
    candidates = [m for m in shared if m.execute] or shared
    if not candidates:
        candidates = [
            m
            for m in vm.maps
            if m.read and m.write and m.execute and regions[m.mr].phys_addr is None
        ]
    if not candidates:
        return None
    return max(candidates, key=lambda m: regions[m.mr].size).mr


def _guest_region(mapping: Map, region: MemoryRegion, is_ram: bool) -> GuestRegion:
    if is_ram:
        kind = RegionKind.RAM
    elif region.phys_addr is not None:
        kind = RegionKind.PASSTHROUGH
    else:
        kind = RegionKind.SHARED
    return GuestRegion(
        name=region.name,
        kind=kind,
        guest_addr=mapping.vaddr,
        size=region.size,
        phys_addr=region.phys_addr,
        page_bits=region.page_size.bit_length() - 1,
        perms=mapping.perms,
        cached=mapping.cached,
        location=mapping.location,
    )


def _vm_spec(
    vmm: ProtectionDomain, regions: dict[str, MemoryRegion], arch: str
) -> tuple[VmSpec, list[Finding]]:
    vm = vmm.virtual_machine
    assert vm is not None
    ram_name = _ram_region_name(vmm, regions)
    spec = VmSpec(name=vm.name, arch=arch, num_vcpus=len(vm.vcpus), location=vm.location)
    spec.extra["vmm"] = vmm.name
    # The VMM protection domain's schedule: its VM runs as its VMM does (run's scheduler).
    spec.extra["priority"] = vmm.priority
    spec.extra["budget"] = vmm.budget
    spec.extra["period"] = vmm.period
    for mapping in vm.maps:
        region = regions[mapping.mr]
        guest = _guest_region(mapping, region, region.name == ram_name)
        spec.regions.append(guest)
        if guest.kind is RegionKind.RAM and spec.ram_size == 0:
            spec.ram_base = guest.guest_addr
            spec.ram_size = guest.size
            spec.ram_location = guest.location
            spec.ram_paddr_base = region.phys_addr
            spec.one_to_one = region.phys_addr == guest.guest_addr
            vmm_view = next((m for m in vmm.maps if m.mr == region.name), None)
            if vmm_view is not None:
                spec.extra["vmm_ram_vaddr"] = vmm_view.vaddr
    findings = []
    if spec.ram_size == 0:
        findings.append(
            Finding(
                "warning",
                f"virtual machine '{vm.name}' has no recognisable RAM region",
                vm.location,
                fix=f"map guest RAM into both the VM and its VMM protection domain '{vmm.name}'",
            )
        )
    return spec, findings


def to_system_spec(result: CheckResult, target: MicrokitTarget) -> SystemSpec:
    """One :class:`VmSpec` per ``<virtual_machine>``; the checker's findings ride along."""
    spec = SystemSpec(path=result.path, format="microkit", findings=result.findings)
    system = result.system
    if system is None:
        return spec
    regions = {region.name: region for region in system.memory_regions}
    for pd in system.protection_domains:
        if pd.virtual_machine is not None:
            vm_spec, findings = _vm_spec(pd, regions, target.arch)
            spec.vms.append(vm_spec)
            spec.findings.extend(findings)
    return spec
