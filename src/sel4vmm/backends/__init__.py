"""Backends that run guests through the guest-memory API: unicorn (AArch64), KVM (x86_64),
QEMU (AArch64 Linux from RAM sel4vmm loaded).  Each only listens to the address space's
mapped extents and sends faults back into it."""
