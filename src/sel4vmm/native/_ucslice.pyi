"""Typing for the C extension ``sel4vmm.native._ucslice`` (source: ``_ucslice.c``)."""

BLOCK_CALLBACK: int

class Budget:
    remaining: int
    armed: int
    expired: int
    @property
    def blocks(self) -> int: ...
    @property
    def started(self) -> int: ...
    def __init__(self, emu_stop: int) -> None: ...
