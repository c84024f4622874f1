"""Turn the settings of a CAmkES VM configuration into :class:`SystemSpec`.

camkes-vm's VM_Arm component reads these attributes of each VM instance (see
``configurations/vm.h``):

* ``vm_address_config`` — ``ram_base``, ``ram_paddr_base``, ``ram_size``, ``dtb_addr``,
  ``initrd_addr``, ``kernel_entry_addr`` (``"-1"``: not given), all *strings* so that
  ``VAR_STRINGIZE(VM_RAM_BASE)`` can fill them; ``linux_address_config`` is the older
  spelling with ``linux_``-prefixed RAM keys plus the obsolete ``linux_ram_offset`` and
  ``initrd_max_size``.
* ``vm_image_config`` — image names, boot command line, stdout path, ``provide_dtb``,
  ``generate_dtb``, ``provide_initrd``, ``clean_cache``, ``map_one_to_one``;
  ``linux_image_config`` is the older spelling (``linux_name``, ``linux_bootcmdline``...).
* ``simple_untypedN_pool = count`` — ``count`` untypeds of ``2**N`` bytes for the VMM;
* ``untyped_mmios = ["0xADDR:bits"]`` — device untypeds at fixed physical addresses
  (1:1 RAM is backed by these);
* ``mmios = ["0xADDR:0xSIZE:bits"]`` — device frames;
* ``dtb = dtb([{"path": ...}])`` and ``dtb_irqs`` — devices passed through from the host
  device tree; ``num_vcpus``.

Anything else set on a VM is kept in :attr:`VmSpec.extra` so nothing the user wrote is lost.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from sel4vmm.config.camkes.attributes import MAX_POOL_COUNT, attribute_typo, size_bits
from sel4vmm.config.camkes.cross_vm import add_cross_vm
from sel4vmm.config.camkes.parse import Setting
from sel4vmm.config.camkes.reader import ReadFiles
from sel4vmm.config.camkes.value_readers import (
    as_boolean,
    as_integer,
    as_string,
    as_strings,
    mmio_numbers,
    python_value,
)
from sel4vmm.config.camkes.values import (
    CallValue,
    DictValue,
    ListValue,
    Value,
)
from sel4vmm.config.camkes.x86 import build_x86_vm, is_x86_vm, x86_findings
from sel4vmm.config.spec import (
    DeviceFramesSpec,
    DeviceUntypedSpec,
    Finding,
    GuestRegion,
    RegionKind,
    SystemSpec,
    UntypedPoolSpec,
    VmSpec,
)
from sel4vmm.errors import Location, Sel4VmmError

#: The component type camkes-vm's VM_Arm declares.
VM_COMPONENT_TYPE = "VM"
#: Attributes only a VM component has; an instance that sets one is a VM even when the file
#: that declared it (``component VM vm0;``) is not part of what was read.
VM_ATTRIBUTES = frozenset(
    {"vm_address_config", "linux_address_config", "vm_image_config", "linux_image_config"}
)

_ADDRESS_KEYS = {
    "vm_address_config": {
        "ram_base": "ram_base",
        "ram_paddr_base": "ram_paddr_base",
        "ram_size": "ram_size",
        "dtb_addr": "dtb_addr",
        "initrd_addr": "initrd_addr",
        "kernel_entry_addr": "kernel_entry_addr",
    },
    "linux_address_config": {
        "linux_ram_base": "ram_base",
        "linux_ram_paddr_base": "ram_paddr_base",
        "linux_ram_size": "ram_size",
        "linux_ram_offset": "ram_offset",
        "dtb_addr": "dtb_addr",
        "initrd_max_size": "initrd_max_size",
        "initrd_addr": "initrd_addr",
    },
}
_IMAGE_KEYS = {
    "vm_image_config": {
        "kernel_name": "kernel",
        "dtb_name": "dtb",
        "initrd_name": "initrd",
        "kernel_bootcmdline": "bootargs",
        "kernel_stdout": "stdout",
        "dtb_base_name": "dtb_base",
        "provide_dtb": "provide_dtb",
        "generate_dtb": "generate_dtb",
        "provide_initrd": "provide_initrd",
        "clean_cache": "clean_cache",
        "map_one_to_one": "map_one_to_one",
    },
    "linux_image_config": {
        "linux_name": "kernel",
        "dtb_name": "dtb",
        "initrd_name": "initrd",
        "linux_bootcmdline": "bootargs",
        "linux_stdout": "stdout",
        "dtb_base_name": "dtb_base",
    },
}
#: VM_INIT_DEF's defaults for the image attributes.
_IMAGE_DEFAULTS: dict[str, str | bool] = {
    "kernel": "linux",
    "dtb": "linux-dtb",
    "initrd": "linux-initrd",
    "bootargs": "",
    "stdout": "",
    "dtb_base": "",
    "provide_dtb": True,
    "generate_dtb": False,
    "provide_initrd": True,
    "clean_cache": False,
    "map_one_to_one": False,
}
_BOOL_IMAGE_FIELDS = frozenset(
    {"provide_dtb", "generate_dtb", "provide_initrd", "clean_cache", "map_one_to_one"}
)
_POOL = re.compile(r"simple_untyped(\d+)_pool")


@dataclass
class _Instance:
    name: str
    location: Location
    declared_vm: bool = False
    type_name: str | None = None


class _VmBuilder:
    def __init__(self, instance: _Instance, settings: dict[str, Setting]) -> None:
        self.instance = instance
        self.settings = settings
        self.findings: list[Finding] = []
        self.vm = VmSpec(name=instance.name, location=instance.location)

    def dict_setting(self, attribute: str) -> DictValue | None:
        setting = self.settings.get(attribute)
        if setting is None:
            return None
        if not isinstance(setting.value, DictValue):
            raise Sel4VmmError(
                f"{self.vm.name}.{attribute} must be a dictionary",
                location=setting.value.location,
                fix=f'write {self.vm.name}.{attribute} = {{ "key" : "value", ... }};',
            )
        return setting.value

    def known_entries(
        self, attribute: str, value: DictValue, keys: dict[str, str]
    ) -> dict[str, tuple[Value, Location]]:
        """Entries renamed to their meaning; unknown keys are warned about, not dropped."""
        entries: dict[str, tuple[Value, Location]] = {}
        for entry in value.entries:
            meaning = keys.get(entry.key)
            if meaning is None:
                close = difflib.get_close_matches(entry.key, list(keys), n=1)
                self.findings.append(
                    Finding(
                        "warning",
                        f"{attribute} has no key {entry.key!r}; VM_Arm ignores it",
                        location=entry.location,
                        fix=f"did you mean {close[0]!r}?"
                        if close
                        else f"known keys: {', '.join(keys)}",
                    )
                )
                self.vm.extra[f"{attribute}.{entry.key}"] = python_value(entry.value)
                continue
            entries[meaning] = (entry.value, entry.location)
        return entries

    def build(self) -> tuple[VmSpec, list[Finding]]:
        self.read_addresses()
        self.read_images()
        self.read_resources()
        return self.vm, self.findings

    def read_addresses(self) -> None:
        chosen = None
        for attribute in ("vm_address_config", "linux_address_config"):
            value = self.dict_setting(attribute)
            if value is not None and chosen is None:
                chosen = (attribute, value)
            elif value is not None and chosen is not None:
                self.findings.append(
                    Finding(
                        "warning",
                        f"{self.vm.name} sets both {chosen[0]} and {attribute}; "
                        f"{chosen[0]} is used",
                        location=value.location,
                        fix=f"remove {attribute}",
                    )
                )
        if chosen is None:
            self.findings.append(
                Finding(
                    "error",
                    f"VM {self.vm.name} has no vm_address_config: its RAM is not configured",
                    location=self.instance.location,
                    fix=f'set {self.vm.name}.vm_address_config = {{ "ram_base" : "0x...", '
                    '"ram_paddr_base" : "0x...", "ram_size" : "0x..." };',
                )
            )
            return
        attribute, value = chosen
        entries = self.known_entries(attribute, value, _ADDRESS_KEYS[attribute])
        numbers: dict[str, int] = {}
        for meaning, (raw, _location) in entries.items():
            numbers[meaning] = as_integer(raw, f"{attribute}.{meaning}")
        for required in ("ram_base", "ram_size"):
            if required not in numbers:
                key = required if attribute == "vm_address_config" else f"linux_{required}"
                self.findings.append(
                    Finding(
                        "error",
                        f"{self.vm.name}.{attribute} does not set {key!r}",
                        location=value.location,
                        fix=f'add "{key}" : "0x..."',
                    )
                )
        self.vm.ram_base = numbers.get("ram_base", 0)
        self.vm.ram_size = numbers.get("ram_size", 0)
        self.vm.ram_location = entries.get("ram_base", (value, value.location))[1]
        if "ram_paddr_base" in numbers:
            self.vm.extra["ram_paddr_base"] = numbers["ram_paddr_base"]
        for obsolete in ("ram_offset", "initrd_max_size"):
            if obsolete in numbers:
                self.vm.extra[obsolete] = numbers[obsolete]
        images = self.vm.images
        images.dtb_addr = numbers.get("dtb_addr")
        images.initrd_addr = numbers.get("initrd_addr")
        entry = numbers.get("kernel_entry_addr", -1)
        images.kernel_entry_addr = None if entry == -1 else entry
        for meaning in ("dtb_addr", "initrd_addr", "kernel_entry_addr"):
            if meaning in entries:
                images.locations[meaning] = entries[meaning][1]
        self.vm.extra["address_config"] = attribute

    def read_images(self) -> None:
        resolved: dict[str, str | bool] = dict(_IMAGE_DEFAULTS)
        # The older attribute first, so that vm_image_config overrides it key by key.
        for attribute in ("linux_image_config", "vm_image_config"):
            value = self.dict_setting(attribute)
            if value is None:
                continue
            for meaning, (raw, location) in self.known_entries(
                attribute, value, _IMAGE_KEYS[attribute]
            ).items():
                what = f"{attribute}.{meaning}"
                if meaning in _BOOL_IMAGE_FIELDS:
                    resolved[meaning] = as_boolean(raw, what)
                else:
                    resolved[meaning] = as_string(raw, what)
                self.vm.images.locations[meaning] = location

        def name(field: str) -> str | None:
            text = resolved[field]
            return text if isinstance(text, str) and text else None

        images = self.vm.images
        images.kernel = name("kernel")
        images.dtb = name("dtb")
        images.initrd = name("initrd")
        images.bootargs = name("bootargs")
        images.stdout = name("stdout")
        images.dtb_base = name("dtb_base")
        images.provide_dtb = bool(resolved["provide_dtb"])
        images.generate_dtb = bool(resolved["generate_dtb"])
        images.provide_initrd = bool(resolved["provide_initrd"])
        self.vm.extra["clean_cache"] = bool(resolved["clean_cache"])
        self.vm.one_to_one = bool(resolved["map_one_to_one"])
        if self.vm.one_to_one:
            # 1:1 means IPA == PA: the guest's RAM is the physical RAM at the same address.
            self.vm.ram_paddr_base = self.vm.ram_base
            configured = self.vm.extra.get("ram_paddr_base")
            if isinstance(configured, int) and configured != self.vm.ram_base:
                self.findings.append(
                    Finding(
                        "warning",
                        f"{self.vm.name} maps RAM one-to-one but ram_paddr_base "
                        f"{configured:#x} differs from ram_base {self.vm.ram_base:#x}; "
                        "one-to-one uses ram_base",
                        location=self.vm.ram_location,
                        fix="set ram_paddr_base to ram_base",
                    )
                )
        if self.vm.ram_size:
            self.vm.regions.append(
                GuestRegion(
                    name="ram",
                    kind=RegionKind.RAM,
                    guest_addr=self.vm.ram_base,
                    size=self.vm.ram_size,
                    phys_addr=self.vm.ram_base if self.vm.one_to_one else None,
                    location=self.vm.ram_location,
                )
            )

    def read_resources(self) -> None:
        handled = VM_ATTRIBUTES
        for attribute, setting in self.settings.items():
            value = setting.value
            what = f"{self.vm.name}.{attribute}"
            pool = _POOL.fullmatch(attribute)
            if pool:
                count = as_integer(value, what)
                if not 0 <= count <= MAX_POOL_COUNT:
                    raise Sel4VmmError(
                        f"{what} = {count} is negative"
                        if count < 0
                        else f"{what} = {count} is more untyped objects than sel4vmm plans "
                        f"for one pool ({MAX_POOL_COUNT})",
                        location=value.location,
                        fix="give the number of untyped objects (0 or more)"
                        if count < 0
                        else "use fewer, larger untyped objects (a larger simple_untypedN_pool)",
                    )
                bits = size_bits(pool.group(1), what, setting.location)
                self.vm.pools.append(UntypedPoolSpec(bits, count, setting.location))
            elif attribute == "untyped_mmios":
                for item in as_strings(value, what):
                    paddr, bits = mmio_numbers(item, 2, what, "0xADDR:size_bits")
                    bits = size_bits(str(bits), f"{what} entry {item.value!r}", item.location)
                    self.vm.device_untypeds.append(DeviceUntypedSpec(paddr, bits, item.location))
            elif attribute == "mmios":
                for item in as_strings(value, what):
                    paddr, size, bits = mmio_numbers(item, 3, what, "0xADDR:0xSIZE:page_bits")
                    bits = size_bits(str(bits), f"{what} entry {item.value!r}", item.location)
                    self.vm.device_frames.append(DeviceFramesSpec(paddr, size, bits, item.location))
            elif attribute == "dtb":
                self.read_dtb(value, what)
            elif attribute == "num_vcpus":
                self.vm.num_vcpus = as_integer(value, what)
                if self.vm.num_vcpus < 1:
                    raise Sel4VmmError(
                        f"{what} = {self.vm.num_vcpus}: a VM needs at least one vCPU",
                        location=value.location,
                        fix="set num_vcpus to 1 or more",
                    )
            elif attribute not in handled:
                self.vm.extra[attribute] = python_value(value)
                typo = attribute_typo(self.vm.name, attribute, setting.location)
                if typo is not None:
                    self.findings.append(typo)

    def read_dtb(self, value: Value, what: str) -> None:
        if not (isinstance(value, CallValue) and value.function == "dtb"):
            self.vm.extra["dtb"] = python_value(value)
            return
        nodes: list[Value] = []
        for argument in value.arguments:
            nodes.extend(argument.items if isinstance(argument, ListValue) else [argument])
        other: list[object] = []
        for node in nodes:
            path = node.get("path") if isinstance(node, DictValue) else None
            if path is not None:
                text = as_string(path, f"{what} path")
                if text not in self.vm.dtb_passthrough:
                    self.vm.dtb_passthrough.append(text)
            elif not (isinstance(node, DictValue) and not node.entries):
                other.append(python_value(node))
        if other:
            # e.g. {"properties": {"compatible[0]": "nvidia,tegra186-bpmp"}}
            self.vm.extra["dtb_nodes"] = other


def build_system_spec(path: str, read: ReadFiles, board: str | None) -> SystemSpec:
    """One :class:`VmSpec` per VM instance, in the order the instances first appear."""
    instances: dict[str, _Instance] = {}
    settings: dict[str, dict[str, Setting]] = {}
    for camkes_file in read.files:
        for declaration in camkes_file.instances:
            instance = instances.setdefault(
                declaration.name, _Instance(declaration.name, declaration.location)
            )
            instance.declared_vm |= declaration.type_name == VM_COMPONENT_TYPE
            instance.type_name = declaration.type_name
        for setting in camkes_file.settings:
            instances.setdefault(setting.instance, _Instance(setting.instance, setting.location))
            # Later settings override earlier ones, as a later assignment does in CAmkES.
            settings.setdefault(setting.instance, {})[setting.attribute] = setting
    spec = SystemSpec(path=path, format="camkes", findings=list(read.findings), board=board)
    for name, instance in instances.items():
        attributes = settings.get(name, {})
        if is_x86_vm(instance.type_name, set(attributes)):
            vm = build_x86_vm(name, instance.location, attributes)
            findings = x86_findings(vm)
        elif not (instance.declared_vm or VM_ATTRIBUTES & attributes.keys()):
            continue
        else:
            vm, findings = _VmBuilder(instance, attributes).build()
        vm.board = board
        spec.vms.append(vm)
        spec.findings.extend(findings)
    add_cross_vm(
        spec,
        [c for f in read.files for c in f.connections],
        {c.name: c for f in read.files for c in f.components},
        {i.name: i.type_name for i in instances.values() if i.type_name is not None},
        settings,
        read.platform,
    )
    if not spec.vms:
        spec.findings.append(
            Finding(
                "error",
                "no VM found: no instance of component VM and no vm_address_config",
                location=Location(path),
                fix="declare component VM vm0; and set vm0.vm_address_config",
            )
        )
    return spec
