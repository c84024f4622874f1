"""Typing for the C extension ``sel4vmm.native._ucmmio`` (source: ``_ucmmio.c``)."""

from collections.abc import Callable

READ_CALLBACK: int
WRITE_CALLBACK: int

class Trampoline:
    bypass: int
    stopping: int
    @property
    def fast_accesses(self) -> int: ...
    @property
    def general_accesses(self) -> int: ...
    @property
    def faults_made(self) -> int: ...
    def __init__(
        self,
        base: int,
        size: int,
        dispatch: Callable[..., object] | None,
        general: Callable[[int, int, bool, int], int],
        complete: Callable[..., int],
        record: Callable[[int, int, bool, int, int], object] | None,
        fault_type: type,
        vcpu: object,
        handled: object,
        emu_stop: int,
    ) -> None: ...
    def bind(self, page: int, dispatch: Callable[..., object] | None, /) -> None: ...
    def check(self) -> None: ...
