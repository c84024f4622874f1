"""The emulated qemu-virt AArch64 board and one VM on it, assembled from the parts.

This is what a Microkit VMM such as libvmm's ``simple`` example sets up at start-up, done
with the core's seL4 model underneath:

* the board's physical memory (RAM, the PL011, the GIC frames) and a booted
  :class:`~sel4vmm.sel4.platform.Sel4Platform`;
* the VM with the resources a system description would give it: guest RAM either 1:1
  (a device untyped at the RAM's own physical address, ``map_one_to_one``) or from
  untyped pools, and the device frames it passes through;
* the guest-physical map: RAM, the UART and the GIC's virtual CPU interface mapped as
  frames, the GIC distributor and the DMA engine as fault-callback reservations;
* one unicorn engine, address-map listener and virtual timer per vCPU (all engines map
  the same host memory, so the vCPUs share guest RAM without copies), the vGIC with one
  virtual CPU interface per vCPU (or a GICv3 where the guest's DTB puts one:
  :meth:`EmulatedBoard.use_gicv3`), the UART and DMA models, the DTB and the kernel image,
  and the event loop that runs it all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from unicorn.arm64_const import UC_ARM64_REG_PC, UC_ARM64_REG_PSTATE, UC_ARM64_REG_X0

from sel4vmm.backends.unicorn.address_map import DeviceWindow, UnicornAddressMap
from sel4vmm.backends.unicorn.cpu import Vcpu
from sel4vmm.backends.unicorn.devicetree import CrossVmNodes, GuestDeviceTree, build_device_tree
from sel4vmm.backends.unicorn.event_loop import EventLoop
from sel4vmm.backends.unicorn.fault_pages import mmio_path_description
from sel4vmm.backends.unicorn.gic_controller import (
    Gicv2Controller,
    Gicv3Controller,
    InterruptControllerPort,
    SpiLines,
)
from sel4vmm.backends.unicorn.gic_devicetree import check_gicv3_frames, gicv3_windows
from sel4vmm.backends.unicorn.qemu_virt import (
    QEMU_VIRT_GICC,
    QEMU_VIRT_GICD,
    QEMU_VIRT_GICV,
    QEMU_VIRT_RAM,
    QEMU_VIRT_UART,
    QEMU_VIRT_UART_INTID,
    board_platform,
)
from sel4vmm.backends.unicorn.sysregs import ID_AA64PFR0_EL1, PFR0_GIC_SYSREGS
from sel4vmm.backends.unicorn.timer import GuestClock, VirtualTimer
from sel4vmm.backends.unicorn.virtio_devices import (
    ClaimedWindow,
    VirtioBackends,
    VirtioDevices,
    attach_virtio,
)
from sel4vmm.devices.dma_engine import DMA_FRAME_SIZE, DmaEngine
from sel4vmm.devices.gicv2 import DISTRIBUTOR_FRAME_SIZE, MAX_CPUS, Vgic
from sel4vmm.devices.gicv2.lines import VgicLines
from sel4vmm.devices.gicv3 import Gicv3Layout
from sel4vmm.devices.irq import LevelSource
from sel4vmm.devices.pl011 import PL011_FRAME_SIZE, Pl011
from sel4vmm.errors import Location, Sel4VmmError, read_user_file
from sel4vmm.memory import Reservation
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import (
    DeviceFramesRequest,
    DeviceUntypedRequest,
    PoolRequest,
    VirtualMachine,
)

#: Where the VMM emulates the test DMA engine (a free window of qemu virt's map).
DMA_GUEST_ADDRESS = 0x0B00_0000
#: Linux's arm64 image offset from the start of RAM; the DTB goes at the start of RAM.
KERNEL_OFFSET = 0x8_0000
#: PSTATE at entry: EL1h with D, A, I, F masked (Documentation/arm64/booting.rst).
ENTRY_PSTATE = 0x3C5
#: Instructions per counted slice: one vCPU runs long slices (each slice costs the VMM
#: ~0.1 ms); several vCPUs take shorter turns, because a vCPU spinning on a lock or a
#: rendezvous wastes its whole turn.  Measured with Debian's kernel on 4 vCPUs: with 200,000
#: per turn the boot stalls in stop_machine (soft lockups in multi_cpu_stop while applying
#: the system-wide alternatives); with 20,000 it reaches userspace.
SLICE_INSTRUCTIONS = 200_000
SMP_SLICE = 20_000
#: Size of the RAM untyped objects guest RAM is carved from when it is not 1:1 (seed 000).
POOL_UNTYPED_BITS = 24


@dataclass(frozen=True)
class PassthroughMap:
    """A board device frame the guest reaches directly: guest address, physical address."""

    name: str
    guest_addr: int
    paddr: int
    size: int


@dataclass(frozen=True)
class GuestLayout:
    """Where the guest's RAM and devices are, as a system description states them.

    The defaults are libvmm's ``simple.system`` for qemu virt: 256 MiB of RAM at
    0x40000000, the UART passed through at 0x9000000 and the GIC's virtual CPU interface
    (physical 0x8040000) at the guest's GICC address 0x8010000.
    """

    name: str = "linux"
    ram_base: int = QEMU_VIRT_RAM
    ram_size: int = 0x1000_0000
    one_to_one: bool = True
    ram_page_bits: int = 21
    uart: PassthroughMap = PassthroughMap("serial", QEMU_VIRT_UART, QEMU_VIRT_UART, 0x1000)
    gic_vcpu: PassthroughMap = PassthroughMap("gic_vcpu", QEMU_VIRT_GICC, QEMU_VIRT_GICV, 0x1000)
    gicd_base: int = QEMU_VIRT_GICD
    uart_intid: int = QEMU_VIRT_UART_INTID
    dma_base: int | None = DMA_GUEST_ADDRESS
    bootargs: str = "console=ttyAMA0 earlycon=pl011,0x9000000"
    source: str = "built-in qemu_virt_aarch64 layout"
    #: vCPUs: vCPU 0 boots the kernel, the others wait for PSCI CPU_ON.
    num_vcpus: int = 1
    #: DMA behind an SMMU sharing the VM's stage-2 (``--smmu``); else physical addresses.
    smmu: bool = False

    def with_ram(self, *, one_to_one: bool | None = None, size: int | None = None) -> GuestLayout:
        return replace(
            self,
            one_to_one=self.one_to_one if one_to_one is None else one_to_one,
            ram_size=self.ram_size if size is None else size,
        )

    def with_vcpus(self, num_vcpus: int | None) -> GuestLayout:
        """The layout with ``num_vcpus`` vCPUs (None: keep the configuration's)."""
        return self if num_vcpus is None else replace(self, num_vcpus=num_vcpus)


def check_vcpus(layout: GuestLayout) -> None:
    """The emulated GICv2 serves at most eight CPU interfaces (8-bit target masks)."""
    if not 1 <= layout.num_vcpus <= MAX_CPUS:
        raise Sel4VmmError(
            f"{layout.name}: {layout.num_vcpus} vCPUs: the emulated GICv2 board has 1 to "
            f"{MAX_CPUS}",
            location=Location(layout.source),
            fix=f"ask for between 1 and {MAX_CPUS} vCPUs",
        )


def one_to_one_request(layout: GuestLayout) -> DeviceUntypedRequest:
    """The device untyped that backs 1:1 guest RAM (``untyped_mmios``).

    The RAM is reserved from seL4 (libvmm's ``overlay-reserve-vm-memory.dts``), so the
    kernel turns it into device untyped, handed to the VMM at the RAM's own address.
    """
    size_bits = layout.ram_size.bit_length() - 1
    if 1 << size_bits != layout.ram_size or layout.ram_base % layout.ram_size:
        raise Sel4VmmError(
            f"1:1 guest RAM of {layout.ram_size:#x} bytes at {layout.ram_base:#x} cannot be "
            "one untyped object",
            location=Location(layout.source),
            fix="use a power-of-two RAM size aligned to itself, or RAM from pools",
        )
    return DeviceUntypedRequest(layout.ram_base, size_bits)


def pool_requests(layout: GuestLayout) -> list[PoolRequest]:
    """Untyped pools for the VM: RAM frames (unless 1:1) and the kernel objects."""
    if layout.one_to_one:
        return [PoolRequest(POOL_UNTYPED_BITS, 1)]
    pool = 1 << POOL_UNTYPED_BITS
    # One extra untyped for the kernel objects and paging structures, as seed 000 sizes
    # its pool (512 MiB: 32 untyped of 2^24 plus one).
    return [PoolRequest(POOL_UNTYPED_BITS, (layout.ram_size + pool - 1) // pool + 1)]


#: Bytes of console output a run keeps (the newest): a guest printing for hours costs no
#: more memory than this.
CONSOLE_KEPT_BYTES = 1 << 20


@dataclass
class Console:
    """Where the guest's UART output goes: kept (the last :data:`CONSOLE_KEPT_BYTES`), and
    passed to an optional sink."""

    sink: Callable[[bytes], None] | None = None
    output: bytearray = field(default_factory=bytearray)

    def write(self, data: bytes) -> None:
        self.output += data
        if len(self.output) > 2 * CONSOLE_KEPT_BYTES:
            del self.output[:-CONSOLE_KEPT_BYTES]
        if self.sink is not None:
            self.sink(data)


class EmulatedBoard:
    """One VM on the emulated qemu-virt board, ready to load a kernel and run."""

    def __init__(
        self,
        layout: GuestLayout,
        console: Console,
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        interactive: bool | None = None,
        platform: Sel4Platform | None = None,
        clock: GuestClock | None = None,
    ) -> None:
        """One VM alone on its board, or — given the ``platform`` (with its physical
        memory) and the ``clock`` of a board that several VMs share
        (:class:`~.system.EmulatedSystem`) — one VM of several."""
        check_vcpus(layout)
        self.layout = layout
        self.console = console
        #: What a several-VM system gives this VM (shared windows, doorbells), written into
        #: the DTB it boots with; set by :func:`~.cross_vm.wire_boards` before loading.
        self.cross_vm_nodes: CrossVmNodes | None = None
        if platform is None:
            platform = board_platform([layout])
        self.platform = platform
        self.physmem = platform.physmem
        frames = [DeviceFramesRequest(m.paddr, m.size, 12) for m in (layout.uart, layout.gic_vcpu)]
        self.vm = VirtualMachine.create(
            layout.name,
            self.platform,
            pools=pool_requests(layout),
            device_untypeds=[one_to_one_request(layout)] if layout.one_to_one else [],
            device_frames=frames,
            num_vcpus=layout.num_vcpus,
        )
        self.clock = GuestClock() if clock is None else clock
        self.timers = [VirtualTimer(self.clock) for _ in range(layout.num_vcpus)]
        #: Which path emulated MMIO takes on this board (C trampoline or pure Python).
        self.mmio_path = mmio_path_description()
        self.vcpus = [Vcpu(self.vm, timer, index) for index, timer in enumerate(self.timers)]
        self.vgic = Vgic(on_eoi=self._on_eoi, on_signal=self._on_signal, num_cpus=layout.num_vcpus)
        self.uart = Pl011(console.write, irq_line=self._on_uart_line)
        #: The vGIC's SPIs as raise/lower lines, for the device models.
        self.lines: SpiLines = VgicLines(self.vgic)
        #: The interrupt controller the loop drives: the GICv2 until the guest's DTB asks
        #: for a GICv3 (:meth:`use_gicv3`).
        self.interrupts: InterruptControllerPort = Gicv2Controller(self.vgic)
        self.gicv3: Gicv3Controller | None = None
        self.gicv3_layout: Gicv3Layout | None = None
        self._gicv2_reservations: list[Reservation] = []
        #: The virtio-mmio devices, once :meth:`attach_virtio` has read the guest's DTB.
        self.virtio = VirtioDevices()
        #: Reports the run makes without stopping (DMA reaching foreign memory).
        self.warnings: list[str] = []
        self.dma = DmaEngine(self.physmem, self.vm, smmu=layout.smmu, report=self.warnings.append)
        # Each engine has its own map of the same guest-physical space; only the GIC's
        # virtual CPU interface differs: the one of the vCPU that accesses it.
        self.address_maps = [
            UnicornAddressMap(
                vcpu.uc,
                self.physmem,
                [
                    DeviceWindow("pl011", layout.uart.paddr, PL011_FRAME_SIZE, self.uart),
                    DeviceWindow("gicv", layout.gic_vcpu.paddr, 0x2000, self.vgic.cpus[i]),
                ],
                vcpu.mmio_access,
                AARCH64.guest_address_bits,
                vcpu.trampolines,
            )
            for i, vcpu in enumerate(self.vcpus)
        ]
        for vcpu, address_map in zip(self.vcpus, self.address_maps, strict=True):
            vcpu.queued_extent = address_map.queued_extent
            self.vm.memory.add_listener(address_map)
        self._map_guest()
        self.loop = EventLoop(
            self.vcpus,
            self.interrupts,
            self.address_maps,
            [LevelSource(layout.uart_intid, lambda: self.uart.irq_asserted)],
            wait_for_input=wait_for_input,
            interactive=interactive,
            slice_instructions=SLICE_INSTRUCTIONS if layout.num_vcpus == 1 else SMP_SLICE,
        )
        for vcpu in self.vcpus:
            vcpu.power = self.loop
            vcpu.irq_line = self.vgic.cpus[vcpu.index].irq_line
            vcpu.irq_interface = self.vgic.cpus[vcpu.index]
            if len(self.vcpus) > 1:
                vcpu.code_changed = self._code_changed_by(vcpu)
                vcpu.watch_instruction_cache()

    # -- vCPU 0, which is the whole VM with one vCPU ---------------------------------------
    @property
    def vcpu(self) -> Vcpu:
        return self.vcpus[0]

    @property
    def timer(self) -> VirtualTimer:
        return self.timers[0]

    @property
    def address_map(self) -> UnicornAddressMap:
        return self.address_maps[0]

    # -- guest-physical map --------------------------------------------------------------
    def _map_guest(self) -> None:
        layout = self.layout
        memory = self.vm.memory
        self.vm.ram.register_at(
            layout.ram_base,
            layout.ram_size,
            one_to_one=layout.one_to_one,
            page_bits=layout.ram_page_bits,
        )
        for passthrough in (layout.uart, layout.gic_vcpu):
            reservation = self.vm.map_device(
                passthrough.guest_addr, passthrough.paddr, passthrough.size, label=passthrough.name
            )
            if passthrough is layout.gic_vcpu:
                self._gicv2_reservations.append(reservation)
        distributor = memory.reserve_at(
            layout.gicd_base,
            DISTRIBUTOR_FRAME_SIZE,
            self.vgic.distributor_fault,
            layout.gicd_base,
            label="vgic distributor",
        )
        self._gicv2_reservations.append(distributor)
        if layout.dma_base is not None:
            memory.reserve_at(
                layout.dma_base,
                DMA_FRAME_SIZE,
                self.dma.register_fault,
                layout.dma_base,
                label="dma engine",
            )

    def claimed_windows(self) -> list[ClaimedWindow]:
        """Guest-physical space the plan gives to RAM and to the devices already there."""
        layout = self.layout
        windows = [ClaimedWindow("guest RAM", layout.ram_base, layout.ram_size)]
        windows.append(ClaimedWindow(layout.uart.name, layout.uart.guest_addr, layout.uart.size))
        windows += self._gic_windows()
        if layout.dma_base is not None:
            windows.append(ClaimedWindow("the DMA engine", layout.dma_base, DMA_FRAME_SIZE))
        return windows

    def _gic_windows(self) -> list[ClaimedWindow]:
        layout = self.layout
        if self.gicv3_layout is not None:
            return gicv3_windows(self.gicv3_layout)
        return [
            ClaimedWindow(layout.gic_vcpu.name, layout.gic_vcpu.guest_addr, layout.gic_vcpu.size),
            ClaimedWindow("the vGIC distributor", layout.gicd_base, DISTRIBUTOR_FRAME_SIZE),
        ]

    def use_gicv3(self, gic_layout: Gicv3Layout, source: str) -> None:
        """Emulate a GICv3 where the guest's DTB puts it, instead of the board's GICv2.

        Called once the final DTB is known and before its devices are attached: the GICv3's
        frames are checked against what the plan already gives out (RAM, the UART, the DMA
        engine), the GICv2's distributor and GICV passthrough are given back, the GICv3 is
        reserved, and every vCPU serves its ICC_* registers, traps its ID registers to
        report ``ID_AA64PFR0_EL1.GIC`` = 1, and takes its IRQ input from the GICv3.
        """
        if self.gicv3 is not None or self.virtio.transports:
            raise ValueError("use_gicv3 comes once, before the DTB's devices are attached")
        others = [w for w in self.claimed_windows() if w not in self._gic_windows()]
        check_gicv3_frames(gic_layout, self.layout.num_vcpus, others, source)
        for reservation in self._gicv2_reservations:
            self.vm.memory.free(reservation)
        self._gicv2_reservations = []
        controller = Gicv3Controller(self.layout.num_vcpus, self.loop.signal)
        controller.gic.attach(self.vm, gic_layout)
        self.gicv3, self.gicv3_layout = controller, gic_layout
        self.interrupts = self.loop.interrupts = controller
        self.lines = controller.spi_lines
        native = int(self.vcpu.uc.cpr_read(*ID_AA64PFR0_EL1))
        pfr0 = native & ~(0xF * PFR0_GIC_SYSREGS) | PFR0_GIC_SYSREGS
        for vcpu in self.vcpus:
            vcpu.irq_line = partial(controller.irq_pending, vcpu.index)
            vcpu.irq_interface = None
            vcpu.serve_system_registers(controller, {ID_AA64PFR0_EL1: pfr0})

    def attach_virtio(self, dtb: bytes, source: str, backends: VirtioBackends) -> None:
        """Serve the DTB's ``virtio,mmio`` nodes (:mod:`.virtio_devices`) on this VM."""
        sampled = set(map(id, self.loop.sources))
        self.virtio = attach_virtio(
            self.vm, self.lines, dtb, source, backends, self.claimed_windows(), self.console.write
        )
        # Only the new lines: others (a doorbell wired before the guest loaded) are
        # sampled already.
        self.loop.sources.extend(s for s in self.lines.sources if id(s) not in sampled)

    def feed_input(self, data: bytes) -> None:
        """Bytes typed at the console: to virtio-console when it is the console, else the UART."""
        if self.virtio.console is not None:
            self.virtio.console.feed_input(data)
        else:
            self.uart.feed_input(data)

    def _code_changed_by(self, writer: Vcpu) -> Callable[[], None]:
        others = [vcpu for vcpu in self.vcpus if vcpu is not writer]

        def mark_stale() -> None:
            for vcpu in others:
                vcpu.stale_code = True

        return mark_stale

    # -- interrupts ----------------------------------------------------------------------
    def _on_uart_line(self, asserted: bool) -> None:
        if asserted:
            self.loop.sample_interrupts()

    def _on_signal(self, cpu: int) -> None:
        self.loop.signal(cpu)

    def _on_eoi(self, intid: int) -> None:
        del intid
        # A level source still asserted after EOI is pending again (the VMM re-injects).
        self.loop.sample_interrupts()

    # -- images --------------------------------------------------------------------------
    def device_tree(self) -> bytes:
        layout = self.layout
        return build_device_tree(
            GuestDeviceTree(
                ram_base=layout.ram_base,
                ram_size=layout.ram_size,
                uart_base=layout.uart.guest_addr,
                uart_spi=layout.uart_intid,
                gicd_base=layout.gicd_base,
                gicc_base=layout.gic_vcpu.guest_addr,
                bootargs=layout.bootargs,
                dma_base=layout.dma_base,
                num_cpus=layout.num_vcpus,
                cross_vm=self.cross_vm_nodes,
            )
        )

    def load(self, kernel: bytes, kernel_name: str = "kernel") -> int:
        """Place the kernel at RAM + 0x80000 and the DTB at the start of RAM; set x0/PC."""
        layout = self.layout
        dtb = self.device_tree()
        entry = layout.ram_base + KERNEL_OFFSET
        if len(dtb) > KERNEL_OFFSET:
            raise Sel4VmmError(f"the generated DTB ({len(dtb)} bytes) overlaps the kernel")
        if KERNEL_OFFSET + len(kernel) > layout.ram_size:
            raise Sel4VmmError(
                f"{kernel_name} ({len(kernel)} bytes) does not fit in {layout.ram_size:#x} "
                "bytes of guest RAM at offset 0x80000",
                location=Location(kernel_name),
                fix="give the guest more RAM",
            )
        self.vm.ram.write(layout.ram_base, dtb)
        self.vm.ram.write(entry, kernel)
        uc = self.vcpu.uc
        uc.reg_write(UC_ARM64_REG_X0, layout.ram_base)
        uc.reg_write(UC_ARM64_REG_PSTATE, ENTRY_PSTATE)
        uc.reg_write(UC_ARM64_REG_PC, entry)
        return entry

    def load_file(self, path: Path) -> int:
        data = read_user_file(path, "the guest kernel", "check the path given to --kernel")
        return self.load(data, str(path))

    def close(self) -> None:
        """Release unicorn's references to host memory before the mapping goes away."""
        for vcpu in self.vcpus:
            vcpu.uc.emu_stop()
        self.virtio.close()
