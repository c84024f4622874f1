"""``<virtual_machine>`` inside a protection domain: its scheduling, ``<vcpu>``s and maps.

A VM is the guest a VMM protection domain runs.  The tool reads it with rules of its own
-- a 1.4 release allows one vCPU, an older ``id=`` attribute stands for a single vCPU, a
priority is kept in a u8 without a check, a vCPU's ``cpu=`` is parsed against the VM
element -- so it is read here, apart from the PD's own attributes and resources
(:mod:`.protection_domains`); the limits both obey are in :mod:`.limits`.
"""

from __future__ import annotations

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    number_text,
    optional_decimal,
    optional_number,
    required,
    required_decimal,
)
from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, warning
from sel4vmm.config.microkit.limits import (
    BUDGET_DEFAULT,
    PD_MAX_ID,
    PD_MAX_PRIORITY,
    cpu_core,
    max_map_vaddr,
)
from sel4vmm.config.microkit.model import VirtualCpu, VirtualMachine
from sel4vmm.config.microkit.numbers import U64
from sel4vmm.config.microkit.regions import MAP_ATTRIBUTES, parse_map
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import VM_ID_FIX, MicrokitVersion, attributes
from sel4vmm.config.microkit.xmlsource import XmlElement

VCPU_MAX_ID = PD_MAX_ID

#: Fixes for attributes of another Microkit release (see :mod:`.versions`).
VM_ATTRIBUTE_FIXES = {"id": VM_ID_FIX}


def parse_virtual_machine(
    element: XmlElement, target: MicrokitTarget, warnings: list[Diagnostic]
) -> VirtualMachine:
    """Read a ``<virtual_machine>`` and its ``<vcpu>`` and ``<map>`` elements.

    Warnings (a priority the tool truncates) are appended to ``warnings``.
    """
    version = target.microkit
    aarch64 = target.arch == "aarch64"
    check_attributes(
        element,
        attributes(
            version,
            "virtual_machine",
            ("name", "budget", "period", "priority") if aarch64 else ("name",),
        )
        + (("id",) if target.accept_vm_id else ()),
        fixes=VM_ATTRIBUTE_FIXES,
    )
    name = required(element, "name")
    vm = VirtualMachine(name=name, vcpus=[], maps=[], location=element.location)
    legacy_id = optional_decimal(element, "id", U64) if target.accept_vm_id else None
    if aarch64:
        budget = optional_number(element, "budget")
        vm.budget = BUDGET_DEFAULT if budget is None else budget
        period = optional_number(element, "period")
        vm.period = vm.budget if period is None else period
        if vm.budget > vm.period:
            raise MicrokitError.on_element(
                element,
                f"budget ({vm.budget}) must be less than, or equal to, period ({vm.period})",
            )
        vm.priority = _vm_priority(element, name, warnings)
    for child in element.children:
        if child.tag == "vcpu":
            if version is MicrokitVersion.V1_4 and vm.vcpus:
                raise MicrokitError.on_element(
                    element,
                    "vcpu must only be specified once",
                    fix="Microkit 1.4 gives a virtual machine one vCPU; several need 2.x "
                    "(check without --microkit 1.4)",
                )
            vm.vcpus.append(_vcpu(vm, child, element, target))
        elif child.tag == "map":
            vm.maps.append(
                parse_map(
                    child,
                    allow_setvar=False,
                    max_vaddr=max_map_vaddr(target, target.vm_map_max_vaddr()),
                    allowed=attributes(version, "vm_map", MAP_ATTRIBUTES),
                )
            )
        else:
            raise MicrokitError.colon(
                f"invalid XML element '{child.tag}'",
                element.location,
                fix="a <virtual_machine> holds only <vcpu> and <map> elements",
            )
    if legacy_id is not None and not vm.vcpus:
        if legacy_id > VCPU_MAX_ID:
            raise MicrokitError.on_element(element, f"id must be < {VCPU_MAX_ID + 1}")
        vm.vcpus.append(VirtualCpu(legacy_id, None, None, vm.location))
    if not vm.vcpus:
        raise MicrokitError.bare(
            f"missing 'vcpu' element on virtual_machine: '{name}'",
            location=element.location,
            fix='add <vcpu id="0" /> to the virtual machine',
        )
    return vm


def _vcpu(
    vm: VirtualMachine, element: XmlElement, vm_element: XmlElement, target: MicrokitTarget
) -> VirtualCpu:
    check_attributes(element, attributes(target.microkit, "vcpu", ("id", "setvar_id", "cpu")))
    vcpu_id = required_decimal(element, "id", U64)
    if vcpu_id > VCPU_MAX_ID:
        raise MicrokitError.on_element(element, f"id must be < {VCPU_MAX_ID + 1}")
    if any(existing.id == vcpu_id for existing in vm.vcpus):
        raise MicrokitError.at(
            f"duplicate vcpu id {vcpu_id} in virtual machine '{vm.name}'", element.location
        )
    cpu_text = element.get("cpu")
    cpu = None
    if cpu_text is not None:
        # The tool parses the vCPU's cpu= reporting errors against the *virtual
        # machine* element (sdf.rs passes the VM node), then bounds it like a PD's.
        cpu = cpu_core(element, number_text(vm_element, cpu_text), expect="cpu # fits in u8")
        if cpu >= target.num_cores:
            raise MicrokitError.on_element(
                element, f"cpu core must be less than {target.num_cores}, got {cpu}"
            )
    return VirtualCpu(vcpu_id, cpu, element.get("setvar_id"), element.location)


def _vm_priority(element: XmlElement, name: str, warnings: list[Diagnostic]) -> int:
    """A VM's ``priority``: the tool checks none and keeps the low 8 bits
    (``priority as u8``), so 256 is accepted and runs at priority 0."""
    priority = optional_number(element, "priority") or 0
    kept = priority & 0xFF
    if priority != kept or kept > PD_MAX_PRIORITY:
        warnings.append(
            warning(
                f"priority {priority} of virtual machine '{name}' is accepted by the "
                f"Microkit tool, which keeps only its low 8 bits: the guest runs at "
                f"priority {kept}",
                element.location,
                fix=f"write the priority you mean, 0 to {PD_MAX_PRIORITY}",
            )
        )
    return kept
