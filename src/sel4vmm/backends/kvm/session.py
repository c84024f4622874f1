"""A guest of a :class:`~sel4vmm.vm.VirtualMachine` running on KVM.

The VirtualMachine owns the memory system (reservations, RAM, frames out of untyped); KVM
only executes.  The session wires the two together and owns every KVM resource:

* the KVM VM and its vCPU, with the in-kernel IRQ chip and PIT;
* :class:`~.memslots.MemorySlots` registered as a listener of ``vm.memory``, so RAM, 1:1
  RAM, passthrough frames and deferred maps appear as KVM slots as soon as libsel4vm maps
  them, and disappear when they are freed;
* KVM's irqchip as the devices' interrupt controller (:class:`~.irqchip.KvmIrqchip`);
* the port bus with COM1 (an 8250 on GSI 4) and the exit port;
* the virtio-mmio devices a run asks for (:meth:`KvmSession.attach_virtio`, :mod:`.virtio`);
* the exit loop that turns KVM exits into ``vm.memory.handle_fault`` calls.

Closing the session removes the listener and releases the KVM file descriptors; the
VirtualMachine stays usable (another backend can run it).
"""

from __future__ import annotations

from collections.abc import Callable

from sel4vmm.backends.kvm import x86_boot
from sel4vmm.backends.kvm.dirty import DirtyPageLog
from sel4vmm.backends.kvm.irqchip import KvmIrqchip
from sel4vmm.backends.kvm.memslots import MemorySlots
from sel4vmm.backends.kvm.portio import ExitPort, PortIoBus
from sel4vmm.backends.kvm.run import ExitLoop, RunOutcome
from sel4vmm.backends.kvm.system import KvmSystem
from sel4vmm.backends.kvm.uart8250 import COM1_IRQ, COM1_PORT, Uart8250
from sel4vmm.backends.kvm.vcpu import KvmVcpu
from sel4vmm.backends.kvm.virtio import KvmVirtio, VirtioRequest, attach_virtio
from sel4vmm.backends.kvm.vm import KvmVm
from sel4vmm.closing import Closing
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.elf import is_elf, parse_elf
from sel4vmm.vm import VirtualMachine


class KvmSession(Closing):
    """One VirtualMachine, one KVM VM with one vCPU, devices and the exit loop."""

    def __init__(
        self,
        vm: VirtualMachine,
        *,
        uart_output: Callable[[bytes], None] | None = None,
        system: KvmSystem | None = None,
    ) -> None:
        if vm.arch.name != "x86_64":
            raise Sel4VmmError(
                f"{vm.name} is an {vm.arch.name} VM; the KVM backend runs x86_64 guests",
                fix="run it with the unicorn or QEMU backend",
            )
        self.vm = vm
        self._owns_system = system is None
        self.system = system if system is not None else KvmSystem()
        self.kvm_vm: KvmVm | None = None
        self.vcpu: KvmVcpu | None = None
        self.slots: MemorySlots | None = None
        #: The virtio-mmio devices, once :meth:`attach_virtio` attached them.
        self.virtio: KvmVirtio | None = None
        try:
            self.kvm_vm = KvmVm(self.system)
            self.vcpu = KvmVcpu(self.kvm_vm)
            self.slots = MemorySlots(self.kvm_vm, vm.physmem)
            vm.memory.add_listener(self.slots)
        except BaseException:
            self.close()
            raise
        self._uart_output = uart_output
        self.irqchip = KvmIrqchip(self.kvm_vm)
        self.ports = PortIoBus()
        self.uart = Uart8250(
            output=uart_output, irq=self.irqchip.line(COM1_IRQ, "COM1 (8250 UART)")
        )
        self.ports.claim(COM1_PORT, 8, self.uart, "COM1 (8250 UART)")
        self.loop = ExitLoop(self.vcpu, vm.memory, vm.physmem, self.ports)
        self.ports.claim(ExitPort.PORT, 1, ExitPort(self.loop.guest_exit), "exit port")

    # --- devices ----------------------------------------------------------------------

    def attach_virtio(
        self, request: VirtioRequest, console_output: Callable[[bytes], None] | None = None
    ) -> KvmVirtio:
        """Serve ``request``'s virtio-mmio devices (before loading a kernel: Linux learns
        of them from the command line :func:`~.linux.load_linux` then writes).

        virtio-console output goes to ``console_output`` (default: the COM1 sink).
        """
        if self.virtio is not None:
            raise Sel4VmmError(
                "this KVM session already has its virtio devices",
                fix="ask for every virtio device in one VirtioRequest",
            )
        sink = console_output or self._uart_output or (lambda _data: None)
        self.virtio = attach_virtio(self.vm, self.irqchip, request, sink)
        return self.virtio

    # --- loading ----------------------------------------------------------------------

    def write_boot_tables(self, layout: x86_boot.LongModeLayout) -> None:
        """Put the boot GDT and identity map into guest RAM and mark them allocated."""
        for addr, size in layout.footprint():
            self.vm.ram.mark_allocated(addr, size)
        x86_boot.write_long_mode_tables(layout, self.vm.ram.write)

    def load_elf(self, data: bytes | memoryview, path: str = "<memory>") -> int:
        """Copy an ELF's ``PT_LOAD`` segments to their physical addresses; return the entry.

        Segments must land in registered RAM (the error names the RAM regions otherwise);
        the bytes past ``p_filesz`` are zeroed, as the ELF specification requires.
        """
        if not is_elf(data):
            raise Sel4VmmError(f"{path} is not an ELF file", fix="pass an ELF executable")
        image = parse_elf(data, path)
        if image.arch != "x86_64":
            raise Sel4VmmError(
                f"{path} is an {image.arch} ELF; this VM is x86_64",
                fix="build the guest for x86_64",
            )
        for segment in image.segments:
            if segment.mem_size == 0:
                continue
            self.vm.ram.mark_allocated(segment.paddr, segment.mem_size)
            contents = bytes(data[segment.file_offset : segment.file_offset + segment.file_size])
            self.vm.ram.write(segment.paddr, contents.ljust(segment.mem_size, b"\0"))
        return image.entry_paddr

    def enter(self, layout: x86_boot.LongModeLayout, state: x86_boot.EntryState) -> None:
        """Point the vCPU at ``state.rip`` in 64-bit mode on ``layout``'s tables."""
        vcpu = self._vcpu()
        sregs = vcpu.get_sregs()
        x86_boot.long_mode_sregs(sregs, layout)
        vcpu.set_sregs(sregs)
        vcpu.set_regs(x86_boot.entry_regs(state))

    # --- running ----------------------------------------------------------------------

    def run(
        self, timeout: float | None = None, until: Callable[[], bool] | None = None
    ) -> RunOutcome:
        """Run the vCPU until the guest exits, faults, fails, or the host stops it."""
        self._vcpu()
        return self.loop.run(timeout=timeout, until=until)

    def stop(self) -> None:
        """Stop a running :meth:`run` from another thread or from a device callback."""
        self.loop.stop()

    def dirty_pages(self) -> DirtyPageLog:
        """Dirty-page tracking over the VM's registered RAM (call ``start()`` on it)."""
        if self.slots is None:
            raise Sel4VmmError("the KVM session is closed", fix="create a new session")
        return DirtyPageLog(self.slots, [(r.start, r.size) for r in self.vm.ram.regions()])

    def _vcpu(self) -> KvmVcpu:
        if self.vcpu is None:
            raise Sel4VmmError("the KVM session is closed", fix="create a new session")
        return self.vcpu

    # --- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        if self.virtio is not None:
            self.virtio.detach()
            self.virtio = None
        if self.slots is not None:
            self.vm.memory.remove_listener(self.slots)
            self.slots = None
        if self.vcpu is not None:
            self.vcpu.close()
            self.vcpu = None
        if self.kvm_vm is not None:
            self.kvm_vm.close()
            self.kvm_vm = None
        if self._owns_system:
            self.system.close()
