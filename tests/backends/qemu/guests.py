"""Guests for the QEMU backend tests: an initramfs /init and two tiny bare-metal Images."""

from __future__ import annotations

import struct

from tests.helpers import REPO
from tests.images.synthetic import arm64_image

DEBIAN_ROOT = REPO / ".cache" / "debian-arm64" / "root"
MARKER = "SEL4VMM-INITRAMFS-OK"
#: /init of the test initramfs: say the marker, then PSCI SYSTEM_OFF (QEMU exits).
MARKER_INIT = f"#!/bin/sh\necho {MARKER}\n/bin/busybox poweroff -f\n"

#: A bare-metal guest, assembled with aarch64-linux-gnu-as from:
#:     movz x5, #0x900, lsl #16      // the PL011 at 0x9000000
#:     ldr  w6, [x0]                 // first word at x0: the DTB magic if the stub worked
#:     movz w7, #0x0dd0              // 0xd00dfeed, read little-endian
#:     movk w7, #0xedfe, lsl #16
#:     mov  w8, #'D'
#:     cmp  w6, w7
#:     b.eq 1f
#:     mov  w8, #'X'
#: 1:  str  w8, [x5]                 // print D (DTB found) or X
#:     mov  w8, #'\n'
#:     str  w8, [x5]
#:     movz w0, #0x0008              // PSCI SYSTEM_OFF 0x84000008
#:     movk w0, #0x8400, lsl #16
#:     smc  #0
#: 2:  b 2b
DTB_CHECK_GUEST = bytes.fromhex(
    "0520a1d2060040b907ba8152c7bfbd7288088052df00076b40000054080b8052"
    "a80000b948018052a80000b9000180520080b072030000d400000014"
)
#: ``b .``: a guest that never stops (for timeouts).
SPIN_FOREVER = struct.pack("<I", 0x14000000)


def synthetic_kernel(code: bytes) -> bytes:
    """An arm64 Image whose code0 branches to ``code`` at offset 0x40."""
    image = bytearray(arm64_image(0x10000))
    image[0x40 : 0x40 + len(code)] = code
    return bytes(image)
