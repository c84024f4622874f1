"""Device models: fault callbacks on reservations, plus interrupt lines.

The layer sits between the guest address space (``memory/``, ``vm.py``) and the backends: a
device claims a window with ``vm.memory.reserve_at(base, size, callback, cookie)``, serves
the guest's loads and stores from the fault path, reads and writes guest RAM through
``vm.ram``, and signals the guest through an :class:`~sel4vmm.devices.irq.IrqLine`.  It knows
nothing of unicorn, KVM or QEMU; a backend runs CPUs and routes faults and lines.
"""
