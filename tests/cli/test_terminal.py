"""``run``'s terminal handling: the escape key and signals as a flag."""

from __future__ import annotations

import os
import signal

from sel4vmm.cli.terminal import SignalFlag, TerminalSession


def test_ctrl_a_x_asks_to_stop_and_everything_else_goes_to_the_guest() -> None:
    terminal = TerminalSession()
    assert terminal._filter(b"ls\x03\r") == b"ls\x03\r"  # Ctrl-C is the guest's
    assert not terminal.escaped
    assert terminal._filter(b"a\x01\x01b") == b"a\x01b"  # Ctrl-A Ctrl-A types a Ctrl-A
    assert terminal._filter(b"\x01") == b""  # the prefix may end a read...
    assert terminal._filter(b"x") == b""  # ... and the X come with the next one
    assert terminal.escaped


def test_sigterm_and_sigint_set_the_flag_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flag = SignalFlag()
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag.received == signal.SIGTERM
    os.kill(os.getpid(), signal.SIGINT)
    assert flag.received == signal.SIGINT
    flag.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_a_n_moves_the_focus_and_keys_stay_with_the_vm_they_were_typed_to() -> None:
    told: list[str] = []
    terminal = TerminalSession(["vm_a", "vm_b", "vm_c"], told.append)
    terminal.feed(b"ab\x01nc")
    terminal.feed(b"\x01")
    terminal.feed(b"Nd\x01nx")
    assert told == ["vm_b", "vm_c", "vm_a"]
    assert terminal.take_routed() == [(0, b"ab"), (1, b"c"), (2, b"d"), (0, b"x")]
    assert terminal.wait(0) is False  # everything was taken
    assert not terminal.escaped


def test_with_one_console_ctrl_a_n_types_n_as_before() -> None:
    terminal = TerminalSession()
    terminal.feed(b"a\x01nb")
    assert terminal.take() == b"anb"  # the prefix is dropped, the N reaches the guest
    assert terminal.wait(0) is False
