"""AArch64 guests on unicorn, with the VMM's devices around them (the ``emulator`` backend).

unicorn is the CPU (:mod:`.cpu`, through the typed :mod:`.engine` facade); the guest's
memory map follows the core's address space without copies (:mod:`.address_map`).  The
VMM vectors exceptions and interrupts itself (:mod:`.exceptions`), emulates the GICv2
distributor behind a fault-callback reservation and provides the virtual CPU interface
with list registers (:mod:`.gic`), the generic virtual timer (:mod:`.timer`), PSCI
(:mod:`.psci`), a PL011 (:mod:`.pl011`) and a physical-address DMA engine (:mod:`.dma`).
:mod:`.board` assembles the qemu-virt board and one VM, :mod:`.event_loop` runs it, and
:func:`.session.run_guest` is the entry point.
"""
