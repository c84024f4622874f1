"""The typed slice of unicorn's API the backend uses, and the one place it is created.

unicorn's Python binding is only partly annotated (``reg_read``, ``hook_add``,
``emu_start`` are untyped, and ``cpr_read``/``cpr_write`` live on an architecture subclass), so the
rest of the backend talks to this :class:`AArch64Engine` protocol instead and stays
``mypy --strict`` clean without sprinkling ``Any``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Protocol, cast

import unicorn
from unicorn.unicorn_py3 import unicorn as _binding

#: unicorn's exception type (re-exported: the package does not declare it public).
UcError: type[Exception] = _binding.UcError

MmioRead = Callable[[Any, int, int, Any], int]
MmioWrite = Callable[[Any, int, int, int, Any], None]


class AArch64Engine(Protocol):
    """What the backend calls on a unicorn ``Uc`` in AArch64 mode."""

    def reg_read(self, reg_id: int) -> int: ...

    def reg_write(self, reg_id: int, value: int) -> None: ...

    def cpr_write(self, op0: int, op1: int, crn: int, crm: int, op2: int, value: int) -> None: ...

    def cpr_read(self, op0: int, op1: int, crn: int, crm: int, op2: int) -> int: ...

    def mem_read(self, address: int, size: int) -> bytearray: ...

    def mem_write(self, address: int, data: bytes) -> None: ...

    def mem_map(self, address: int, size: int, perms: int = 7) -> None: ...

    def mem_map_ptr(self, address: int, size: int, perms: int, ptr: int) -> None: ...

    def mmio_map(
        self,
        address: int,
        size: int,
        read_cb: MmioRead,
        user_data_read: Any,
        write_cb: MmioWrite,
        user_data_write: Any,
    ) -> None: ...

    def mem_unmap(self, address: int, size: int) -> None: ...

    def hook_add(
        self,
        htype: int,
        callback: Callable[..., Any],
        user_data: Any = None,
        begin: int = 1,
        end: int = 0,
        aux1: int = 0,
    ) -> int: ...

    def hook_del(self, handle: int) -> None: ...

    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None: ...

    def emu_stop(self) -> None: ...

    def ctl_remove_cache(self, begin: int, end: int) -> None: ...

    def ctl_flush_tb(self) -> None: ...


def new_aarch64_engine() -> AArch64Engine:
    """A fresh unicorn AArch64 CPU (it starts in EL1h, MMU off, as the guest expects)."""
    create: Callable[[int, int], object] = _binding.Uc
    return cast(AArch64Engine, create(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM))


def register_reader(engine: AArch64Engine, reg_id: int) -> Callable[[], int]:
    """A fast reader of one 64-bit register, for the per-access paths.

    The binding's ``reg_read`` picks a register class and builds ctypes objects on every
    call (about 4 us); this calls ``uc_reg_read`` on a preallocated value instead.
    """
    handle = engine._uch  # type: ignore[attr-defined]
    read = _binding.uclib.uc_reg_read
    value = ctypes.c_uint64()
    pointer = ctypes.byref(value)

    def reader() -> int:
        status = read(handle, reg_id, pointer)
        if status != unicorn.UC_ERR_OK:
            raise UcError(status)
        return value.value

    return reader
