"""CAmkES cross-VM connections: dataports shared with a VM, and events into and out of it.

camkes-vm-examples' ``vm_cross_connector`` joins ``vm0`` to a component by
``seL4SharedDataWithCaps`` connections (one set of frames, the VM side holding their caps)
and ``seL4Notification``/``seL4GlobalAsynch`` events.  The VMM (libsel4vmmplatsupport's
``cross_vm_connection.c``, at seL4_projects_libs 0e06beb) lays each connection out in the
guest from ``CONNECTION_BASE_ADDRESS`` (the example's ``cross_vm_connections.c``:
``0xDF000000`` on qemu-arm-virt, else ``0x3F000000``): for connection *i*, an event page
(``reserve_event_bar``) at the cursor, then the dataport one dataport-size further, the
cursor moving on by twice the dataport size.  The connections are the VM's dataports that
a ``seL4SharedDataWithCaps`` connection reaches, in the order the VM component declares
them; as in the example's ``connections[]`` table, the VM's first ``emits`` event rings
connection 0's event page and its first ``consumes`` event is delivered through it, the
interrupt being the platform's ``free_plat_interrupts[0]`` (camkes-vm ``VM_Arm``).  A
connection with a ``paddr`` attribute (vm_introspect's ``vm_memdev``: the guest's own RAM
shown to a component) is memory the guest already has, not a connection the VMM lays out.

Sizes follow global-components' ``seL4SharedDataWithCaps.template.c`` (e4fbff8): the
connection's ``size`` attribute, else ``<to instance>.<to interface>_size``, else 4096;
setting both, or a size that no page size divides, is the template's error, reworded
nowhere.
"""

from __future__ import annotations

from sel4vmm.config.camkes.connections import DEFAULT_BUF_SIZE, ComponentDecl, ConnectionDecl
from sel4vmm.config.camkes.parse import Setting
from sel4vmm.config.camkes.values import IntValue
from sel4vmm.config.spec import (
    DoorbellSpec,
    Finding,
    GuestRegion,
    NotificationSpec,
    RegionKind,
    SharedMapping,
    SharedRegionSpec,
    SystemSpec,
    VmSpec,
)
from sel4vmm.errors import Location

SHARED_DATA_CONNECTORS = frozenset({"seL4SharedDataWithCaps"})
EVENT_CONNECTORS = frozenset({"seL4Notification", "seL4GlobalAsynch"})
#: ``CONNECTION_BASE_ADDRESS`` of camkes-vm-examples' ``vm_cross_connector`` (dd7da62).
CONNECTION_BASE = {"qemu-arm-virt": 0xDF00_0000}
DEFAULT_CONNECTION_BASE = 0x3F00_0000
#: camkes-vm (ad66b65) ``plat_include/<plat>/plat/vmlinux.h``: ``free_plat_interrupts[0]``.
CROSSVM_IRQ = {"qemu-arm-virt": 50 + 32, "odroidc2": 50 + 32, "exynos5422": 92 + 32}
#: AArch64 page sizes, largest first (camkes-tool's ``macros.get_page_size``).
_PAGE_BITS = (30, 21, 12)
#: The event page ``reserve_event_bar`` maps.
EVENT_PAGE_SIZE = 0x1000


def _page_bits(size: int) -> int | None:
    for bits in _PAGE_BITS:
        if size >= 1 << bits and size % (1 << bits) == 0:
            return bits
    return None


def _int_setting(settings: dict[str, Setting] | None, attribute: str) -> Setting | None:
    if settings is None:
        return None
    setting = settings.get(attribute)
    return setting if setting is not None and isinstance(setting.value, IntValue) else None


def _dataport_size(
    connection: ConnectionDecl, settings: dict[str, dict[str, Setting]], spec: SystemSpec
) -> tuple[int, Location]:
    """The size the template gives the dataport, with the place that decided it."""
    to_end = connection.to_ends[0]
    on_connection = _int_setting(settings.get(connection.name), "size")
    on_end = _int_setting(settings.get(to_end.instance), f"{to_end.interface}_size")
    if on_connection is not None and on_end is not None:
        spec.findings.append(
            Finding(
                "error",
                f"Duplicate setting for {connection.name} dataport size: Cannot set both "
                f"{connection.name}.size and {to_end.instance}.{to_end.interface}_size",
                on_end.location,
                fix="keep one of the two settings",
            )
        )
    chosen = on_connection or on_end
    if chosen is None:
        return DEFAULT_BUF_SIZE, connection.location
    assert isinstance(chosen.value, IntValue)
    return chosen.value.value, chosen.location


def _component_of(
    instance: str, types: dict[str, str], components: dict[str, ComponentDecl]
) -> ComponentDecl | None:
    type_name = types.get(instance)
    return components.get(type_name) if type_name is not None else None


def add_cross_vm(
    spec: SystemSpec,
    connections: list[ConnectionDecl],
    components: dict[str, ComponentDecl],
    types: dict[str, str],
    settings: dict[str, dict[str, Setting]],
    platform: str | None,
) -> None:
    """Add the shared dataports, events and event pages of every Arm VM of ``spec``."""
    for vm in spec.vms:
        if vm.arch != "aarch64":
            continue
        component = _component_of(vm.name, types, components)
        if component is None:
            continue
        _add_vm(spec, vm, component, connections, settings, platform, types)


def _vm_connections(
    vm: VmSpec,
    component: ComponentDecl,
    connections: list[ConnectionDecl],
    settings: dict[str, dict[str, Setting]],
) -> list[tuple[ConnectionDecl, str]]:
    """(connection, the VM's interface) for each cross-VM dataport, in declaration order."""
    found: list[tuple[ConnectionDecl, str]] = []
    for interface in component.interfaces:
        if interface.kind != "dataport":
            continue
        for connection in connections:
            if connection.type_name not in SHARED_DATA_CONNECTORS or not connection.to_ends:
                continue
            if "paddr" in settings.get(connection.name, {}):
                continue
            ends = connection.from_ends + connection.to_ends
            if any(e.instance == vm.name and e.interface == interface.name for e in ends):
                found.append((connection, interface.name))
    return found


def _add_vm(
    spec: SystemSpec,
    vm: VmSpec,
    component: ComponentDecl,
    connections: list[ConnectionDecl],
    settings: dict[str, dict[str, Setting]],
    platform: str | None,
    types: dict[str, str],
) -> None:
    cross = _vm_connections(vm, component, connections, settings)
    if not cross:
        return
    cursor = CONNECTION_BASE.get(platform or "", DEFAULT_CONNECTION_BASE)
    irq = CROSSVM_IRQ.get(platform or "")
    for index, (connection, interface) in enumerate(cross):
        size, where = _dataport_size(connection, settings, spec)
        bits = _page_bits(size)
        if bits is None:
            spec.findings.append(
                Finding(
                    "error",
                    f"Setting {vm.name}.{interface}_size does not meet minimum size "
                    f"requirements. {size} must be at least 4096 and 4096 aligned",
                    where,
                    fix="make the dataport size a multiple of 4096",
                )
            )
            return
        event_addr, data_addr = cursor, cursor + size
        cursor += 2 * size
        vm.regions.append(
            GuestRegion(
                f"{connection.name} events",
                RegionKind.EMULATED,
                event_addr,
                EVENT_PAGE_SIZE,
                location=connection.location,
            )
        )
        vm.regions.append(
            GuestRegion(
                connection.name,
                RegionKind.SHARED,
                data_addr,
                size,
                page_bits=bits,
                location=connection.location,
                shared=connection.name,
            )
        )
        for end in connection.from_ends + connection.to_ends:
            if end.instance != vm.name:
                spec.components[end.instance] = types.get(end.instance, "")
        mappings = [
            SharedMapping(
                end.instance,
                "vm" if end.instance == vm.name else "component",
                data_addr if end.instance == vm.name else None,
                "rw",
                end.location,
            )
            for end in connection.from_ends + connection.to_ends
        ]
        spec.shared_regions.append(
            SharedRegionSpec(connection.name, size, bits, None, mappings, connection.location)
        )
        spec.doorbells.append(
            DoorbellSpec(
                vm.name,
                "camkes-crossvm",
                event_addr,
                irq,
                index,
                connection=connection.name,
                location=connection.location,
            )
        )
    _add_events(spec, vm, component, connections, irq)


def _event_peers(
    vm: VmSpec, interface: str, kind: str, connections: list[ConnectionDecl]
) -> list[tuple[ConnectionDecl, str]]:
    """(connection, peer instance) for each event connection of the VM's ``interface``
    to another instance (the VMM's own events, VM to itself, are not cross-VM)."""
    found: list[tuple[ConnectionDecl, str]] = []
    for connection in connections:
        if connection.type_name not in EVENT_CONNECTORS:
            continue
        ours = connection.from_ends if kind == "emits" else connection.to_ends
        theirs = connection.to_ends if kind == "emits" else connection.from_ends
        if any(e.instance == vm.name and e.interface == interface for e in ours):
            found += [(connection, p.instance) for p in theirs if p.instance != vm.name]
    return found


def _add_events(
    spec: SystemSpec,
    vm: VmSpec,
    component: ComponentDecl,
    connections: list[ConnectionDecl],
    irq: int | None,
) -> None:
    """The VM's first ``emits`` and first ``consumes`` event that reach another
    instance, both through connection 0 (see the module doc)."""
    for kind in ("emits", "consumes"):
        for interface in (i for i in component.interfaces if i.kind == kind):
            peers = _event_peers(vm, interface.name, kind, connections)
            if not peers:
                continue
            for connection, peer in peers:
                sender, receiver = (vm.name, peer) if kind == "emits" else (peer, vm.name)
                spec.notifications.append(
                    NotificationSpec(
                        name=f"{connection.name} ({connection.type_name})",
                        sender=sender,
                        sender_kind="vm" if sender == vm.name else "component",
                        sender_id=0,
                        receiver=receiver,
                        receiver_kind="vm" if receiver == vm.name else "component",
                        receiver_id=0,
                        location=connection.location,
                    )
                )
            if kind == "consumes" and irq is None:
                spec.findings.append(
                    Finding(
                        "warning",
                        f"{vm.name}.{interface.name}: camkes-vm has no free interrupt for "
                        "cross-VM events on this platform (free_plat_interrupts is {-1})",
                        interface.location,
                        fix="build for a platform with a free interrupt (qemu-arm-virt: 82)",
                    )
                )
            break
