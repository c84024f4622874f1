"""``--input``: keystrokes typed into the guest's UART once the guest listens.

A bare-metal guest polls its UART from the first instruction, so its input is queued
before it starts.  Linux does not: until ``/dev/console`` is opened its PL011 driver has
the receive interrupt masked, and when it opens the port ``pl011_enable_interrupts``
*discards* whatever is in the receive FIFO (up to twice its size).  So for a Linux guest
the text waits until the driver has unmasked the receive interrupt and a little guest
time has passed (:data:`SETTLE_SECONDS`, so the open has finished), or until the guest
idles with the interrupt unmasked, and is then typed all at once (the tty buffers it).
"""

from __future__ import annotations

from sel4vmm.backends.unicorn.timer import GuestClock
from sel4vmm.devices.pl011 import INT_RT, INT_RX, Pl011

#: Guest seconds between the driver unmasking receive interrupts and the text arriving.
SETTLE_SECONDS = 0.2


class TypedInput:
    """Text to type into ``uart`` once the guest is ready for it."""

    def __init__(self, uart: Pl011, clock: GuestClock, text: bytes) -> None:
        self._uart = uart
        self._clock = clock
        self._text = text
        self._listening_since: int | None = None

    @property
    def pending(self) -> bool:
        return bool(self._text)

    def _listening(self) -> bool:
        return bool(self._uart.interrupt_mask & (INT_RX | INT_RT))

    def poll(self, *, idle: bool = False) -> bool:
        """Type the text if the guest is ready; True if it was typed now."""
        if not self._text or not self._listening():
            return False
        now = self._clock.now()
        if self._listening_since is None:
            self._listening_since = now
        settle = int(SETTLE_SECONDS * self._clock.frequency_hz)
        if not idle and now - self._listening_since < settle:
            return False
        self._uart.feed_input(self._text)
        self._text = b""
        return True
