"""x86_64 guests on Linux KVM, driven through the same guest-memory API as every backend.

``/dev/kvm`` is used directly through ctypes (:mod:`.ioctls`): a VM with the in-kernel IRQ
chip and PIT (:mod:`.vm`), vCPUs (:mod:`.vcpu`), memory slots that follow the guest address
space (:mod:`.memslots`), dirty-page tracking (:mod:`.dirty`), port I/O and an 8250 UART
(:mod:`.portio`, :mod:`.uart8250`), 64-bit entry and the Linux boot protocol
(:mod:`.x86_boot`) and the exit loop that turns KVM exits into libsel4vm faults (:mod:`.run`).
"""
