"""AArch64 guests on unicorn, with the VMM's devices around them (the ``emulator`` backend).

unicorn is the CPU (:mod:`.cpu`, through the typed :mod:`.engine` facade); the guest's
memory map follows the core's address space without copies (:mod:`.address_map`).  The
VMM vectors exceptions and interrupts itself (:mod:`.exceptions`) and provides the CPU's own
pieces: the generic virtual timer (:mod:`.timer`) and PSCI (:mod:`.psci`).  The device
models it wires in — the GICv2 (:mod:`sel4vmm.devices.gicv2`), the PL011
(:mod:`sel4vmm.devices.pl011`) and the DMA engine (:mod:`sel4vmm.devices.dma_engine`) — live
in the devices layer.
:mod:`.board` assembles the qemu-virt board and one VM, :mod:`.event_loop` runs it, and
:func:`.session.run_guest` is the entry point.
"""
