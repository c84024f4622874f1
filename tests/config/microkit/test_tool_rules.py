"""Rules of tool/microkit/src/sdf.rs (microkit commit cfd521630a52f718b8140d504c695edbaf27a915)
that mutants of real files hit and the tool's own suite does not: each case is written from
the rule in the tool's source, named beside it."""

from __future__ import annotations

import pytest

from sel4vmm.config.microkit import MicrokitTarget, check_text
from sel4vmm.config.microkit.check import CheckResult

X86 = MicrokitTarget(arch="x86_64")
UNWRAP_INVALID_DIGIT = (
    "thread 'main' panicked: called `Result::unwrap()` on an `Err` value: "
    "ParseIntError { kind: InvalidDigit }"
)


def check(body: str, target: MicrokitTarget | None = None) -> CheckResult:
    return check_text(f"<system>{body}</system>", "r.system", target)


def pd(inner: str = "", attrs: str = "", name: str = "p") -> str:
    return (
        f'<protection_domain name="{name}" {attrs}><program_image path="p.elf"/>{inner}'
        "</protection_domain>"
    )


@pytest.mark.parametrize(
    ("body", "target"),
    [
        # ``.parse::<i64>().unwrap()`` on <irq id>, <ioport id>; ``::<u64>`` on irq=.
        (pd('<irq irq="33" id="0x1"/>'), None),
        (pd('<irq irq="0x21" id="1"/>'), None),
        (pd('<irq irq="3_3" id="1"/>'), None),
        (pd('<ioport id="0x1" addr="0x3f8" size="8"/>'), X86),
        (pd('<ioport id="1" addr="0x3f8" size="0x8"/>'), X86),
        (pd('<irq pin="0x1" vector="1" id="1"/>'), X86),
        (pd('<irq pin="1" vector="1" id="1" ioapic="0x0"/>'), X86),
        (pd('<irq pcidev="0:1.0" handle="0x1" vector="1" id="1"/>'), X86),
        # <end id>: ``.parse::<i64>().unwrap()``.
        (
            pd(name="a")
            + pd(name="b")
            + '<channel><end pd="a" id="0x1"/><end pd="b" id="1"/></channel>',
            None,
        ),
        # <vcpu id>: ``.parse::<u64>().unwrap()``.
        (
            pd('<virtual_machine name="vm"><vcpu id="0x0"/></virtual_machine>'),
            None,
        ),
    ],
)
def test_decimal_only_fields_are_the_tools_panic(body: str, target: MicrokitTarget | None) -> None:
    result = check(body, target)
    (error,) = result.errors
    assert error.tool_text == UNWRAP_INVALID_DIGIT
    assert error.message.startswith("the Microkit tool would crash on ")
    assert "plain decimal number" in error.message
    assert error.location is not None and error.location.path == "r.system"
    assert error.fix is not None and "decimal" in error.fix


def test_the_same_fields_in_decimal_are_accepted() -> None:
    assert check(pd('<irq irq="33" id="1" trigger="edge"/>')).ok


def test_a_negative_irq_number_is_the_tools_panic() -> None:
    """irq= is parsed as u64: Rust's unsigned parse rejects the sign."""
    (error,) = check(pd('<irq irq="-1" id="1"/>')).errors
    assert error.tool_text == UNWRAP_INVALID_DIGIT


def test_an_empty_trigger_is_not_level() -> None:
    """``if let Some(trigger_str)``: "" is neither "level" nor "edge"."""
    (error,) = check(pd('<irq irq="33" id="1" trigger=""/>')).errors
    assert error.tool_text.startswith(
        "Error: trigger must be either 'level' or 'edge' on element 'irq': r.system:1:"
    )


def test_a_pd_core_beyond_a_u8_is_the_tools_panic() -> None:
    """``cpu`` goes through ``.try_into().expect("cpu core must be between 0 and 255")``."""
    (error,) = check(pd(attrs='cpu="256"')).errors
    assert error.tool_text == (
        "thread 'main' panicked: cpu core must be between 0 and 255: TryFromIntError(())"
    )


@pytest.mark.parametrize(("given", "kept"), [(256, 0), (300, 44), (511, 255)])
def test_vm_priority_is_truncated_as_the_tool_does_with_a_warning(given: int, kept: int) -> None:
    """VirtualMachine::from_xml: no bound, then ``priority as u8``."""
    vm = f'<virtual_machine name="vm" priority="{given}"><vcpu id="0"/></virtual_machine>'
    result = check(pd(vm, attrs='priority="254"'))
    assert result.ok
    (warning,) = result.warnings
    assert warning.tool_text == (
        f"WARNING: priority {given} of virtual machine 'vm' is accepted by the Microkit tool, "
        f"which keeps only its low 8 bits: the guest runs at priority {kept}"
    )
    assert result.system is not None
    vm_model = result.system.protection_domains[0].virtual_machine
    assert vm_model is not None and vm_model.priority == kept


def test_a_zero_size_region_inside_another_overlaps_it() -> None:
    """The physical-overlap test is ``!(start >= other_end || end <= other_start)``."""
    body = (
        '<memory_region name="big" size="0x2000" phys_addr="0x9000000"/>'
        '<memory_region name="empty" size="0x0" phys_addr="0x9001000"/>' + pd()
    )
    (error,) = check(body).errors
    assert error.tool_text.startswith(
        "Error: memory region 'empty' physical address range [0x9001000..0x9001000) overlaps "
        "with another memory region 'big' [0x9000000..0x9002000) @ r.system:1:"
    )


def test_a_zero_size_region_at_an_edge_does_not() -> None:
    body = (
        '<memory_region name="big" size="0x2000" phys_addr="0x9000000"/>'
        '<memory_region name="empty" size="0x0" phys_addr="0x9002000"/>' + pd()
    )
    assert check(body).ok


def test_an_integer_error_names_no_location_but_we_keep_one() -> None:
    """sdf_parse_number's message has no ``file:line:col``; our finding still points there."""
    result = check('<memory_region name="m" size="0x1000" phys_addr="0xg"/>' + pd())
    (error,) = result.errors
    assert error.tool_text == (
        "Error: failed to parse integer '0xg' on element 'memory_region': "
        "invalid digit found in string"
    )
    assert error.location is not None and (error.location.line, error.location.column) == (1, 9)
