"""Checker behaviour the tool's suite does not pin down: positions, targets, page sizes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sel4vmm.config.microkit import MicrokitTarget, check_text
from sel4vmm.config.microkit.check import CheckResult
from sel4vmm.config.microkit.model import PhysAddrKind
from sel4vmm.config.microkit.system_checks import any_overlap

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def check(body: str, target: MicrokitTarget | None = None) -> CheckResult:
    return check_text(HEADER + body, "t.system", target)


def only_error(result: CheckResult) -> str:
    assert len(result.errors) == 1, result.diagnostics
    return result.errors[0].tool_text


VMM = """
<system>
  <memory_region name="ram" size="{size}" {extra}/>
  <protection_domain name="vmm" priority="200">
    <program_image path="vmm.elf" />
    <map mr="ram" vaddr="{vmm_vaddr}" />
    <virtual_machine name="guest">
      <vcpu id="0" />
      <map mr="ram" vaddr="{guest_vaddr}" perms="rwx" />
    </virtual_machine>
  </protection_domain>
</system>
"""


def vmm(
    size: str = "0x400000",
    vmm_vaddr: str = "0x40000000",
    guest_vaddr: str = "0x40000000",
    extra: str = "",
) -> str:
    return VMM.format(size=size, vmm_vaddr=vmm_vaddr, guest_vaddr=guest_vaddr, extra=extra)


def page_size_of(result: CheckResult, name: str) -> int:
    assert result.system is not None
    region = result.system.memory_region(name)
    assert region is not None
    return region.page_size


def test_valid_vmm_system_has_no_findings() -> None:
    result = check(vmm())
    assert result.ok and result.diagnostics == []


def test_region_is_upgraded_to_2mib_frames_when_everything_aligns() -> None:
    assert page_size_of(check(vmm()), "ram") == 0x200000


def test_region_keeps_4k_frames_when_one_map_is_misaligned() -> None:
    assert page_size_of(check(vmm(guest_vaddr="0x40001000")), "ram") == 0x1000


def test_region_keeps_4k_frames_when_size_is_not_2mib_multiple() -> None:
    assert page_size_of(check(vmm(size="0x201000")), "ram") == 0x1000


def test_user_page_size_is_never_changed() -> None:
    assert page_size_of(check(vmm(extra='page_size="0x1000"')), "ram") == 0x1000


def test_misaligned_phys_addr_blocks_the_upgrade() -> None:
    assert page_size_of(check(vmm(extra='phys_addr="0x1000"')), "ram") == 0x1000


def test_unused_region_is_a_warning_not_an_error() -> None:
    result = check(
        """<system>
  <memory_region name="spare" size="0x1000" />
  <protection_domain name="a"><program_image path="a.elf" /></protection_domain>
</system>"""
    )
    assert result.ok
    (warning,) = result.warnings
    assert warning.message == "unused memory region 'spare'"
    assert warning.tool_text == "WARNING: unused memory region 'spare'"
    assert (warning.location.line, warning.location.column) == (3, 3)  # type: ignore[union-attr]


def test_locations_count_characters_not_bytes() -> None:
    result = check(
        """<system>
  <!-- übergröße -->   <memory_region name="ü" size="0x1001" />
</system>"""
    )
    assert only_error(result).endswith("t.system:3:24")


def test_virtual_machines_need_a_hypervisor_kernel() -> None:
    result = check(vmm(), MicrokitTarget(hypervisor=False))
    assert only_error(result).startswith(
        "Error: seL4 has not been built as a hypervisor, virtual machines are disabled on "
        "element 'protection_domain'"
    )


def test_address_limit_depends_on_the_kernel_configuration() -> None:
    # 16 TiB: above what a 40-bit IPA hypervisor build allows, fine in a 48-bit native build.
    high = """<system>
  <memory_region name="buf" size="0x1000" />
  <protection_domain name="a"><program_image path="a" />
    <map mr="buf" vaddr="0x100000000000" />
  </protection_domain>
</system>"""
    assert "must be less than 0xffffffc000" in only_error(check(high))
    assert check(high, MicrokitTarget(hypervisor=False)).ok


def test_vm_maps_may_reach_the_top_of_the_address_space() -> None:
    """sel4.rs ``vm_map_max_vaddr`` is ``vspace_user_top + 1``: a guest may map the last
    page (0xfffffff000 with test.rs's AArch64 ``vspace_user_top`` 0xffffffffff)."""
    top = vmm(size="0x1000", guest_vaddr="0xfffffff000")
    assert check(top).ok
    over = vmm(size="0x2000", guest_vaddr="0xfffffff000")
    assert "exceeds valid address space [0x0..0x10000000000)" in only_error(check(over))


def test_x86_vm_maps_may_reach_the_last_page_below_user_top() -> None:
    """x86-64's ``vspace_user_top`` is 0x7fffffffefff (test.rs): the last page a guest
    may map starts at 0x7fffffffe000."""
    target = MicrokitTarget(arch="x86_64")
    body = vmm(size="0x1000", guest_vaddr="0x7fffffffe000").replace(
        '<vcpu id="0" />', '<vcpu id="0" />'
    )
    assert check(body, target).ok
    over = vmm(size="0x2000", guest_vaddr="0x7fffffffe000")
    assert "exceeds valid address space [0x0..0x7ffffffff000)" in only_error(check(over, target))


def test_duplicate_vcpu_ids_are_rejected() -> None:
    body = vmm().replace('<vcpu id="0" />', '<vcpu id="0" /><vcpu id="0" />')
    assert only_error(check(body)).startswith(
        "Error: duplicate vcpu id 0 in virtual machine 'guest' @ t.system:"
    )


def test_second_virtual_machine_in_one_pd_is_rejected() -> None:
    body = vmm().replace(
        "</virtual_machine>",
        '</virtual_machine><virtual_machine name="g2"><vcpu id="1"/></virtual_machine>',
    )
    assert "virtual_machine must only be specified once" in only_error(check(body))


def test_region_paddr_setvar_makes_the_tool_allocate_a_paddr() -> None:
    body = vmm().replace(
        '<program_image path="vmm.elf" />',
        '<program_image path="vmm.elf" /><setvar symbol="ram_paddr" region_paddr="ram" />',
    )
    result = check(body)
    assert result.ok and result.system is not None
    region = result.system.memory_region("ram")
    assert region is not None and region.phys_addr_kind is PhysAddrKind.TOOL_ALLOCATED


def test_malformed_xml_is_one_error_with_a_position() -> None:
    result = check("<system>\n  <protection_domain name='a'>\n</system>")
    message = only_error(result)
    # roxmltree 0.19: UnexpectedCloseTag at the close tag's "<" (the header is line 1).
    assert message == (
        "Could not parse 't.system': expected 'protection_domain' tag, not 'system' at 4:1"
    )
    error = result.errors[0]
    assert error.location is not None and error.location.line == 4


def test_a_root_that_is_not_system_is_the_tools_panic() -> None:
    """sdf.rs finds the root's child named "system" and unwraps the result."""
    result = check("<sistem/>")
    assert only_error(result) == (
        "thread 'main' panicked: called `Option::unwrap()` on a `None` value"
    )
    (error,) = result.errors
    assert "would crash" in error.message
    assert error.location is not None and (error.location.line, error.location.column) == (2, 1)


def test_text_after_the_first_element_points_at_the_text() -> None:
    result = check(
        """<system>
  <protection_domain name="a"><program_image path="a.elf" /></protection_domain>
  stray
</system>"""
    )
    # The text node's own tag name is '' (sdf.rs check_no_text on the child node).
    assert only_error(result) == "Error: unexpected text found in element '' @ t.system:3:81"


def test_text_inside_elements_below_system_is_ignored_like_the_tool() -> None:
    result = check(
        """<system>
  <protection_domain name="a">note<program_image path="a.elf" /></protection_domain>
</system>"""
    )
    assert result.ok


def test_riscv_has_no_x86_irqs_and_no_vm_priority() -> None:
    riscv = MicrokitTarget(arch="riscv64")
    body = vmm().replace(
        '<virtual_machine name="guest">', '<virtual_machine name="guest" priority="3">'
    )
    assert "invalid attribute 'priority' on element 'virtual_machine'" in only_error(
        check(body, riscv)
    )


def test_smc_needs_aarch64() -> None:
    body = """<system><protection_domain name="a" smc="true"><program_image path="a" />
      </protection_domain></system>"""
    assert check(body).ok
    assert only_error(check(body, MicrokitTarget(arch="riscv64"))) == (
        "ARM SMC forwarding support is not available for this architecture"
    )
    assert "Using SMC support without ARM SMC forwarding" in only_error(
        check(body, MicrokitTarget(arm_smc=False))
    )


def test_channel_setvar_ids_are_patched_into_each_pd() -> None:
    body = """<system>
  <protection_domain name="a" priority="1"><program_image path="a" /></protection_domain>
  <protection_domain name="b" priority="2"><program_image path="b" /></protection_domain>
  <channel>
    <end pd="a" id="3" setvar_id="to_b" pp="true"/><end pd="b" id="4" setvar_id="to_a"/>
  </channel>
</system>"""
    result = check(body)
    assert result.ok and result.system is not None
    setvars = {pd.name: pd.setvars for pd in result.system.protection_domains}
    assert [(s.symbol, s.value) for s in setvars["a"]] == [("to_b", 3)]
    assert [(s.symbol, s.value) for s in setvars["b"]] == [("to_a", 4)]


def test_child_pds_are_flattened_parent_first() -> None:
    body = """<system>
  <protection_domain name="root" priority="9"><program_image path="r" />
    <protection_domain name="kid" id="1"><program_image path="k" />
      <protection_domain name="grandkid" id="0"><program_image path="g" /></protection_domain>
    </protection_domain>
  </protection_domain>
</system>"""
    result = check(body)
    assert result.system is not None
    assert [(pd.name, pd.parent) for pd in result.system.protection_domains] == [
        ("root", None),
        ("kid", "root"),
        ("grandkid", "kid"),
    ]


def test_domains_without_ids_get_the_lowest_free_ids_in_name_order() -> None:
    body = """<system>
  <domains>
    <domain name="b" /><domain name="a" id="0" /><domain name="c" />
    <domain_schedule><schedule_entry domain="a" duration="10 ticks" /></domain_schedule>
  </domains>
  <protection_domain name="p" domain="c"><program_image path="p" /></protection_domain>
</system>"""
    result = check(body)
    assert result.system is not None
    assert result.system.domains.ids == {"a": 0, "b": 1, "c": 2}
    assert result.system.protection_domains[0].domain == 2


@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 64)), max_size=12))
def test_any_overlap_agrees_with_pairwise_comparison(pairs: list[tuple[int, int]]) -> None:
    ranges = [(start, start + length) for start, length in pairs]
    # sdf.rs check_maps: overlap unless ``start >= other_end || end <= other_start`` -- a
    # zero-size range strictly inside another one overlaps it.
    pairwise = any(
        not (a_start >= b_end or a_end <= b_start)
        for i, (a_start, a_end) in enumerate(ranges)
        for b_start, b_end in ranges[i + 1 :]
    )
    assert any_overlap(ranges) == pairwise


def test_absurd_prefill_path_is_just_not_found() -> None:
    body = f"""<system><memory_region name="m" prefill_path="{"a" * 5000}" /></system>"""
    assert "unable to find prefill file" in only_error(check(body))
