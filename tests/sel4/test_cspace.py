"""CSpace slot accounting: allocation, reuse, limits, rollback."""

from __future__ import annotations

import pytest

from sel4vmm.errors import ResourceExhausted
from sel4vmm.sel4.cspace import INITIAL_SLOTS, CSpace
from sel4vmm.sel4.undo import UndoLog


def test_slots_are_reused_and_peak_is_kept() -> None:
    cspace = CSpace(UndoLog())
    a = cspace.allocate(10, "a", "frame")
    b = cspace.allocate(5, "b", "frame")
    assert (a, b) == (INITIAL_SLOTS, INITIAL_SLOTS + 10)
    cspace.free(a)
    c = cspace.allocate(4, "c", "frame")
    assert c == a
    assert cspace.used == INITIAL_SLOTS + 9
    assert cspace.peak == INITIAL_SLOTS + 15
    assert cspace.lookup(b + 2) == ("b", 2)
    assert cspace.lookup(a + 5) is None


def test_cnode_bits_holds_the_peak() -> None:
    cspace = CSpace(UndoLog())
    cspace.allocate(1000, "x", "frame")
    assert cspace.peak == 1016
    assert cspace.cnode_bits() == 10
    cspace.note_transient(9, "copy")
    assert cspace.cnode_bits() == 11


def test_full_cnode_says_what_size_would_do() -> None:
    cspace = CSpace(UndoLog(), size_bits=5)
    cspace.allocate(10, "x", "frame")
    with pytest.raises(ResourceExhausted, match="at least 6 bits"):
        cspace.allocate(10, "y", "frame")
    assert cspace.used == INITIAL_SLOTS + 10


def test_rollback_restores_slots() -> None:
    undo = UndoLog()
    cspace = CSpace(undo)
    keep = cspace.allocate(3, "keep", "frame")
    with pytest.raises(RuntimeError), undo.transaction():
        cspace.allocate(7, "gone", "frame")
        cspace.free(keep)
        raise RuntimeError("fail")
    assert cspace.used == INITIAL_SLOTS + 3
    assert cspace.lookup(keep) == ("keep", 0)
    assert cspace.allocate(1, "next", "frame") == keep + 3
