"""unicorn's unmapped-access hooks, bound to the guest-physical holes only.

The address map learns of an access to a hole from ``UC_HOOK_MEM_READ_UNMAPPED`` /
``UC_HOOK_MEM_WRITE_UNMAPPED``.  Hooked over the whole address space, those hooks make
every guest store to RAM take unicorn's slow path for ever: unicorn 2.1.4 starts every
writable TLB entry "not dirty" (``cpu_physical_memory_is_clean`` is always true) and
``notdirty_write`` (``qemu/accel/tcg/cputlb.c``) makes the entry fast again only when
``uc_mem_hook_installed`` finds no memory hook of any kind bounded over the address — an
unmapped-access hook included.  Measured on a Linux boot: a third of the time went to that
path (``notdirty_write``, ``tb_invalidate_phys_page_fast``, ``flatview_translate``).

So the hooks are bound to the complement of what is mapped: :meth:`UnmappedHooks.cover`
re-hooks the holes between the mapped ranges, which catches exactly the accesses the
unbounded hook caught (an access to a mapped range is never "unmapped").  Hooks are only
deleted while unicorn is not running (the binding frees a deleted hook's trampoline, which
must not happen under its own call); a range unmapped during a slice gets a hook of its
own at once (:meth:`UnmappedHooks.add_hole`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from unicorn import UC_HOOK_MEM_READ_UNMAPPED, UC_HOOK_MEM_WRITE_UNMAPPED

from sel4vmm.backends.unicorn.engine import AArch64Engine

_UNMAPPED = UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED
#: One past the highest address unicorn's 64-bit hook bounds can name.
_ADDRESS_END = 1 << 64


def holes(mapped: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The half-open ranges of the 64-bit space outside the half-open ``mapped`` ranges."""
    result: list[tuple[int, int]] = []
    cursor = 0
    for start, end in sorted(mapped):
        if start > cursor:
            result.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < _ADDRESS_END:
        result.append((cursor, _ADDRESS_END))
    return result


class UnmappedHooks:
    """The unmapped-access hooks of one engine, covering the holes of its memory map."""

    def __init__(self, uc: AArch64Engine, callback: Callable[..., Any]) -> None:
        self._uc = uc
        self._callback = callback
        self._handles: list[int] = []
        #: The holes hooked now (half-open ranges), for tests and diagnostics.
        self.hooked: list[tuple[int, int]] = []
        self.cover([])

    def cover(self, mapped: Iterable[tuple[int, int]]) -> None:
        """Hook every address outside ``mapped``, and nothing else (unicorn not running)."""
        for handle in self._handles:
            self._uc.hook_del(handle)
        self._handles = []
        self.hooked = []
        for start, end in holes(mapped):
            self.add_hole(start, end)

    def add_hole(self, start: int, end: int) -> None:
        """Hook ``[start, end)`` too (safe inside a hook: nothing is deleted)."""
        self._handles.append(self._uc.hook_add(_UNMAPPED, self._callback, None, start, end - 1))
        self.hooked.append((start, end))
