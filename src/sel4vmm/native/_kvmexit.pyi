"""Typing for the C extension ``sel4vmm.native._kvmexit`` (source: ``_kvmexit.c``)."""

from collections.abc import Callable

KVM_EXIT_MMIO: int
KVM_EXIT_INTR: int

def run(
    fd: int,
    run_page: memoryview,
    handle_fault: Callable[[object], object],
    fault_type: type,
    vcpu: object,
    handled: object,
    /,
) -> tuple[int, int, object, object]: ...
