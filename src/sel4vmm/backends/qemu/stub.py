"""The AArch64 boot stub: the last step of a Linux boot loader, in six instructions.

QEMU is started without ``-kernel`` (sel4vmm, not QEMU, loads the images), so nothing in
QEMU sets up the registers Linux expects.  ``Documentation/arm64/booting.rst`` asks for
x0 = physical address of the DTB and x1-x3 = 0 at the kernel's first instruction; the
stub does exactly that and branches to the kernel.  It is the same sequence QEMU's own
``-kernel`` boot loader (``hw/arm/boot.c``) runs, so the two boots compare like for like.

The machine code below is the assembled form of ``boot_stub.S`` next to this module; the
two 64-bit literals after the code are the DTB address and the kernel entry.
"""

from __future__ import annotations

import struct
from typing import Final

#: ``boot_stub.S`` assembled (``aarch64-linux-gnu-as`` + ``objcopy -O binary``), code only.
STUB_CODE: Final = bytes.fromhex(
    "c0000058"  # ldr x0, dtb_address  (PC-relative literal at +0x18)
    "e1031faa"  # mov x1, xzr
    "e2031faa"  # mov x2, xzr
    "e3031faa"  # mov x3, xzr
    "84000058"  # ldr x4, kernel_entry (PC-relative literal at +0x20)
    "80001fd6"  # br x4
)
#: Offset of the DTB-address literal; the kernel entry follows it.
DTB_LITERAL_OFFSET: Final = 0x18
STUB_SIZE: Final = DTB_LITERAL_OFFSET + 16


def boot_stub(dtb_addr: int, kernel_entry: int) -> bytes:
    """The stub with its literals filled in: load it anywhere 8-byte aligned in RAM."""
    for name, value in (("DTB address", dtb_addr), ("kernel entry", kernel_entry)):
        if not 0 <= value < 1 << 64:
            raise ValueError(f"{name} {value:#x} is not a 64-bit physical address")
    padding = bytes(DTB_LITERAL_OFFSET - len(STUB_CODE))
    return STUB_CODE + padding + struct.pack("<QQ", dtb_addr, kernel_entry)


def stub_literals(stub: bytes) -> tuple[int, int]:
    """``(dtb_addr, kernel_entry)`` as a stub carries them (for reports and tests)."""
    dtb, entry = struct.unpack_from("<QQ", stub, DTB_LITERAL_OFFSET)
    return int(dtb), int(entry)
