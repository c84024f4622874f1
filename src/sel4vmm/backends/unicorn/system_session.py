"""``run_system``: boot every VM a system describes on one emulated board, together.

The several-VM counterpart of :func:`~.session.run_guest` (which stays the one-VM path):
the system file's VMs (Microkit: every ``<virtual_machine>``; CAmkES: every VM
instance), or those named, are laid out as the system says (each VM's own RAM, vCPUs
and name), built on one :class:`~.system.EmulatedSystem` and run by one
:class:`~.system_loop.SystemLoop` in the system's schedule (Microkit: the VMM protection
domain's ``priority``, ``budget`` and ``period``; CAmkES: equal).  The kernel, the Linux
boot files and ``--input`` apply to every VM.

A VM is 1:1 when the system pins its RAM (Microkit ``phys_addr`` equal to the guest
address, CAmkES ``map_one_to_one``) or when the run is not ``--pools``; several VMs with
the same guest RAM base therefore need ``--pools`` (else the second is refused with the
planner's words).  With no ``--bootargs``, each VM's command line ends in
``sel4vmm.vm=NAME``, so a guest can tell which VM it is (the ``memtest`` guest seeds its
pattern with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.console_watch import ConsoleEvent, ConsoleWatch
from sel4vmm.backends.unicorn.cross_vm import wire_boards
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles, classify_kernel, load_linux
from sel4vmm.backends.unicorn.scheduling import Schedule
from sel4vmm.backends.unicorn.session import (
    RunResult,
    bundled_guest,
    layout_of_vm,
    raw_binary_bootargs,
    read_system,
)
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.backends.unicorn.system_loop import SystemLoop, SystemStatistics
from sel4vmm.backends.unicorn.typed_input import TypedInput
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.config.load import pick_vm
from sel4vmm.config.spec import SystemSpec, VmSpec
from sel4vmm.devices.net_peers import NetBackend
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.detect import KernelImage


@dataclass(frozen=True)
class SystemVm:
    """One VM as the system file describes it, ready to lay out on the board."""

    spec: VmSpec
    layout: GuestLayout
    schedule: Schedule


def chosen_vms(spec: SystemSpec, names: Sequence[str] | None) -> list[VmSpec]:
    """Every VM of ``spec``, or those ``names`` (``--vm``) choose, in the file's order."""
    if not names:
        return [pick_vm(spec, None, first_if_many=True), *spec.vms[1:]]
    repeated = next((n for n in names if list(names).count(n) > 1), None)
    if repeated is not None:
        raise Sel4VmmError(
            f"--vm {repeated} is given twice",
            location=Location(spec.path),
            fix="name each VM once",
        )
    chosen = {pick_vm(spec, name).name for name in names}
    return [vm for vm in spec.vms if vm.name in chosen]


def schedule_of(vm: VmSpec) -> Schedule:
    """The VM's priority and MCS budget/period as the reader recorded them.

    Microkit: its VMM protection domain's ``priority``/``budget``/``period``.  CAmkES: the
    VM component's ``_priority`` (its control thread, where camkes-vm's VMM loop runs;
    ``VM_CONFIGURATION_DEF`` in camkes-vm's ``configurations/vm.h`` sets 101), else its
    ``priority`` (every thread of the instance, as the CAmkES manual's "Thread
    Priorities" has it), else the default; CAmkES budgets are not read, so a CAmkES VM
    has the default budget (its whole period).
    """
    extra = vm.extra
    if "vmm" in extra:  # Microkit (config/microkit/to_spec.py records the VMM PD)
        priority, budget, period = (extra.get(key) for key in ("priority", "budget", "period"))
    else:
        priority = extra.get("_priority", extra.get("priority"))
        budget = period = None
    return Schedule(
        priority=priority if isinstance(priority, int) else 0,
        budget_us=budget if isinstance(budget, int) else Schedule().budget_us,
        period_us=period if isinstance(period, int) else None,
    )


def system_vms(
    path: Path,
    names: Sequence[str] | None = None,
    *,
    one_to_one: bool = True,
    ram_size: int | None = None,
    num_vcpus: int | None = None,
    defines: dict[str, str] | None = None,
    include_dirs: tuple[Path, ...] = (),
    spec: SystemSpec | None = None,
) -> list[SystemVm]:
    """The VMs a run of ``path`` starts, each laid out and scheduled as the system says.

    ``ram_size`` and ``num_vcpus`` (``--ram-size``, ``--vcpus``) apply to every VM;
    ``one_to_one=False`` (``--pools``) takes the RAM of every VM the system does not pin
    from pools.  ``spec`` is the system already read from ``path`` (:func:`read_system`),
    so a caller that has it does not read the file again.
    """
    if spec is None:
        spec = read_system(path, defines=defines, include_dirs=include_dirs)
    several = len(spec.vms) > 1
    vms = []
    for vm in chosen_vms(spec, names):
        layout = layout_of_vm(vm, path)
        layout = layout.with_ram(one_to_one=vm.one_to_one or one_to_one, size=ram_size)
        layout = layout.with_vcpus(num_vcpus)
        if several:
            layout = replace(layout, bootargs=f"{layout.bootargs} sel4vmm.vm={vm.name}")
        vms.append(SystemVm(vm, layout, schedule_of(vm)))
    return vms


@dataclass
class VmRunResult(RunResult):
    """One VM of a system run: :class:`~.session.RunResult` plus its share of the CPU."""

    #: Board-clock seconds of the VM's own rounds, how many rounds it ran, how often its
    #: budget ran out, and the schedule it ran in.
    run_seconds: float = 0.0
    rounds: int = 0
    throttles: int = 0
    schedule: Schedule = field(default_factory=Schedule)


@dataclass
class SystemRunResult:
    """How every VM of a system run ended."""

    vms: list[VmRunResult]
    statistics: SystemStatistics
    host_seconds: float
    #: Board time at the end, and the part of it skipped while no VM could run.
    guest_seconds: float
    skipped_seconds: float
    #: The VM (by index into :attr:`vms`) of each of the last rounds.
    trace: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(vm.ok for vm in self.vms)


ConsoleFor = Callable[[str], Callable[[bytes], None] | None]


def run_system(
    system_path: Path,
    kernel_path: Path | None = None,
    *,
    vm_names: Sequence[str] | None = None,
    consoles: ConsoleFor | None = None,
    one_to_one: bool = True,
    ram_size: int | None = None,
    num_vcpus: int | None = None,
    console_input: bytes = b"",
    wait_for_input: Callable[[float], bool] | None = None,
    input_source: Callable[[], list[tuple[int, bytes]]] | None = None,
    time_limit: float | None = 60.0,
    linux: LinuxBootFiles | None = None,
    until: str | None = None,
    stop_check: Callable[[], StopReason | None] | None = None,
    defines: dict[str, str] | None = None,
    include_dirs: tuple[Path, ...] = (),
    net: NetBackend = "switch",
    net_required: bool = False,
    spec: SystemSpec | None = None,
) -> SystemRunResult:
    """Boot ``kernel_path`` (default: the bundled hello guest) in every VM of the system
    (or those ``vm_names`` choose) and run them together until every VM has stopped.

    ``consoles(name)`` gives the sink of a VM's console output.  ``console_input`` is
    typed into every VM; ``wait_for_input(timeout)`` says when keys arrived at a
    terminal and ``input_source()`` takes them, each run with the VM (an index into the
    run's VMs) it was typed to.  ``net`` (``--net``; ``net_required`` when given) is the
    peer of each VM's virtio-net card: with ``switch`` every card is a port of the
    system's one :attr:`~.system.EmulatedSystem.switch`.  ``until`` stops the
    VM whose console prints it (the others go on); ``stop_check`` (Ctrl-C, SIGTERM) and
    ``time_limit`` stop every VM.  ``spec`` is the system already read from
    ``system_path`` (:func:`read_system`), if the caller has it.
    """
    started = time.monotonic()
    if spec is None:
        spec = read_system(system_path, defines=defines, include_dirs=include_dirs)
    vms = system_vms(
        system_path,
        vm_names,
        one_to_one=one_to_one,
        ram_size=ram_size,
        num_vcpus=num_vcpus,
        spec=spec,
    )
    kernel = kernel_path if kernel_path is not None else bundled_guest("hello")
    linux = linux or LinuxBootFiles()
    image = classify_kernel(kernel)
    bootargs = raw_binary_bootargs(kernel, image, linux)
    if bootargs is not None:
        vms = [replace(vm, layout=replace(vm.layout, bootargs=bootargs)) for vm in vms]
    system = EmulatedSystem(
        [vm.layout for vm in vms],
        locations=[vm.spec.location for vm in vms],
        fix_language="microkit" if system_path.suffix == ".system" else "camkes",
    )
    watches = [ConsoleWatch(until) for _ in vms]
    typed: list[TypedInput | None] = [None] * len(vms)

    def feed_typed() -> None:
        for index, data in input_source() if input_source is not None else []:
            if data and 0 <= index < len(system.boards):
                system.boards[index].feed_input(data)

    def wait(timeout: float) -> bool:
        if any(t is not None and t.poll(idle=True) for t in typed):
            return True
        if wait_for_input is None or not wait_for_input(timeout):
            return False
        feed_typed()
        return True

    def vm_check(index: int) -> Callable[[], StopReason | None]:
        def check() -> StopReason | None:
            typing = typed[index]
            if typing is not None:
                typing.poll()
            watch = watches[index]
            if watch.event is ConsoleEvent.UNTIL:
                return StopReason.CONSOLE_MATCH
            if watch.event is ConsoleEvent.PANIC:
                return StopReason.KERNEL_PANIC
            return None

        return check

    def outside_check() -> StopReason | None:
        if wait_for_input is not None and wait_for_input(0):
            feed_typed()
        return stop_check() if stop_check is not None else None

    try:
        for index, vm in enumerate(vms):
            board = system.add_board(vm.layout, Console(_watched(watches[index], consoles, vm)))
            board.loop.stop_checks.append(vm_check(index))
        # Shared regions, doorbells and modelled components (issue 14 item 4), before the
        # guests load: each VM's DTB describes what it was given.
        wire_boards(spec, system.boards)
        entries = []
        for index, board in enumerate(system.boards):
            network = VirtioBackends(net=net, net_required=net_required, switch=system.switch)
            entries.append(_load(board, kernel, image, linux, network))
            if console_input and image is None:
                board.feed_input(console_input)
            elif console_input:
                typed[index] = TypedInput(board.uart, board.clock, console_input)
        needs_wait = wait_for_input is not None or any(t is not None for t in typed)
        loop = SystemLoop.of_boards(
            system.boards,
            [vm.schedule for vm in vms],
            wait_for_input=wait if needs_wait else None,
            interactive=wait_for_input is not None,
        )
        loop.stop_checks.append(outside_check)
        outcomes = loop.run(entries, time_limit=time_limit)
    finally:
        system.close()
    results = []
    for board, vm, watch, outcome in zip(system.boards, vms, watches, outcomes, strict=True):
        reason = outcome.stop_reason
        if watch.panicking and reason is not StopReason.CONSOLE_MATCH:
            reason = StopReason.KERNEL_PANIC
        results.append(
            VmRunResult(
                stop_reason=reason,
                console=bytes(board.console.output),
                diagnostic=(board.loop.stopped_by or board.vcpu).diagnostic,
                layout=vm.layout,
                statistics=outcome.statistics,
                faults_handled=sum(vcpu.faults_handled for vcpu in board.vcpus),
                last_lines=watch.last_lines,
                host_seconds=time.monotonic() - started,
                guest_seconds=outcome.guest_seconds,
                linux=image is not None,
                warnings=[*board.warnings, *board.virtio.errors],
                mmio_path=board.mmio_path,
                network=board.virtio.net.report() if board.virtio.net is not None else None,
                trampoline_accesses=sum(
                    vcpu.trampolines.fast_accesses for vcpu in board.vcpus if vcpu.trampolines
                ),
                run_seconds=outcome.run_seconds,
                rounds=outcome.rounds,
                throttles=outcome.throttles,
                schedule=vm.schedule,
            )
        )
    clock = system.clock
    return SystemRunResult(
        vms=results,
        statistics=loop.stats,
        host_seconds=time.monotonic() - started,
        guest_seconds=clock.ticks_to_seconds(clock.now()),
        skipped_seconds=clock.ticks_to_seconds(clock.skipped_ticks),
        trace=list(loop.trace),
    )


def _watched(
    watch: ConsoleWatch, consoles: ConsoleFor | None, vm: SystemVm
) -> Callable[[bytes], None]:
    sink = consoles(vm.layout.name) if consoles is not None else None

    def to_console(data: bytes) -> None:
        watch.feed(data)
        if sink is not None:
            sink(data)

    return to_console


def _load(
    board: EmulatedBoard,
    kernel: Path,
    image: KernelImage | None,
    linux: LinuxBootFiles,
    network: VirtioBackends,
) -> int:
    """Load the kernel into one VM: a raw binary at RAM + 0x80000, or Linux by its boot
    protocol."""
    if image is None:
        return board.load_file(kernel)
    return load_linux(board, image, linux, network)
