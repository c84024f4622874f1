"""Microkit 1.4 and 2.x rules, where they differ (tool/microkit/src/sdf.rs at tag 1.4.1 and
at the commit in ../shared/realworld/SOURCES.txt).

Each property builds systems that differ only in one construct the releases disagree on
and checks both verdicts: 1.4's ``pp`` on the called PD against 2.x's on the calling
``<end>``; one vCPU against several (each on a ``cpu``); 2.x-only attributes and elements;
2.x's address-space bounds and PPC priority rule, which 1.4 does not have.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sel4vmm.config.microkit import MicrokitTarget, check_text
from sel4vmm.config.microkit.check import CheckResult
from sel4vmm.config.microkit.versions import MicrokitVersion, parse_version
from sel4vmm.errors import Sel4VmmError

V14 = MicrokitTarget(microkit=MicrokitVersion.V1_4, num_cores=4)
V2 = MicrokitTarget(microkit=MicrokitVersion.V2, num_cores=4)


def check(text: str, target: MicrokitTarget) -> CheckResult:
    return check_text(text, "v.system", target)


def two_pds(server_attrs: str, client_end: str, priorities: tuple[int, int]) -> str:
    client, server = priorities
    return f"""<system>
  <protection_domain name="client" priority="{client}"><program_image path="c.elf" />
  </protection_domain>
  <protection_domain name="server" priority="{server}" {server_attrs}>
    <program_image path="s.elf" />
  </protection_domain>
  <channel><end pd="client" id="1" {client_end} /><end pd="server" id="1" /></channel>
</system>"""


@given(st.integers(0, 253), st.integers(1, 254), st.sampled_from(["true", "false"]))
def test_pp_on_the_protection_domain_is_1_4_syntax(client: int, server: int, pp: str) -> None:
    text = two_pds(f'pp="{pp}"', "", (client, server))
    assert check(text, V14).ok
    (error,) = check(text, V2).errors
    assert error.tool_text.startswith(
        "Error: invalid attribute 'pp' on element 'protection_domain': v.system:4:3"
    )
    assert error.fix is not None and "<end>" in error.fix and "--microkit 1.4" in error.fix


@given(st.integers(0, 254), st.integers(0, 254))
def test_pp_on_the_end_is_2_x_syntax(client: int, server: int) -> None:
    text = two_pds("", 'pp="true"', (client, server))
    (error,) = check(text, V14).errors
    assert error.tool_text.startswith("Error: invalid attribute 'pp' on element 'end': v.system:")
    assert error.fix is not None and "<protection_domain>" in error.fix
    result = check(text, V2)
    if client < server:
        assert result.ok
    else:  # 2.x's rule; 1.4 has none (and its pp marks the callee, so it cannot say this)
        (error,) = result.errors
        assert error.tool_text.startswith("Error: PPCs must be to protection domains of strictly")


@given(st.integers(0, 254), st.integers(0, 254))
def test_1_4_checks_no_ppc_priorities(client: int, server: int) -> None:
    assert check(two_pds('pp="true"', "", (client, server)), V14).ok


def vm(vcpus: str, map_vaddr: str = "0x40000000") -> str:
    return f"""<system>
  <memory_region name="ram" size="0x1000" />
  <protection_domain name="vmm" priority="200"><program_image path="vmm.elf" />
    <virtual_machine name="guest">{vcpus}<map mr="ram" vaddr="{map_vaddr}" /></virtual_machine>
  </protection_domain>
</system>"""


@given(st.integers(2, 8))
def test_several_vcpus_need_2_x(count: int) -> None:
    text = vm("".join(f'<vcpu id="{i}" />' for i in range(count)))
    assert check(text, V2).ok
    (error,) = check(text, V14).errors
    assert error.tool_text.startswith(
        "Error: vcpu must only be specified once on element 'virtual_machine': v.system:4:5"
    )


@given(st.integers(0, 3))
def test_a_vcpu_core_needs_2_x(cpu: int) -> None:
    text = vm(f'<vcpu id="0" cpu="{cpu}" />')
    assert check(text, V2).ok
    (error,) = check(text, V14).errors
    assert error.tool_text.startswith("Error: invalid attribute 'cpu' on element 'vcpu'")


@given(st.integers(0x100_0000_0000, (1 << 63)).map(lambda a: a & ~0xFFF))
def test_2_x_bounds_guest_addresses_and_1_4_does_not(address: int) -> None:
    text = vm('<vcpu id="0" />', hex(address))
    assert check(text, V14).ok
    (error,) = check(text, V2).errors
    assert "must be less than 0x10000000000 on element 'map'" in error.tool_text


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("smc", "true"), ("cpu", "1"), ("fpu", "false"), ("domain", "d")],
)
def test_2_x_protection_domain_attributes_are_not_1_4(attribute: str, value: str) -> None:
    text = two_pds(f'{attribute}="{value}"', "", (1, 2))
    (error,) = check(text, V14).errors
    assert error.tool_text.startswith(
        f"Error: invalid attribute '{attribute}' on element 'protection_domain'"
    )


@pytest.mark.parametrize(
    "element",
    [
        '<domains><domain name="d" /></domains>',
        '<io_address_space name="a" peripheral_id="0:3.0" domain_id="1" />',
    ],
)
def test_2_x_top_level_elements_are_invalid_in_1_4(element: str) -> None:
    text = two_pds("", "", (1, 2)).replace("<system>", f"<system>{element}")
    (error,) = check(text, V14).errors
    tag = element[1:].split(" ", 1)[0].split(">", 1)[0]
    assert error.tool_text == f"Invalid XML element '{tag}': v.system:1:9"


def test_x86_64_needs_2_x() -> None:
    text = two_pds("", "", (1, 2))
    target = MicrokitTarget(arch="x86_64", microkit=MicrokitVersion.V1_4)
    (error,) = check(text, target).errors
    assert error.message == "Microkit 1.4 does not support x86-64"


def test_1_4_reads_irq_before_id() -> None:
    text = two_pds("", "", (1, 2)).replace(
        '<program_image path="c.elf" />', '<program_image path="c.elf" /><irq />'
    )
    assert (
        check(text, V14)
        .errors[0]
        .tool_text.startswith("Error: Missing required attribute 'irq' on element 'irq'")
    )
    assert (
        check(text, V2)
        .errors[0]
        .tool_text.startswith("Error: Missing required attribute 'id' on element 'irq'")
    )


@pytest.mark.parametrize("text", ["1.4", "1.4.1", "2.0", "2.3.0", " 2 "])
def test_versions_users_name(text: str) -> None:
    assert parse_version(text) in MicrokitVersion


def test_an_unknown_version_is_one_error() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        parse_version("1.3")
    assert raised.value.fix is not None and "--microkit 1.4" in raised.value.fix


def test_1_4_requires_a_region_size() -> None:
    text = two_pds("", "", (1, 2)).replace("<system>", '<system><memory_region name="m" />')
    assert (
        check(text, V14)
        .errors[0]
        .tool_text.startswith(
            "Error: Missing required attribute 'size' on element 'memory_region': v.system:1:9"
        )
    )
    assert (
        check(text, V2)
        .errors[0]
        .tool_text.startswith("Error: size must be specified if memory region is not prefilled")
    )


def test_1_4_checks_the_maps_of_protection_domains_only() -> None:
    """1.4.1 sdf.rs: "Ensure that all maps are correct" loops over ``pd.maps`` alone."""
    text = vm('<vcpu id="0" />').replace('mr="ram"', 'mr="nothing"')
    assert check(text, V14).ok
    assert (
        check(text, V2)
        .errors[0]
        .tool_text.startswith("Error: invalid memory region name 'nothing' on 'map' @ v.system:")
    )


def test_the_monitor_name_is_reserved_in_2_x_only() -> None:
    text = (
        two_pds("", "", (1, 2))
        .replace('name="server"', 'name="monitor"')
        .replace('pd="server"', 'pd="monitor"')
    )
    assert check(text, V14).ok
    assert check(text, V2).errors[0].message.startswith("the PD name 'monitor' is reserved")


def test_1_4_stacks_default_to_one_page() -> None:
    result = check(two_pds("", "", (1, 2)), V14)
    assert result.system is not None
    assert {pd.stack_size for pd in result.system.protection_domains} == {0x1000}
    result = check(two_pds("", "", (1, 2)), V2)
    assert result.system is not None
    assert {pd.stack_size for pd in result.system.protection_domains} == {0x2000}
