"""``<protection_domain>`` and everything nested in it.

A PD is a program image plus its scheduling parameters and the resources it is given:
maps, IRQs (three architecture-specific forms), x86 I/O ports, setvars, extra caps and at
most one virtual machine (read by :mod:`.virtual_machines`).  Child PDs nest inside their
parent.  The rules checked here are the ones the tool applies while reading a single PD;
rules that need the whole system (duplicate names, overlapping maps, channel ids) live in
:mod:`.system_checks`.
"""

from __future__ import annotations

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    optional_bool,
    optional_decimal,
    optional_number,
    required,
    required_decimal,
    required_number,
)
from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, location_text
from sel4vmm.config.microkit.limits import (
    BUDGET_DEFAULT,
    PD_MAX_ID,
    PD_MAX_PRIORITY,
    cpu_core,
    max_map_vaddr,
)
from sel4vmm.config.microkit.model import (
    CapMap,
    DomainSchedule,
    IoPort,
    Irq,
    ProtectionDomain,
    SetVar,
)
from sel4vmm.config.microkit.numbers import I64, U64
from sel4vmm.config.microkit.pci import PciAddressError, parse_pci_address
from sel4vmm.config.microkit.regions import MAP_ATTRIBUTES, PD_MAP_SETVAR_ATTRIBUTES, parse_map
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import (
    PD_ELEMENTS_1_4,
    PP_ON_PD_FIX,
    MicrokitVersion,
    attributes,
)
from sel4vmm.config.microkit.virtual_machines import parse_virtual_machine
from sel4vmm.config.microkit.xmlsource import XmlElement

PD_DEFAULT_STACK_SIZE = 0x2000
PD_DEFAULT_STACK_SIZE_1_4 = 0x1000
PD_MIN_STACK_SIZE = 0x1000
PD_MAX_STACK_SIZE = 16 * 1024 * 1024
X86_IRQ_VECTOR_MAX = 107
CAP_MAP_MAX_SLOT = 128

PD_ATTRIBUTES = (
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "smc",
    "cpu",
    "domain",
    "fpu",
)
CHILD_PD_ATTRIBUTES = ("id", "setvar_id")
CAP_MAP_TYPES = {"cap_tcb": "Tcb", "cap_sc": "Sc", "cap_vspace": "VSpace"}

#: Fixes for attributes of another Microkit release (see :mod:`.versions`).
PD_ATTRIBUTE_FIXES = {"pp": PP_ON_PD_FIX}


def add_setvar(pd: ProtectionDomain, setvar: SetVar, element: XmlElement) -> None:
    """Record a setvar; a symbol can only be patched once per program image."""
    if setvar.symbol in pd.setvar_symbols:
        raise MicrokitError.on_element(
            element,
            f"setvar on symbol '{setvar.symbol}' already exists",
            fix="use a different symbol name",
        )
    pd.setvar_symbols.add(setvar.symbol)
    pd.setvars.append(setvar)


def _check_id(element: XmlElement, value: int) -> int:
    if value > PD_MAX_ID:
        raise MicrokitError.on_element(
            element, f"id must be < {PD_MAX_ID + 1}", fix=f"use an id from 0 to {PD_MAX_ID}"
        )
    if value < 0:
        raise MicrokitError.on_element(element, "id must be >= 0")
    return value


class _PdReader:
    """Reads one ``<protection_domain>`` element (recursively for children)."""

    def __init__(
        self, target: MicrokitTarget, domains: DomainSchedule, warnings: list[Diagnostic]
    ) -> None:
        self.target = target
        self.domains = domains
        self.warnings = warnings

    def read(self, element: XmlElement, *, is_child: bool) -> ProtectionDomain:
        target = self.target
        version = target.microkit
        v14 = version is MicrokitVersion.V1_4
        check_attributes(
            element,
            attributes(
                version,
                "child_protection_domain" if is_child else "protection_domain",
                PD_ATTRIBUTES + (CHILD_PD_ATTRIBUTES if is_child else ()),
            ),
            fixes=PD_ATTRIBUTE_FIXES,
        )
        name = required(element, "name")
        child_id = required_number(element, "id") if is_child else None
        setvar_id = element.get("setvar_id") if is_child else None

        budget = optional_number(element, "budget")
        budget = BUDGET_DEFAULT if budget is None else budget
        period = optional_number(element, "period")
        period = budget if period is None else period
        if budget > period:
            raise MicrokitError.on_element(
                element,
                f"budget ({budget}) must be less than, or equal to, period ({period})",
            )
        passive = bool(optional_bool(element, "passive"))
        stack_size = optional_number(element, "stack_size")
        if stack_size is None:  # 1.4.1: a single page; 2.x: 8 KiB
            stack_size = PD_DEFAULT_STACK_SIZE_1_4 if v14 else PD_DEFAULT_STACK_SIZE
        smc = bool(optional_bool(element, "smc"))
        if smc:
            self._check_smc(element)
        cpu = cpu_core(
            element,
            optional_number(element, "cpu") or 0,
            expect="cpu core must be between 0 and 255",
        )
        if cpu >= target.num_cores:
            raise MicrokitError.on_element(
                element, f"cpu core must be less than {target.num_cores}, got {cpu}"
            )
        domain = self._domain(element)
        if not PD_MIN_STACK_SIZE <= stack_size <= PD_MAX_STACK_SIZE:
            raise MicrokitError.on_element(
                element,
                f"stack size must be between {PD_MIN_STACK_SIZE:#x} bytes and "
                f"{PD_MAX_STACK_SIZE:#x} bytes",
            )
        if stack_size % target.page_sizes[0]:
            raise MicrokitError.on_element(
                element,
                "stack size must be aligned to the smallest page size, "
                f"{target.page_sizes[0]} bytes",
            )
        priority = optional_number(element, "priority") or 0
        if priority > PD_MAX_PRIORITY:
            raise MicrokitError.on_element(
                element, f"priority must be between 0 and {PD_MAX_PRIORITY}"
            )
        fpu = optional_bool(element, "fpu")
        callee = bool(optional_bool(element, "pp")) if v14 else False

        pd = ProtectionDomain(
            name=name,
            location=element.location,
            program_image="",
            priority=priority,
            budget=budget,
            period=period,
            passive=passive,
            stack_size=stack_size,
            smc=smc,
            cpu=cpu,
            fpu=True if fpu is None else fpu,
            domain=domain,
            id=child_id,
            setvar_id=setvar_id,
            pp=callee,
        )
        seen_program_image = False
        seen_cspace = False
        for child in element.children:
            tag = child.tag
            if v14 and tag not in PD_ELEMENTS_1_4:
                tag = ""  # Microkit 1.4 knows no such element: the "Invalid XML element" below
            if tag == "program_image":
                check_attributes(
                    child, attributes(version, "program_image", ("path", "path_for_symbols"))
                )
                if seen_program_image:
                    raise MicrokitError.on_element(
                        element, "program_image must only be specified once"
                    )
                seen_program_image = True
                pd.program_image = required(child, "path")
            elif tag == "map":
                self._map(pd, child)
            elif tag == "irq":
                pd.irqs.append(self._irq(pd, child))
            elif tag == "ioport":
                if target.arch != "x86_64":
                    raise MicrokitError.on_element(element, "I/O Ports are only available on x86")
                pd.ioports.append(self._ioport(pd, child, element))
            elif tag == "setvar":
                check_attributes(child, attributes(version, "setvar", ("symbol", "region_paddr")))
                symbol = required(child, "symbol")
                region = required(child, "region_paddr")
                add_setvar(pd, SetVar(symbol, "paddr", region), child)
            elif tag == "protection_domain":
                nested = self.read(child, is_child=True)
                if nested.setvar_id is not None and nested.id is not None:
                    add_setvar(pd, SetVar(nested.setvar_id, "id", nested.id), child)
                pd.children.append(nested)
            elif tag == "virtual_machine":
                if not target.hypervisor:
                    raise MicrokitError.on_element(
                        element,
                        "seL4 has not been built as a hypervisor, virtual machines are disabled",
                        fix="build seL4 in hypervisor mode (drop --no-hypervisor)",
                    )
                if pd.virtual_machine is not None:
                    raise MicrokitError.on_element(
                        element,
                        "virtual_machine must only be specified once",
                        fix="give each virtual machine its own VMM protection domain",
                    )
                vm = parse_virtual_machine(child, target, self.warnings)
                for vcpu in vm.vcpus:
                    if vcpu.setvar_id is not None:
                        add_setvar(pd, SetVar(vcpu.setvar_id, "id", vcpu.id), child)
                pd.virtual_machine = vm
            elif tag == "cspace":
                if seen_cspace:
                    raise MicrokitError.on_element(element, "cspace must only be specified once")
                seen_cspace = True
                pd.cap_maps.extend(_cap_maps(child))
            else:
                raise MicrokitError.plain(
                    f"Invalid XML element '{child.tag}': {location_text(child.location)}",
                    location=child.location,
                    message=f"invalid XML element '{child.tag}' in <protection_domain>"
                    + (f" ({version.label})" if v14 else ""),
                )
        if not seen_program_image:
            raise MicrokitError.bare(
                f"missing 'program_image' element on protection_domain: '{name}'",
                location=element.location,
                fix='add <program_image path="your.elf" /> to the protection domain',
            )
        return pd

    def _check_smc(self, element: XmlElement) -> None:
        """sdf.rs: ``config.arm_smc`` None -> not available (no ``Error:`` prefix, no
        location); Some(false) -> the kernel was built without SMC forwarding."""
        forwarding = self.target.arm_smc
        if forwarding is None:
            raise MicrokitError.plain(
                "ARM SMC forwarding support is not available for this architecture",
                location=element.location,
                fix="smc is for AArch64 kernels built with KernelAllowSMCCalls",
            )
        if forwarding is False:
            raise MicrokitError.on_element(
                element,
                "Using SMC support without ARM SMC forwarding support enabled in the kernel "
                "for this platform",
                fix="build seL4 with KernelAllowSMCCalls (every Microkit SDK AArch64 board "
                'has it), or drop smc="true"',
            )

    def _domain(self, element: XmlElement) -> int | None:
        if self.domains.declared:
            domain_name = required(element, "domain")
            if domain_name not in self.domains.ids:
                raise MicrokitError.on_element(
                    element, f"domain '{domain_name}' not declared in <domains>:"
                )
            return self.domains.ids[domain_name]
        undeclared = element.get("domain")
        if undeclared is not None:
            raise MicrokitError.on_element(
                element,
                f"Specifying a domain '{undeclared}' without declaring a domain schedule "
                "is not allowed:",
                fix="declare the domain in a <domains> element before this PD",
            )
        return None

    def _map(self, pd: ProtectionDomain, element: XmlElement) -> None:
        mapping = parse_map(
            element,
            allow_setvar=True,
            max_vaddr=max_map_vaddr(self.target, self.target.pd_map_max_vaddr(pd.stack_size)),
            allowed=attributes(
                self.target.microkit, "pd_map", MAP_ATTRIBUTES + PD_MAP_SETVAR_ATTRIBUTES
            ),
        )
        symbol = element.get("setvar_vaddr")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "vaddr", mapping.vaddr), element)
        symbol = element.get("setvar_size")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "size", mapping.mr), element)
        symbol = element.get("setvar_prefill_size")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "prefill_size", mapping.mr), element)
        pd.maps.append(mapping)

    def _irq(self, pd: ProtectionDomain, element: XmlElement) -> Irq:
        x86 = self.target.arch == "x86_64"
        if self.target.microkit is MicrokitVersion.V1_4:
            # 1.4.1 sdf.rs: attributes first, then irq=, then id= (2.x reads id= first).
            check_attributes(element, attributes(self.target.microkit, "irq", ()))
            number = required_decimal(element, "irq", U64)
            irq_id = _check_id(element, required_decimal(element, "id", I64))
            return Irq(irq_id, "conventional", number, trigger=_trigger(element))
        irq_id = _check_id(element, required_decimal(element, "id", I64))
        symbol = element.get("setvar_id")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "id", irq_id), element)

        if element.get("irq") is not None:
            if x86:
                raise MicrokitError.on_element(
                    element,
                    "ARM and RISC-V IRQs are not supported on x86",
                    fix='use the I/O APIC form (pin="..." vector="...") or MSI (pcidev="...")',
                )
            check_attributes(element, ("irq", "id", "setvar_id", "trigger"))
            number = required_decimal(element, "irq", U64)
            return Irq(irq_id, "conventional", number, trigger=_trigger(element))
        if element.get("pin") is not None:
            if not x86:
                raise MicrokitError.on_element(
                    element, "x86 I/O APIC IRQ isn't supported on ARM and RISC-V"
                )
            check_attributes(
                element, ("id", "setvar_id", "ioapic", "pin", "trigger", "polarity", "vector")
            )
            ioapic = optional_decimal(element, "ioapic", I64) or 0
            if ioapic < 0:
                raise MicrokitError.on_element(element, "ioapic must be >= 0")
            pin = required_decimal(element, "pin", I64)
            if pin < 0:
                raise MicrokitError.on_element(element, "pin must be >= 0")
            trigger = _trigger(element)
            polarity = element.get("polarity")
            polarity = "high" if polarity is None else polarity
            if polarity not in ("low", "high"):
                raise MicrokitError.on_element(element, "polarity must be either 'low' or 'high'")
            vector = _vector(element)
            return Irq(
                irq_id, "ioapic", vector, trigger=trigger, polarity=polarity, ioapic=ioapic, pin=pin
            )
        if element.get("pcidev") is not None:
            if not x86:
                raise MicrokitError.on_element(
                    element, "x86 MSI IRQ isn't supported on ARM and RISC-V"
                )
            check_attributes(element, ("id", "setvar_id", "pcidev", "handle", "vector"))
            try:
                device = parse_pci_address(required(element, "pcidev"))
            except PciAddressError as reason:
                raise MicrokitError.on_element(element, str(reason)) from None
            handle = required_decimal(element, "handle", I64)
            if handle < 0:
                raise MicrokitError.on_element(element, "handle must be >= 0")
            vector = _vector(element)
            return Irq(irq_id, "msi", vector, pci_device=device, handle=handle)
        # No form could be recognised: name the attribute this architecture needs first.
        raise MicrokitError.missing_attribute(element, "pin" if x86 else "irq")

    def _ioport(self, pd: ProtectionDomain, element: XmlElement, pd_element: XmlElement) -> IoPort:
        check_attributes(element, ("id", "setvar_id", "setvar_addr", "addr", "size"))
        port_id = _check_id(element, required_decimal(element, "id", I64))
        symbol = element.get("setvar_id")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "id", port_id), element)
        addr = required_number(element, "addr")
        symbol = element.get("setvar_addr")
        if symbol is not None:
            add_setvar(pd, SetVar(symbol, "ioport_addr", addr), element)
        size = required_decimal(element, "size", I64)
        if size <= 0:
            raise MicrokitError.on_element(element, "size must be > 0")
        return IoPort(port_id, addr, size, pd_element.location)


def _trigger(element: XmlElement) -> str:
    trigger = element.get("trigger")
    trigger = "level" if trigger is None else trigger  # trigger="" is not "level"
    if trigger not in ("level", "edge"):
        raise MicrokitError.on_element(element, "trigger must be either 'level' or 'edge'")
    return trigger


def _vector(element: XmlElement) -> int:
    vector = required_decimal(element, "vector", I64)
    if not 0 <= vector <= X86_IRQ_VECTOR_MAX:
        raise MicrokitError.on_element(element, f"vector must be within [0..{X86_IRQ_VECTOR_MAX}]")
    return vector


def _cap_maps(element: XmlElement) -> list[CapMap]:
    check_attributes(element, ())
    cap_maps = []
    for child in element.children:
        cap_type = CAP_MAP_TYPES.get(child.tag)
        where = location_text(child.location)
        if cap_type is None:
            if child.tag.startswith("cap_"):
                raise MicrokitError.plain(
                    f"Cap type: '{child.tag[4:]}' is not supported at '{where}'",
                    location=child.location,
                    fix="use cap_tcb, cap_sc or cap_vspace",
                )
            raise MicrokitError.plain(
                f"Element '{child.tag}' is not supported in a <cspace> element at '{where}'",
                location=child.location,
            )
        check_attributes(child, ("slot", "pd"))
        pd_name = required(child, "pd")
        slot = required_number(child, "slot")
        if slot == 0:
            raise MicrokitError.on_element(
                child, "The destination slot 0 has been reserved for Microkit CNode"
            )
        if slot >= CAP_MAP_MAX_SLOT:
            raise MicrokitError.on_element(
                child,
                f"There are only {CAP_MAP_MAX_SLOT} destination cspace slots available.",
            )
        cap_maps.append(CapMap(cap_type, pd_name, slot, child.location))
    return cap_maps


def parse_protection_domain(
    element: XmlElement,
    target: MicrokitTarget,
    domains: DomainSchedule,
    warnings: list[Diagnostic],
) -> ProtectionDomain:
    """Read a top-level ``<protection_domain>`` and its nested children.

    Warnings (legacy attributes accepted) are appended to ``warnings``.
    """
    return _PdReader(target, domains, warnings).read(element, is_child=False)
