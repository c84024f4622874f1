"""One command-line vocabulary (issue 12): an option means the same wherever it appears."""

from __future__ import annotations

from typing import Any

import pytest

from sel4vmm.cli import COMMANDS, load_command
from sel4vmm.cli.options import parse_defines, parse_size
from sel4vmm.errors import Sel4VmmError


def option_signature(param: Any) -> tuple[object, ...]:
    """What must agree between two options of the same name."""
    descriptor = param.type_descriptor
    return (
        tuple(sorted(param.opts)),
        tuple(sorted(param.secondary_opts)),
        str(descriptor.annotation),
        descriptor.parameter_info.parser,
        param.min,
        param.max,
        param.multiple,
        param.is_flag,
        param.metavar,
        param.help,
    )


def options_by_name(commands: list[str]) -> dict[str, dict[str, tuple[object, ...]]]:
    """``{"--board": {"check": signature, "plan": signature, ...}, ...}``."""
    table: dict[str, dict[str, tuple[object, ...]]] = {}
    for name in commands:
        for param in load_command(name).params:
            if param.param_type_name != "option":
                continue
            for opt in param.opts:
                table.setdefault(opt, {})[name] = option_signature(param)
    return table


def disagreements(commands: list[str]) -> dict[str, dict[str, tuple[object, ...]]]:
    return {
        opt: by_command
        for opt, by_command in options_by_name(commands).items()
        if len(set(by_command.values())) > 1
    }


def test_every_option_with_the_same_name_has_the_same_type_metavar_and_help() -> None:
    commands = list(COMMANDS)
    table = options_by_name(commands)
    # The vocabulary is really shared: these appear in more than one command.
    for opt in ("--board", "--define", "-D", "--include", "-I", "--arch", "--json", "--vm"):
        assert len(table[opt]) >= 2, (opt, table[opt])
    assert disagreements(commands) == {}


def test_run_uses_the_shared_definitions() -> None:
    assert disagreements(list(COMMANDS)) == {}


def test_renamed_options_exist_only_under_their_shared_names() -> None:
    table = options_by_name(list(COMMANDS))
    assert "kvm-boot" in table["--ram-size"] and "kvm-boot" in table["--bootargs"]
    # kvm-boot's old --ram (MiB) is gone; untyped-mmios' --ram BASE:SIZE (issue 16) names a
    # guest RAM range, not a size, and is the only --ram.
    assert set(table.get("--ram", {})) <= {"untyped-mmios"} and "--cmdline" not in table
    assert "plan" in table["--define"] and "check" in table["--board"]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256M", 256 << 20),
        ("2G", 2 << 30),
        ("4096K", 4096 << 10),
        ("0x10000000", 0x10000000),
        ("268435456", 268435456),
        ("512MiB", 512 << 20),
        (" 1_024 ", 1024),
    ],
)
def test_sizes_are_read_the_same_everywhere(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "2X", "0x", "-1M", "0", ""])
def test_unreadable_sizes_name_the_spellings_that_work(text: str) -> None:
    with pytest.raises(ValueError, match=r"256M|above 0"):
        parse_size(text)


def test_defines_read_as_a_c_compiler_does() -> None:
    assert parse_defines(["PLAT=qemu-arm-virt", "DEBUG"]) == {"PLAT": "qemu-arm-virt", "DEBUG": "1"}
    with pytest.raises(Sel4VmmError, match="bad --define '=x'"):
        parse_defines(["=x"])
