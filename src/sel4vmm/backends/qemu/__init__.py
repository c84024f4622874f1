"""The QEMU backend: QEMU plays the board and its devices, sel4vmm owns guest memory.

sel4vmm builds the guest's RAM as a shared-memory file, loads kernel, initrd, DTB and a
six-instruction boot stub into it through its own guest-RAM API, and starts
``qemu-system-aarch64`` on that file in software emulation.  See :func:`run_qemu`.
"""

from sel4vmm.backends.qemu.session import QemuRunResult, run_qemu

__all__ = ["QemuRunResult", "run_qemu"]
