"""One emulated board running several VMs: one physical memory, one seL4, one clock.

A system description (a Microkit ``.system`` with several ``<virtual_machine>``\\ s, a
CAmkES assembly with several VM instances) puts every VM on the *same* board.  So the
VMs here share what a board has once:

* the board's :class:`~sel4vmm.sel4.physmem.PhysicalMemory` (one sparse host mapping);
* one booted :class:`~sel4vmm.sel4.platform.Sel4Platform` that knows every VM's
  reservations before any VM is built: the RAM of each 1:1 VM is reserved from the
  kernel and handed out as device untyped at its own address (seL4's
  ``overlay-reserve-vm-memory.dts``), the first 16 MiB of board RAM hold seL4 and the
  VMM (unless a 1:1 VM's RAM is there), and pools come from the rest — so two VMs with
  the same guest RAM base get disjoint frames, exactly as the planner gives them;
* one :class:`~.timer.GuestClock`, because the VMs share one board's time: idle time is
  skipped only when every VM idles (:mod:`.system_loop`).

Each VM is still an :class:`~.board.EmulatedBoard` of its own (its vCPUs, vGIC, UART and
DMA models, address maps and event loop), built over the shared parts.

Usage::

    system = EmulatedSystem([layout_a, layout_b])      # reserve for every VM first
    board_a = system.add_board(layout_a, Console())    # then build each VM
    board_b = system.add_board(layout_b, Console())
    entries = [board.load_file(kernel) for board in system.boards]
    outcomes = SystemLoop(system.boards).run(entries, time_limit=60)
    system.close()

Two 1:1 VMs over the same physical RAM cannot both exist: the second is refused with the
planner's own words (``physical address ... is already in use``), at the VM's place in
the system file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sel4vmm.backends.unicorn.board import (
    Console,
    EmulatedBoard,
    GuestLayout,
)
from sel4vmm.backends.unicorn.qemu_virt import board_platform
from sel4vmm.backends.unicorn.timer import GuestClock
from sel4vmm.devices.net_switch import VirtualSwitch
from sel4vmm.errors import Location, Sel4VmmError


class EmulatedSystem:
    """The shared board of several VMs; :meth:`add_board` builds each VM on it."""

    def __init__(
        self,
        layouts: Sequence[GuestLayout],
        *,
        locations: Sequence[Location | None] | None = None,
        fix_language: str = "camkes",
    ) -> None:
        """Boot the board's seL4 with the reservations of every VM in ``layouts``.

        ``locations`` (one per layout) are where the system file declares each VM: errors
        building a VM point there.  ``fix_language`` ("microkit" or "camkes") words the
        planner's fixes in the file's own terms.
        """
        if not layouts:
            raise Sel4VmmError("a system needs at least one VM", fix="name a VM to run")
        names = [layout.name for layout in layouts]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise Sel4VmmError(
                f"two VMs are called '{duplicate}'",
                location=Location(layouts[0].source),
                fix="give every VM its own name",
            )
        self.layouts = list(layouts)
        self.locations = list(locations) if locations is not None else [None] * len(layouts)
        self.platform = board_platform(layouts, fix_language=fix_language)
        self.physmem = self.platform.physmem
        #: The board's time, which every VM's counter reads.
        self.clock = GuestClock()
        #: The VMM's virtual switch: every VM's virtio-net card is a port of it (``--net
        #: switch``), libvmm's vswitch model; nothing leaves the process.
        self.switch = VirtualSwitch()
        #: The VMs built so far, in the order they were added (the loop's order).
        self.boards: list[EmulatedBoard] = []

    def add_board(
        self,
        layout: GuestLayout,
        console: Console,
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        interactive: bool | None = None,
    ) -> EmulatedBoard:
        """Build the VM ``layout`` (one of the layouts the system was made with) on the
        shared board; a VM that cannot be built leaves nothing behind."""
        if layout not in self.layouts:
            raise ValueError(f"{layout.name} is not one of this system's VMs")
        location = self.locations[self.layouts.index(layout)] or Location(layout.source)
        try:
            board = EmulatedBoard(
                layout,
                console,
                wait_for_input=wait_for_input,
                interactive=interactive,
                platform=self.platform,
                clock=self.clock,
            )
        except Sel4VmmError as error:
            if error.location is None:
                error.location = location
            if layout.one_to_one and "already in use" in error.message:
                error.fix = (
                    f"{error.fix}; or run '{layout.name}' from pools (run --pools)"
                    if error.fix
                    else "run the VM from pools (run --pools)"
                )
            raise
        self.boards.append(board)
        return board

    def close(self) -> None:
        """Release every VM's engines.  The board's memory stays readable (the host
        side can still inspect each VM's frames) until the system is dropped."""
        for board in self.boards:
            board.close()
