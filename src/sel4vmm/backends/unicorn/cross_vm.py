"""Shared regions and notifications between VMs that run together on one board.

What a multi-VM run adds to each VM after its RAM and devices are mapped, from the
:class:`~sel4vmm.config.spec.SystemSpec` (see :mod:`sel4vmm.config.microkit.sharing` and
:mod:`sel4vmm.config.camkes.cross_vm` for how the readers find them):

* every shared window of every running VM is placed through one
  :class:`~sel4vmm.plan.shared_frames.SharedFrames`: the first VM's allocator makes the
  frames, the others map cap copies of them at their own guest addresses -- the same board
  physical memory, so a store by one guest is in the other's next load, with no copy;
* the VMM keeps a :class:`~sel4vmm.plan.shared_frames.SharedRegionMemory` of each region,
  its own view of the bytes (a Microkit region the VMM PD maps too, a CAmkES component's
  dataport);
* a Microkit VM that has channels to another VM gets a
  :class:`~sel4vmm.devices.doorbell.MicrokitDoorbell` at its spec's doorbell address; a
  ring of channel *n* delivers to the peer's doorbell under the peer's id of that channel,
  which raises the peer's SPI through its vGIC.  A channel whose peer VM is not running
  (``--vm`` left it out) is not given, so ringing it stops the VM with that reason;
* a CAmkES VM gets one :class:`~sel4vmm.devices.doorbell.CrossVmEventBar` per cross-VM
  connection, sharing one interrupt; the component at the other end is modelled when sel4vmm
  knows it (camkes-vm-examples' ``CrossvmInit``, :mod:`sel4vmm.devices.crossvm_init`), and
  refused with a clear error otherwise;
* each VM's generated DTB is told what it was given (:func:`device_tree_nodes`): its shared
  windows, its doorbell or event pages with their interrupt, its channels and their peers,
  so a guest finds its part without a command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from sel4vmm.backends.unicorn.board import EmulatedBoard
from sel4vmm.backends.unicorn.devicetree import CrossVmNodes, DoorbellNode, SharedWindowNode
from sel4vmm.backends.unicorn.gic_controller import SpiLines
from sel4vmm.config.spec import DoorbellSpec, RegionKind, SystemSpec, VmSpec
from sel4vmm.devices.crossvm_init import CrossvmInit
from sel4vmm.devices.doorbell import (
    DOORBELL_PAGE_SIZE,
    CrossVmEventBar,
    CrossVmEvents,
    MicrokitDoorbell,
)
from sel4vmm.devices.irq import IrqLine
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan.shared_frames import SharedFrames, SharedRegionMemory
from sel4vmm.vm import VirtualMachine

#: Component types whose behaviour sel4vmm models on the VMM side.
MODELLED_COMPONENTS = ("CrossvmInit",)


@dataclass
class RunningGuest:
    """One VM of the run, as the wiring needs it."""

    spec: VmSpec
    vm: VirtualMachine
    lines: SpiLines


@dataclass
class CrossVmWiring:
    """Everything :func:`wire_cross_vm` made, for the run's report and for tests."""

    frames: SharedFrames = field(default_factory=SharedFrames)
    #: The VMM's view of each shared region, by region name.
    regions: dict[str, SharedRegionMemory] = field(default_factory=dict)
    doorbells: dict[str, MicrokitDoorbell] = field(default_factory=dict)
    event_bars: dict[str, list[CrossVmEventBar]] = field(default_factory=dict)
    components: dict[str, CrossvmInit] = field(default_factory=dict)

    def start(self) -> None:
        """Start the modelled components (before the guests run, as CAmkES does)."""
        for component in self.components.values():
            component.start()


def _place_shared_regions(guests: Mapping[str, RunningGuest], wiring: CrossVmWiring) -> None:
    for guest in guests.values():
        for region in sorted(guest.spec.regions, key=lambda r: r.guest_addr):
            if region.kind is not RegionKind.SHARED:
                continue
            wiring.frames.place(guest.vm, region)
            if region.shared is not None and region.shared not in wiring.regions:
                wiring.regions[region.shared] = SharedRegionMemory(
                    region.shared, guest.vm.physmem, wiring.frames.frames(region)
                )


def _irq_line(guest: RunningGuest, doorbell: DoorbellSpec) -> IrqLine:
    if doorbell.irq is None:
        raise Sel4VmmError(
            f"{guest.spec.name}: its doorbell at {doorbell.base:#x} has no interrupt on this "
            "platform",
            location=doorbell.location,
            fix="run the system for a platform with a free cross-VM interrupt (qemu-arm-virt)",
        )
    try:
        return guest.lines.line(doorbell.irq)
    except ValueError as error:
        raise Sel4VmmError(
            f"{guest.spec.name}: the doorbell's interrupt {doorbell.irq}: {error}",
            location=doorbell.location,
            fix="give the doorbell an interrupt no other device of the VM uses",
        ) from None


def _microkit_doorbells(
    system: SystemSpec, guests: Mapping[str, RunningGuest], wiring: CrossVmWiring
) -> None:
    for spec in system.doorbells:
        guest = guests.get(spec.vm)
        if spec.layout != "microkit" or guest is None:
            continue
        bell = MicrokitDoorbell(spec.vm, spec.base, _irq_line(guest, spec), {})
        guest.vm.memory.reserve_at(spec.base, DOORBELL_PAGE_SIZE, bell.fault, label="doorbell")
        wiring.doorbells[spec.vm] = bell
    for note in system.notifications:
        sender, receiver = wiring.doorbells.get(note.sender), wiring.doorbells.get(note.receiver)
        if sender is not None and receiver is not None:
            sender.channels[note.sender_id] = partial(receiver.deliver, note.receiver_id)


def _camkes_event_bars(
    system: SystemSpec, guests: Mapping[str, RunningGuest], wiring: CrossVmWiring
) -> None:
    shared: dict[str, CrossVmEvents] = {}
    for spec in system.doorbells:
        guest = guests.get(spec.vm)
        if spec.layout != "camkes-crossvm" or guest is None:
            continue
        if spec.vm not in shared:
            shared[spec.vm] = CrossVmEvents(_irq_line(guest, spec))
        bar = CrossVmEventBar(shared[spec.vm], spec.connection, spec.base, None)
        label = f"{spec.connection} events"
        guest.vm.memory.reserve_at(spec.base, DOORBELL_PAGE_SIZE, bar.fault, label=label)
        wiring.event_bars.setdefault(spec.vm, []).append(bar)
    for vm_name, bars in wiring.event_bars.items():
        _connect_components(system, vm_name, bars, wiring)


def _connect_components(
    system: SystemSpec, vm_name: str, bars: list[CrossVmEventBar], wiring: CrossVmWiring
) -> None:
    """The VM's events through connection 0 (the example's table) to the component."""
    first = bars[0]
    peers = [n for n in system.notifications if vm_name in (n.sender, n.receiver)]
    for note in peers:
        other = note.receiver if note.sender == vm_name else note.sender
        kind = system.components.get(other, "")
        if kind not in MODELLED_COMPONENTS:
            raise Sel4VmmError(
                f"{vm_name} signals component '{other}' ({kind or 'unknown type'}), whose "
                f"program sel4vmm does not model (it models {', '.join(MODELLED_COMPONENTS)})",
                location=note.location,
                fix=f"run the VM without that connection, or use a {MODELLED_COMPONENTS[0]}",
            )
        component = wiring.components.get(other)
        if component is None:
            region = wiring.regions.get(first.connection)
            if region is None:
                raise Sel4VmmError(
                    f"component '{other}' has no dataport shared with {vm_name}",
                    location=note.location,
                    fix="connect its dest dataport to the VM with seL4SharedDataWithCaps",
                )
            component = CrossvmInit(other, region, first.consume)
            wiring.components[other] = component
        if note.sender == vm_name:
            first.emit = component.ready


def wire_cross_vm(system: SystemSpec, guests: Mapping[str, RunningGuest]) -> CrossVmWiring:
    """Map shared regions and attach doorbells to every running VM (see module doc).

    Returns what was made; the caller adds each guest's new interrupt sources to its event
    loop (``lines.sources``) and calls :meth:`CrossVmWiring.start` before the guests run.
    """
    wiring = CrossVmWiring()
    _place_shared_regions(guests, wiring)
    _microkit_doorbells(system, guests, wiring)
    _camkes_event_bars(system, guests, wiring)
    return wiring


def device_tree_nodes(
    system: SystemSpec, vm: VmSpec, running: Sequence[str] | None = None
) -> CrossVmNodes:
    """What the DTB of ``vm`` says the system gives it: each shared window (its guest
    address, size, name, rights and the other parties mapping it) and each doorbell or
    event page (its interrupt and, Microkit, the channels it may ring to a VM of
    ``running`` -- every VM when ``None`` -- with the peer's name), so a guest finds its
    part without being told on the command line."""
    regions = {region.name: region for region in system.shared_regions}
    windows = []
    for region in sorted(vm.regions, key=lambda r: r.guest_addr):
        if region.kind is not RegionKind.SHARED or region.shared is None:
            continue
        spec = regions.get(region.shared)
        others = tuple(o for o in (spec.sharers() if spec else []) if o != vm.name)
        windows.append(
            SharedWindowNode(
                region.shared, region.guest_addr, region.size, "w" in region.perms, others
            )
        )
    bells = []
    for door in system.doorbells:
        if door.vm != vm.name or door.irq is None or door.irq < 32:
            continue
        channels = tuple(
            (note.sender_id, note.receiver)
            for note in system.notifications
            if note.sender == vm.name
            and note.receiver_kind == "vm"
            and (running is None or note.receiver in running)
        )
        if door.layout == "microkit":
            bells.append(
                DoorbellNode(
                    "doorbell", door.base, DOORBELL_PAGE_SIZE, door.irq, door.layout, channels
                )
            )
        else:
            bells.append(
                DoorbellNode(door.connection, door.base, DOORBELL_PAGE_SIZE, door.irq, door.layout)
            )
    return CrossVmNodes(vm.name, tuple(windows), tuple(bells))


def wire_boards(system: SystemSpec, boards: Sequence[EmulatedBoard]) -> CrossVmWiring:
    """:func:`wire_cross_vm` for the boards of one ``EmulatedSystem`` (each board's layout
    named as its VM in ``system``): maps, doorbells, their interrupt sources in each VM's
    loop, the modelled components started, and each board's DTB told what it was given
    (:func:`device_tree_nodes`) -- call it after every board is added and before the
    guests are loaded."""
    specs = {vm.name: vm for vm in system.vms}
    guests: dict[str, RunningGuest] = {}
    for board in boards:
        spec = specs.get(board.layout.name)
        if spec is None:
            raise Sel4VmmError(
                f"VM '{board.layout.name}' is not in {system.path}",
                fix=f"run one of its VMs: {', '.join(specs) or 'none'}",
            )
        guests[spec.name] = RunningGuest(spec, board.vm, board.lines)
    for board in boards:
        board.cross_vm_nodes = device_tree_nodes(system, specs[board.layout.name], list(guests))
    before = {board.layout.name: len(board.lines.sources) for board in boards}
    wiring = wire_cross_vm(system, guests)
    for board in boards:
        board.loop.sources.extend(board.lines.sources[before[board.layout.name] :])
    wiring.start()
    return wiring
