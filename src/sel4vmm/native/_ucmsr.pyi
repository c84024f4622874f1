"""Typing for the C extension ``sel4vmm.native._ucmsr`` (source: ``_ucmsr.c``)."""

from collections.abc import Callable, Sequence

FILTER_CALLBACK: int

class MsrFilter:
    @property
    def passed(self) -> int: ...
    @property
    def filtered(self) -> int: ...
    def __init__(
        self,
        uc: object,
        callback: Callable[..., int],
        cp_type: type,
        registers: Sequence[tuple[int, int, int, int, int]],
        emu_stop: int,
    ) -> None: ...
