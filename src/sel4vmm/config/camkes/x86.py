"""x86 CAmkES VM configurations (camkes-vm's ``Init`` component) to :class:`VmSpec`.

An x86 VM is an instance ``vm<N>`` of a component ``Init<N>`` whose body is
``VM_INIT_DEF()``; it says how much RAM the guest gets (``guest_ram_mb``), the images
(``kernel_image``, ``initrd_image``, ``kernel_cmdline``) and the pools that back
everything (``simple_untypedN_pool``).  Where the RAM goes is the VMM's own rule, in
camkes-vm ad66b659b31277384e96f7fc1b9ad93b350e575f ``components/Init/src/main.c``:

* ``guest_ram_regions``: the low memory ``{0x500, 0x80000 - 0x500}`` and
  ``{0x80000, 0x9fc00 - 0x80000}``, registered at those addresses (here rounded out to
  whole 4 KiB frames, which is what backs them);
* ``guest_fake_devices``: DMI ``{0xf0000, 0x10000}``, video BIOS ``{0xc0000, 0x8000}`` and
  ``{0xc8000, 0xe0000 - 0xc8000}``, reserved and backed by frames
  (``map_frame_alloc_reservation``);
* ``free_anonymous_regions`` ``{0x10003000, 0xa0000000 - 0x10003000}``: where
  ``vm_ram_register`` puts the main RAM, ``guest_ram_mb`` MiB "in 512MiB chunks".
"""

from __future__ import annotations

import re

from sel4vmm.config.camkes.attributes import MAX_POOL_COUNT, size_bits
from sel4vmm.config.camkes.parse import Setting, parse_value_text
from sel4vmm.config.camkes.values import IntValue, StrValue, Value
from sel4vmm.config.spec import Finding, GuestRegion, RegionKind, UntypedPoolSpec, VmSpec
from sel4vmm.errors import Location, Sel4VmmError

#: The x86 VMM component's type name: ``component Init0 vm0;``.
INIT_COMPONENT = re.compile(r"Init\d+")
#: Attributes only the x86 Init component has.
X86_VM_ATTRIBUTES = frozenset({"guest_ram_mb", "kernel_image", "kernel_relocs", "iospace_domain"})

PAGE = 0x1000
LOW_MEMORY = ((0x0, 0x80000), (0x80000, 0xA0000))
FAKE_DEVICES = (
    ("video bios", 0xC0000, 0xC8000),
    ("mapped hardware and misc", 0xC8000, 0xE0000),
    ("dmi", 0xF0000, 0x100000),
)
ANON_BASE, ANON_END = 0x10003000, 0xA0000000
#: vm_ram_register is called for at most this much at a time.
RAM_CHUNK = 512 << 20
_POOL = re.compile(r"simple_untyped(\d+)_pool")


def is_x86_vm(type_name: str | None, attributes: set[str]) -> bool:
    return bool(type_name and INIT_COMPONENT.fullmatch(type_name)) or bool(
        X86_VM_ATTRIBUTES & attributes
    )


def _int(setting: Setting, what: str) -> int:
    value: Value = setting.value
    if isinstance(value, StrValue):
        parsed = parse_value_text(value.value, value.location.path)
        value = parsed if isinstance(parsed, IntValue) else value
    if not isinstance(value, IntValue):
        raise Sel4VmmError(
            f"{what} must be a number", location=setting.value.location, fix=f"write {what} = 128;"
        )
    return value.value


def build_x86_vm(name: str, location: Location, settings: dict[str, Setting]) -> VmSpec:
    """The x86 VM ``name`` as VM_INIT_DEF's Init component would set it up."""
    vm = VmSpec(name=name, arch="x86_64", location=location)
    vm.extra["component"] = "Init"
    for attribute, setting in settings.items():
        what = f"{name}.{attribute}"
        pool = _POOL.fullmatch(attribute)
        if pool:
            count = _int(setting, what)
            if not 0 <= count <= MAX_POOL_COUNT:
                raise Sel4VmmError(
                    f"{what} = {count} is not a number of untyped objects sel4vmm plans "
                    f"(0 to {MAX_POOL_COUNT})",
                    location=setting.value.location,
                    fix="give the number of untyped objects",
                )
            bits = size_bits(pool.group(1), what, setting.location)
            vm.pools.append(UntypedPoolSpec(bits, count, setting.location))
        elif isinstance(setting.value, StrValue | IntValue):
            vm.extra[attribute] = setting.value.value
    images = vm.images
    for attribute, field in (("kernel_image", "kernel"), ("initrd_image", "initrd")):
        named = settings.get(attribute)
        if named is not None and isinstance(named.value, StrValue) and named.value.value:
            setattr(images, field, named.value.value)
            images.locations[field] = named.value.location
    cmdline = settings.get("kernel_cmdline")
    if cmdline is not None and isinstance(cmdline.value, StrValue):
        images.bootargs = cmdline.value.value
    images.provide_dtb = False
    ram = settings.get("guest_ram_mb")
    for low, high in LOW_MEMORY:
        vm.regions.append(
            GuestRegion(f"low memory {low:#x}", RegionKind.RAM, low, high - low, location=location)
        )
    for label, low, high in FAKE_DEVICES:
        vm.regions.append(
            GuestRegion(label, RegionKind.SHARED, low, high - low, perms="rw", location=location)
        )
    if ram is None:
        return vm
    megabytes = _int(ram, f"{name}.guest_ram_mb")
    where = ram.value.location
    size = megabytes << 20
    if megabytes <= 0 or size > ANON_END - ANON_BASE:
        raise Sel4VmmError(
            f"{name}.guest_ram_mb = {megabytes}: the VMM places guest RAM in "
            f"[{ANON_BASE:#x}, {ANON_END:#x}), which holds 1 to "
            f"{(ANON_END - ANON_BASE) >> 20} MiB",
            location=where,
            fix="give guest_ram_mb between 1 and 2303",
        )
    vm.ram_base, vm.ram_size, vm.ram_location = ANON_BASE, size, where
    base, left, chunk = ANON_BASE, size, 0
    while left:
        take = min(left, RAM_CHUNK)
        vm.regions.append(
            GuestRegion(f"ram chunk {chunk}", RegionKind.RAM, base, take, location=where)
        )
        base, left, chunk = base + take, left - take, chunk + 1
    return vm


def x86_findings(vm: VmSpec) -> list[Finding]:
    """What an x86 VM needs that the file does not say."""
    if vm.ram_size:
        return []
    return [
        Finding(
            "error",
            f"x86 VM {vm.name} does not set guest_ram_mb: the VMM would give it no RAM",
            vm.location,
            f"set {vm.name}.guest_ram_mb = 128; (MiB)",
        )
    ]
