"""A tiny A64 encoder for the hand-written guest programs of the unicorn tests and benches.

Only the few instructions those programs use; each returns the 32-bit word (or words) the
Arm ARM (DDI 0487, C6.2) gives for it, so a test reads as its assembly.
"""

from __future__ import annotations

import struct

#: ``hvc #0``: the guest's call into the VMM (PSCI here).
HVC0 = 0xD4000002


def mov64(rd: int, value: int) -> list[int]:
    """``movz`` + 3 ``movk``: any 64-bit constant into ``x<rd>``."""
    words = [0xD2800000 | ((value & 0xFFFF) << 5) | rd]
    for hw in (1, 2, 3):
        words.append(0xF2800000 | (hw << 21) | (((value >> (16 * hw)) & 0xFFFF) << 5) | rd)
    return words


def ldr_w(rt: int, rn: int) -> int:
    """``ldr w<rt>, [x<rn>]``."""
    return 0xB9400000 | (rn << 5) | rt


def ldrsb_x(rt: int, rn: int) -> int:
    """``ldrsb x<rt>, [x<rn>]``."""
    return 0x39800000 | (rn << 5) | rt


def str_w(rt: int, rn: int) -> int:
    """``str w<rt>, [x<rn>]``."""
    return 0xB9000000 | (rn << 5) | rt


def psci(function_id: int, *args: int) -> list[int]:
    """A PSCI call over ``hvc``: the function ID in x0, arguments from x1."""
    words = mov64(0, function_id)
    for register, value in enumerate(args, start=1):
        words += mov64(register, value)
    return [*words, HVC0]


def pack(words: list[int]) -> bytes:
    """Little-endian instruction words as the guest's code bytes."""
    return struct.pack(f"<{len(words)}I", *words)
