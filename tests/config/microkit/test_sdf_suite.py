# ruff: noqa: E501  -- the expectations are test.rs strings, kept whole to compare by eye
"""The Microkit tool's own SDF test suite, expectation for expectation, verbatim.

``EXPECTATIONS`` is the table of ``tool/microkit/tests/test.rs`` in seL4/microkit at commit
cfd521630a52f718b8140d504c695edbaf27a915 (the commit ``../shared/realworld/SOURCES.txt``
names; its inputs are ``../shared/realworld/microkit-sdf-tests/``): all 147 ``#[test]``
functions, each with its kernel configuration, its file and its expected text exactly as
the Rust source spells it.  The harness is reproduced too: the file is parsed under its
bare name (so locations read ``file.system:line:col``), prefills are looked up in a
``prefills`` directory holding ``empty.bin`` (empty) and ``small.bin`` (``test``),
``check_missing`` formats its message as test.rs does, and an error passes when it
``starts_with`` the expected text.  The kernel configurations mirror test.rs's
``DEFAULT_AARCH64_KERNEL_CONFIG``, ``SMP_AARCH64_KERNEL_CONFIG`` and
``DEFAULT_X86_64_KERNEL_CONFIG`` field for field (the fields the SDF parser reads), and the
five inline ``sel4::Config { .., ..DEFAULT_* }`` overrides are ``replace(...)`` calls.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from sel4vmm.config.microkit import MicrokitTarget, check_text
from tests.helpers import REALWORLD

SUITE = REALWORLD / "microkit-sdf-tests"
PREFILLS = Path(__file__).resolve().parent / "prefills"

#: test.rs: arch Aarch64, hypervisor, iommu, 1 core, 16 domains, 100 schedules, fpu,
#: arm_pa_size_bits Some(40), arm_smc None, vspace_user_top 0xffffffffff.
DEFAULT_AARCH64_KERNEL_CONFIG = MicrokitTarget(
    arch="aarch64",
    hypervisor=True,
    iommu=True,
    num_cores=1,
    num_domains=16,
    num_domain_schedules=100,
    fpu=True,
    arm_pa_size_bits=40,
    arm_smc=None,
    search_paths=(PREFILLS,),
)
SMP_AARCH64_KERNEL_CONFIG = replace(DEFAULT_AARCH64_KERNEL_CONFIG, num_cores=4)
#: test.rs: arch X86_64, hypervisor, iommu, 1 core, arm_* None, vspace_user_top
#: 0x7fffffffefff.
DEFAULT_X86_64_KERNEL_CONFIG = MicrokitTarget(
    arch="x86_64",
    hypervisor=True,
    iommu=True,
    num_cores=1,
    num_domains=16,
    num_domain_schedules=100,
    fpu=True,
    arm_pa_size_bits=None,
    arm_smc=None,
    search_paths=(PREFILLS,),
)

#: test.rs's ``check_success``.
SUCCESS = None


def check_missing(attr: str, element: str) -> str:
    """test.rs's ``check_missing``: the expected text it builds."""
    return f"Error: Missing required attribute '{attr}' on element '{element}'"


#: (test.rs ``module::function``, kernel config, file, expected prefix or SUCCESS)
EXPECTATIONS: list[tuple[str, MicrokitTarget, str, str | None]] = [
    (
        "memory_region::test_malformed_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_malformed_size.system",
        "Error: failed to parse integer '0x200_000sd' on element 'memory_region': invalid digit found in string",
    ),
    (
        "memory_region::test_unsupported_page_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_unsupported_page_size.system",
        "Error: page size 0x200001 not supported on element 'memory_region'",
    ),
    (
        "memory_region::test_size_not_multiple_of_page_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_size_not_multiple_of_page_size.system",
        "Error: size is not a multiple of the page size on element 'memory_region'",
    ),
    (
        "memory_region::test_addr_not_aligned_to_page_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_addr_not_aligned_to_page_size.system",
        "Error: phys_addr is not aligned to the page size on element 'memory_region'",
    ),
    (
        "memory_region::test_missing_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_missing_size.system",
        "Error: size must be specified if memory region is not prefilled on element 'memory_region'",
    ),
    (
        "memory_region::test_missing_name",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_missing_name.system",
        check_missing("name", "memory_region"),
    ),
    (
        "memory_region::test_invalid_attrs",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_invalid_attrs.system",
        "Error: invalid attribute 'page_count' on element 'memory_region': ",
    ),
    (
        "memory_region::test_overlapping_phys_addr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_overlapping_phys_addr.system",
        "Error: memory region 'mr2' physical address range [0x9001000..0x9002000) overlaps with another memory region 'mr1' [0x9000000..0x9002000) @ ",
    ),
    (
        "memory_region::test_mr_prefill_empty_file",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_empty_file.system",
        "Error: prefill file 'empty.bin' is empty on element 'memory_region'",
    ),
    (
        "memory_region::test_mr_prefill_does_not_exists",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_does_not_exists.system",
        "Error: unable to find prefill file: 'abcxyz.bin' on element 'memory_region'",
    ),
    (
        "memory_region::test_mr_prefill_size_without_prefill",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_size_without_prefill.system",
        "Error: 'setvar_prefill_size' used for MR without a `prefill_path` @",
    ),
    (
        "memory_region::test_mr_prefill_no_size_valid",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_no_size_valid.system",
        SUCCESS,
    ),
    (
        "memory_region::test_mr_prefill_page_sized_valid",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_page_sized_valid.system",
        SUCCESS,
    ),
    (
        "memory_region::test_mr_prefill_sized_valid",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "mr_prefill_sized_valid.system",
        SUCCESS,
    ),
    (
        "memory_region::test_mr_prefill_bootinfo_valid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "mr_prefill_bootinfo_valid.system",
        SUCCESS,
    ),
    (
        "memory_region::test_mr_prefill_bootinfo_type_invalid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "mr_prefill_bootinfo_type_invalid.system",
        "Error: BootInfoMap type: 'x86_invalid_bootinfo' is not supported on element 'memory_region'",
    ),
    (
        "memory_region::test_mr_prefill_path_bootinfo_both_specified",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "mr_prefill_path_bootinfo_both_specified.system",
        "Error: prefill_path and prefill_bootinfo cannot be both specified on element 'memory_region'",
    ),
    (
        "protection_domain::test_missing_name",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_name.system",
        check_missing("name", "protection_domain"),
    ),
    (
        "protection_domain::test_missing_program_image",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_program_image.system",
        "Error: missing 'program_image' element on protection_domain: ",
    ),
    (
        "protection_domain::test_missing_path",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_path.system",
        check_missing("path", "program_image"),
    ),
    (
        "protection_domain::test_missing_mr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_mr.system",
        check_missing("mr", "map"),
    ),
    (
        "protection_domain::test_missing_vaddr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_vaddr.system",
        check_missing("vaddr", "map"),
    ),
    (
        "protection_domain::test_missing_irq_arm",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_irq.system",
        check_missing("irq", "irq"),
    ),
    (
        "protection_domain::test_missing_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_id.system",
        check_missing("id", "irq"),
    ),
    (
        "protection_domain::test_missing_symbol",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_symbol.system",
        check_missing("symbol", "setvar"),
    ),
    (
        "protection_domain::test_missing_region_paddr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_missing_region_paddr.system",
        check_missing("region_paddr", "setvar"),
    ),
    (
        "protection_domain::test_duplicate_setvar",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_duplicate_setvar.system",
        "Error: setvar on symbol 'test' already exists on element 'setvar': ",
    ),
    (
        "protection_domain::test_setvar_paddr_with_paddr",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "pd_setvar_with_paddr.system",
        SUCCESS,
    ),
    (
        "protection_domain::test_setvar_paddr_no_paddr",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "pd_setvar_no_paddr.system",
        "Error: setvar with 'region_paddr' for MR without a specified paddr is unsupported on x86-64 @",
    ),
    (
        "protection_domain::test_duplicate_program_image",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_duplicate_program_image.system",
        "Error: program_image must only be specified once on element 'protection_domain': ",
    ),
    (
        "protection_domain::test_invalid_attrs",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_invalid_attrs.system",
        "Error: invalid attribute 'foo' on element 'protection_domain': ",
    ),
    (
        "protection_domain::test_program_image_invalid_attrs",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_program_image_invalid_attrs.system",
        "Error: invalid attribute 'foo' on element 'program_image': ",
    ),
    (
        "protection_domain::test_budget_gt_period",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_budget_gt_period.system",
        "Error: budget (1000) must be less than, or equal to, period (100) on element 'protection_domain':",
    ),
    (
        "protection_domain::test_irq_greater_than_max",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "irq_id_greater_than_max.system",
        "Error: id must be < 62 on element 'irq'",
    ),
    (
        "protection_domain::test_irq_less_than_0",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "irq_id_less_than_0.system",
        "Error: id must be >= 0 on element 'irq'",
    ),
    (
        "protection_domain::test_write_only_mr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_write_only_mr.system",
        "Error: perms must not be 'w', write-only mappings are not allowed on element 'map':",
    ),
    (
        "protection_domain::test_irq_invalid_trigger",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "irq_invalid_trigger.system",
        "Error: trigger must be either 'level' or 'edge' on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_on_arm",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "irq_ioapic_on_arm.system",
        "Error: x86 I/O APIC IRQ isn't supported on ARM and RISC-V on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_on_arm",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "irq_msi_on_arm.system",
        "Error: x86 MSI IRQ isn't supported on ARM and RISC-V on element 'irq'",
    ),
    (
        "protection_domain::test_irq_arm_on_x86",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_arm_on_x86.system",
        "Error: ARM and RISC-V IRQs are not supported on x86 on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_less_than_0.system",
        "Error: ioapic must be >= 0 on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_pin_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_pin_less_than_0.system",
        "Error: pin must be >= 0 on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_invalid_trigger",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_invalid_trigger.system",
        "Error: trigger must be either 'level' or 'edge' on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_invalid_polarity",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_invalid_polarity.system",
        "Error: polarity must be either 'low' or 'high' on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_vector_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_vector_less_than_0.system",
        "Error: vector must be within [0..107] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_ioapic_vector_greater_than_107",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_ioapic_vector_greater_than_107.system",
        "Error: vector must be within [0..107] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_bus_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_bus_less_than_0.system",
        "Error: PCI bus must be within [0..255] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_dev_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_dev_less_than_0.system",
        "Error: PCI device must be within [0..31] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_func_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_func_less_than_0.system",
        "Error: PCI function must be within [0..7] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_bus_greater_than_255",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_bus_greater_than_255.system",
        "Error: PCI bus must be within [0..255] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_dev_greater_than_31",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_dev_greater_than_31.system",
        "Error: PCI device must be within [0..31] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_pci_func_greater_than_7",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_func_greater_than_7.system",
        "Error: PCI function must be within [0..7] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_handle_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_handle_less_than_0.system",
        "Error: handle must be >= 0 on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_vector_less_than_0",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_vector_less_than_0.system",
        "Error: vector must be within [0..107] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_vector_greater_than_107",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_vector_greater_than_107.system",
        "Error: vector must be within [0..107] on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_msi_pci_invalid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_invalid.system",
        "Error: expected PCI address in bus:device.function form on element 'irq'",
    ),
    (
        "protection_domain::test_irq_msi_msi_pci_valid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "irq_msi_pci_valid.system",
        SUCCESS,
    ),
    (
        "protection_domain::test_parent_has_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_parent_has_id.system",
        "Error: invalid attribute 'id' on element 'protection_domain': ",
    ),
    (
        "protection_domain::test_child_missing_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_child_missing_id.system",
        check_missing("id", "protection_domain"),
    ),
    (
        "protection_domain::test_duplicate_child_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_duplicate_child_id.system",
        "Error: duplicate id: 0 in protection domain: 'parent' @",
    ),
    (
        "protection_domain::test_duplicate_child_id_vcpu",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_duplicate_child_id_vcpu.system",
        "Error: duplicate id: 0 clashes with virtual machine vcpu id in protection domain: 'parent' @",
    ),
    (
        "protection_domain::test_small_stack_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_small_stack_size.system",
        "Error: stack size must be between",
    ),
    (
        "protection_domain::test_unaligned_stack_size",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_unaligned_stack_size.system",
        "Error: stack size must be aligned to the smallest page size",
    ),
    (
        "protection_domain::test_overlapping_maps",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_overlapping_maps.system",
        "Error: map for 'mr2' has virtual address range [0x1000000..0x1001000) which overlaps with map for 'mr1' [0x1000000..0x1001000) in protection domain 'hello' @",
    ),
    (
        "protection_domain::test_overlapping_mixed_page_size_maps",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_overlapping_mixed_page_sizes.system",
        "Error: map for 'small_region' has virtual address range [0x201000..0x202000) which overlaps with map for 'large_region' [0x200000..0x400000) in protection domain 'test' @",
    ),
    (
        "protection_domain::test_overlapping_x86_io_ports_1",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "pd_overlapping_x86_io_ports_1.system",
        "Error: I/O port id: 1, half-open range: [0x3ff, 0x407) in protection domain: 'test1' @ pd_overlapping_x86_io_ports_1.system:8:5 overlaps with I/O port id: 0, half-open range: [0x3f8, 0x400) in protection domain: 'test1' @ pd_overlapping_x86_io_ports_1.system:8:5",
    ),
    (
        "protection_domain::test_overlapping_x86_io_ports_2",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "pd_overlapping_x86_io_ports_2.system",
        "Error: I/O port id: 0, half-open range: [0x3ff, 0x407) in protection domain: 'test2' @ pd_overlapping_x86_io_ports_2.system:13:5 overlaps with I/O port id: 0, half-open range: [0x3f8, 0x400) in protection domain: 'test1' @ pd_overlapping_x86_io_ports_2.system:8:5",
    ),
    (
        "protection_domain::test_invalid_x86_io_port_size",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "pd_invalid_x86_io_port_size.system",
        "Error: size must be > 0 on element 'ioport':",
    ),
    (
        "protection_domain::test_invalid_cpu",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_invalid_cpu.system",
        "Error: cpu core must be less than 1, got 10 on element 'protection_domain':",
    ),
    (
        "iommu::test_iommu_missing_from_config",
        replace(DEFAULT_X86_64_KERNEL_CONFIG, iommu=False),
        "iommu_missing_from_config.system",
        "Error: io address space requires seL4 to be built with IOMMU support: ",
    ),
    (
        "iommu::test_iommu_missing_from_aarch64_config",
        replace(DEFAULT_AARCH64_KERNEL_CONFIG, iommu=False),
        "iommu_missing_from_config.system",
        "Error: io address space requires seL4 to be built with IOMMU support: ",
    ),
    (
        "iommu::test_iommu_missing_from_riscv64_config",
        replace(DEFAULT_AARCH64_KERNEL_CONFIG, arch="riscv64", iommu=False),
        "iommu_missing_from_config.system",
        "Error: io address space requires seL4 to be built with IOMMU support: ",
    ),
    (
        "iommu::test_iommu_unsupported_on_aarch64",
        replace(DEFAULT_AARCH64_KERNEL_CONFIG, iommu=True),
        "iommu_missing_from_config.system",
        "Error: failed to parse device peripheral_id '0:3.0': IOMMU device identifiers are not supported on AArch64 on element 'io_address_space':",
    ),
    (
        "iommu::test_iommu_unsupported_on_riscv64",
        replace(DEFAULT_AARCH64_KERNEL_CONFIG, arch="riscv64", iommu=True),
        "iommu_missing_from_config.system",
        "Error: failed to parse device peripheral_id '0:3.0': IOMMU device identifiers are not supported on RISC-V (64-bit) on element 'io_address_space':",
    ),
    (
        "iommu::test_out_of_bound",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_out_of_bound.system",
        "Error: iovaddr (0x8000000000) must be less than 0x8000000000 on element 'iomap': iommu_out_of_bound.system:10:9",
    ),
    (
        "iommu::test_range_out_of_bound",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_range_out_of_bound.system",
        "Error: iomap for 'region' has io address range [0x7fff800000..0x8000200000) which exceeds valid address space [0x0..0x8000000000) @",
    ),
    (
        "iommu::test_address_overflow",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_address_overflow.system",
        "Error: iomap for 'region' has address range that overflows @",
    ),
    (
        "iommu::test_valid_perms_and_bound",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_valid_perms_and_bound.system",
        SUCCESS,
    ),
    (
        "iommu::test_perms_read_write",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_perms_read_write.system",
        SUCCESS,
    ),
    (
        "iommu::test_perms_write_only",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_perms_write_only.system",
        SUCCESS,
    ),
    (
        "iommu::test_perms_execute_invalid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_perms_execute_invalid.system",
        "Error: perms for io mapped memory must only be a combination of 'r' and 'w' on element 'iomap':",
    ),
    (
        "iommu::test_overlap_different_devices",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_overlap_different_devices.system",
        SUCCESS,
    ),
    (
        "iommu::test_overlap_same_device",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_overlap_same_device.system",
        "Error: map for 'region_b' has io address range [0x0..0x1000) which overlaps with map for 'region_a' [0x0..0x1000) in PCI device 00:03.0 @ iommu_overlap_same_device.system:12:9",
    ),
    (
        "iommu::test_same_mr_different_devices",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_same_mr_different_devices.system",
        SUCCESS,
    ),
    (
        "iommu::test_overlap_mixed_page_sizes",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_overlap_mixed_page_sizes.system",
        "Error: currently seL4 does not have large page support for the IOMMU",
    ),
    (
        "iommu::test_pci_invalid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_pci_invalid.system",
        "Error: failed to parse device peripheral_id '0:g.0': failed to parse PCI device on element 'io_address_space': iommu_pci_invalid.system:9:5",
    ),
    (
        "iommu::test_pci_negative_bus",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_pci_negative_bus.system",
        "Error: failed to parse device peripheral_id '-1:0.0': PCI bus must be within [0..255] on element 'io_address_space':",
    ),
    (
        "iommu::test_pci_negative_device",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_pci_negative_device.system",
        "Error: failed to parse device peripheral_id '0:-1.0': PCI device must be within [0..31] on element 'io_address_space':",
    ),
    (
        "iommu::test_pci_negative_function",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_pci_negative_function.system",
        "Error: failed to parse device peripheral_id '0:0.-1': PCI function must be within [0..7] on element 'io_address_space':",
    ),
    (
        "iommu::test_duplicate_device",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_duplicate_device.system",
        "Error: duplicate name 'test_device' on element 'io_address_space':",
    ),
    (
        "iommu::test_duplicate_device_identifier",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_duplicate_device_identifier.system",
        "Error: duplicate device peripheral_id 'PCI device 00:03.0' on element 'io_address_space':",
    ),
    (
        "iommu::test_duplicate_domain_identifier",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "iommu_duplicate_domain_identifier.system",
        "Error: reusing a domain id is forbidden on element 'io_address_space'",
    ),
    (
        "virtual_machine::test_vm_valid_aarch64",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_valid.system",
        SUCCESS,
    ),
    (
        "virtual_machine::test_vm_with_priority_aarch64",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_with_priority.system",
        SUCCESS,
    ),
    (
        "virtual_machine::test_vm_valid_x86_64",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_valid.system",
        SUCCESS,
    ),
    (
        "virtual_machine::test_vm_with_priority_x86_64",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_with_priority.system",
        "Error: invalid attribute 'priority' on element 'virtual_machine'",
    ),
    (
        "virtual_machine::test_vm_not_child",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_not_child.system",
        "Error: virtual machine must be a child of a protection domain",
    ),
    (
        "virtual_machine::test_duplicate_name",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_duplicate_name.system",
        "Error: duplicate virtual machine name 'guest'",
    ),
    (
        "virtual_machine::test_missing_vcpu",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_missing_vcpu.system",
        "Error: missing 'vcpu' element on virtual_machine: ",
    ),
    (
        "virtual_machine::test_missing_vcpu_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_missing_vcpu_id.system",
        check_missing("id", "vcpu"),
    ),
    (
        "virtual_machine::test_invalid_vcpu_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_invalid_vcpu_id.system",
        "Error: id must be < 62 on element 'vcpu'",
    ),
    (
        "virtual_machine::test_overlapping_maps",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_overlapping_maps.system",
        "Error: map for 'mr2' has virtual address range [0x1000000..0x1001000) which overlaps with map for 'mr1' [0x1000000..0x1001000) in virtual machine 'guest' @",
    ),
    (
        "virtual_machine::test_missing_mr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_missing_mr.system",
        "Error: invalid memory region name 'mr1' on 'map' @",
    ),
    (
        "virtual_machine::test_x86_ppc_invalid_1",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_x86_ppc_invalid_1.system",
        "Error: It is not possible to PPC to PD 'VMM' with a bound vCPU from PD 'some_service' on x86_64",
    ),
    (
        "virtual_machine::test_x86_ppc_invalid_2",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_x86_ppc_invalid_2.system",
        "Error: It is not possible to PPC to PD 'VMM' with a bound vCPU from PD 'some_service' on x86_64",
    ),
    (
        "virtual_machine::test_x86_ppc_valid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_x86_ppc_valid.system",
        SUCCESS,
    ),
    (
        "virtual_machine::test_vm_x86_vm_with_child_invalid",
        DEFAULT_X86_64_KERNEL_CONFIG,
        "vm_x86_vm_with_child_invalid.system",
        "Error: It is not possible for PD 'VMM' with a bound vCPU to have children on x86_64",
    ),
    (
        "channel::test_missing_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_missing_id.system",
        check_missing("id", "end"),
    ),
    (
        "channel::test_id_greater_than_max",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_id_greater_than_max.system",
        "Error: id must be < 62 on element 'end'",
    ),
    (
        "channel::test_id_less_than_0",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_id_less_than_0.system",
        "Error: id must be >= 0 on element 'end'",
    ),
    (
        "channel::test_invalid_attrs",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_invalid_attrs.system",
        "Error: invalid attribute 'foo' on element 'channel': ",
    ),
    (
        "channel::test_channel_invalid_pd",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_invalid_pd.system",
        "Error: invalid PD name 'invalidpd' on element 'end': ",
    ),
    (
        "channel::test_invalid_element",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_invalid_element.system",
        "Error: invalid XML element 'ending': ",
    ),
    (
        "channel::test_not_enough_ends",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_not_enough_ends.system",
        "Error: exactly two end elements must be specified on element 'channel': ",
    ),
    (
        "channel::test_too_many_ends",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_too_many_ends.system",
        "Error: exactly two end elements must be specified on element 'channel': ",
    ),
    (
        "channel::test_end_invalid_pp",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_end_invalid_pp.system",
        "Error: pp must be 'true' or 'false' on element 'end': ",
    ),
    (
        "channel::test_end_invalid_notify",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_end_invalid_notify.system",
        "Error: notify must be 'true' or 'false' on element 'end': ",
    ),
    (
        "channel::test_bidirectional_ppc",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_bidirectional_ppc.system",
        "Error: cannot ppc bidirectionally on element 'channel': ",
    ),
    (
        "channel::test_ppcall_priority",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_ppcall_priority.system",
        "Error: PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd test1 (priority: 2) to pd test2 (priority: 1)",
    ),
    (
        "domains::test_domain_smp",
        SMP_AARCH64_KERNEL_CONFIG,
        "domain_smp.system",
        "Error: The domain scheduler is not supported in multicore builds of seL4",
    ),
    (
        "domains::test_domain_too_many_domains",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_exceed_max_domains.system",
        "Error: Number of domains exceeds 16 on element 'domains': domain_exceed_max_domains.system:8:5",
    ),
    (
        "domains::test_domain_assign_pd_to_invalid_domain",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_assign_pd_to_invalid_domain.system",
        "Error: domain 'domain_2' not declared in <domains>: on element 'protection_domain': domain_assign_pd_to_invalid_domain.system:16:5",
    ),
    (
        "domains::test_domain_invalid_timeslice",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_invalid_timeslice.system",
        "Error: The duration '1000 kilometres' must be in either 'ticks' or 'us' on element 'schedule_entry': domain_invalid_timeslice.system:12:13",
    ),
    (
        "domains::test_domain_no_schedule",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_no_schedule.system",
        "Error: Specifying a domain 'domain_1' without declaring a domain schedule is not allowed: on element 'protection_domain': domain_no_schedule.system:8:5",
    ),
    (
        "domains::test_domain_pd_no_domain",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_no_pd_domain.system",
        "Error: Missing required attribute 'domain' on element 'protection_domain': domain_no_pd_domain.system:15:5",
    ),
    (
        "domains::test_domain_invalid_start_index",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_invalid_start_index.system",
        "Error: failed to parse integer 'zzzz' on element 'domain_schedule': invalid digit found in string",
    ),
    (
        "domains::test_domain_out_of_bounds_start_index",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_out_of_bounds_start_index.system",
        "Error: schedule_start_index '1' is greater than the length of the schedule '1' on element 'domain_schedule': domain_out_of_bounds_start_index.system:11:9",
    ),
    (
        "domains::test_domain_invalid_shift",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_invalid_shift.system",
        "Error: failed to parse integer 'zzzz' on element 'domain_schedule': invalid digit found in string",
    ),
    (
        "domains::test_domain_out_of_bounds_shift",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "domain_out_of_bounds_shift.system",
        "Error: schedule_index_shift '0' on top of the schedule length '1' would exceed than the configured KernelNumDomainSchedules 100 on element 'domain_schedule': domain_out_of_bounds_shift.system:11:9",
    ),
    (
        "system::test_duplicate_pd_names",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_duplicate_pd_name.system",
        "Error: duplicate protection domain name 'test'.",
    ),
    (
        "system::test_duplicate_mr_names",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_duplicate_mr_name.system",
        "Error: duplicate memory region name 'test'.",
    ),
    (
        "system::test_duplicate_irq_number",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_duplicate_irq_number.system",
        "Error: duplicate irq: 112 in protection domain: 'test2' @ ",
    ),
    (
        "system::test_duplicate_irq_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_duplicate_irq_id.system",
        "Error: duplicate channel id: 3 in protection domain: 'test1' @",
    ),
    (
        "system::test_channel_duplicate_a_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_channel_duplicate_a_id.system",
        "Error: duplicate channel id: 5 in protection domain: 'test1' @",
    ),
    (
        "system::test_channel_duplicate_b_id",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_channel_duplicate_b_id.system",
        "Error: duplicate channel id: 5 in protection domain: 'test2' @",
    ),
    (
        "system::test_no_protection_domains",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_no_protection_domains.system",
        "Error: at least one protection domain must be defined",
    ),
    (
        "system::test_text_elements",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_text_elements.system",
        "Error: unexpected text found in element 'system' @",
    ),
    (
        "system::test_map_invalid_mr",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_map_invalid_mr.system",
        "Error: invalid memory region name 'foos' on 'map' @ ",
    ),
    (
        "system::test_map_not_aligned",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_map_not_aligned.system",
        "Error: invalid vaddr alignment on 'map' @ ",
    ),
    (
        "system::test_map_too_high",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_map_too_high.system",
        "Error: vaddr (0x1000000000000000) must be less than 0xffffffc000 on element 'map'",
    ),
    (
        "system::test_map_range_too_high",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_map_range_too_high.system",
        "Error: map for 'foo' has virtual address range [0xe000000000..0x200e000000000) which exceeds valid address space",
    ),
    (
        "system::test_too_many_pds",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "sys_too_many_pds.system",
        "Error: too many protection domains (64) defined. Maximum is 63.",
    ),
    (
        "system::test_fpu_flag_wrong_value",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "wrong_fpu_flag_value.system",
        "Error: fpu must be 'true' or 'false'",
    ),
    (
        "system::test_cap_mappings_overlapping",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_cap_mappings_overlapping.system",
        "Error: overlapping user caps in slot 3 of protection domain 'pd_b':\n  type VSpace from 'pd_a' at 'pd_cap_mappings_overlapping.system:23:13'\n  type VSpace from 'pd_a' at 'pd_cap_mappings_overlapping.system:25:13'",
    ),
    (
        "system::test_cap_mappings_slot_invalid",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "cap_mappings_slot_invalid.system",
        "Error: The destination slot 0 has been reserved for Microkit CNode on element 'cap_sc'",
    ),
    (
        "system::test_cap_mappings_invalid",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_cap_mappings_invalid.system",
        "Cap type: 'gerbils' is not supported at 'pd_cap_mappings_invalid.system:16:13'",
    ),
    (
        "system::test_cap_mappings_invalid_pd_ref",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "pd_cap_mappings_invalid_pd_ref.system",
        "Error: unknown PD name 'invalid': pd_cap_mappings_invalid_pd_ref.system:12:13",
    ),
]

#: Suite files test.rs no longer names (they remain in the tool's tests/sdf directory).
#: Their verdicts here follow the rules in tool/microkit/src/sdf.rs at the same commit,
#: not test.rs: ``checked_lookup`` for a missing ``pd``, and the vCPU's ``cpu`` conversion.
NOT_IN_TEST_RS: list[tuple[str, MicrokitTarget, str, str | None]] = [
    (
        "sdf.rs checked_lookup(pd)",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "ch_missing_pd.system",
        check_missing("pd", "end"),
    ),
    (
        # cpu="300" does not fit the u8 the tool converts it to with
        # ``.expect("cpu # fits in u8")``: the tool panics before its core bound.
        "sdf.rs vcpu cpu u8 conversion",
        DEFAULT_AARCH64_KERNEL_CONFIG,
        "vm_invalid_vcpu_cpu.system",
        "thread 'main' panicked: cpu # fits in u8: TryFromIntError(())",
    ),
]


def test_the_table_is_all_of_test_rs() -> None:
    assert len(EXPECTATIONS) == 147
    assert len({name for name, *_ in EXPECTATIONS}) == 147


def test_every_suite_file_has_an_expectation() -> None:
    on_disk = {path.name for path in SUITE.glob("*.system")}
    assert on_disk, f"no test files found in {SUITE}"
    named = {file for _, _, file, _ in EXPECTATIONS + NOT_IN_TEST_RS}
    assert on_disk - named == set(), "suite files without an expected verdict"
    assert named - on_disk == set(), "expectations for files that do not exist"


def test_the_prefills_are_the_tools() -> None:
    assert (PREFILLS / "empty.bin").read_bytes() == b""
    assert (PREFILLS / "small.bin").read_bytes() == b"test"


def _run(target: MicrokitTarget, file: str, expected: str | None) -> None:
    result = check_text((SUITE / file).read_text(encoding="utf-8"), file, target)
    if expected is SUCCESS:
        assert result.ok, [d.tool_text for d in result.errors]
        assert result.system is not None
    else:
        assert not result.ok, f"accepted, but the tool rejects it with: {expected}"
        assert len(result.errors) == 1
        got = result.errors[0].tool_text
        assert got.startswith(expected), f"expected:\n{expected}\ngot:\n{got}"


@pytest.mark.parametrize(
    ("target", "file", "expected"),
    [pytest.param(t, f, e, id=name) for name, t, f, e in EXPECTATIONS],
)
def test_tool_expectation(target: MicrokitTarget, file: str, expected: str | None) -> None:
    _run(target, file, expected)


@pytest.mark.parametrize(
    ("target", "file", "expected"),
    [pytest.param(t, f, e, id=name) for name, t, f, e in NOT_IN_TEST_RS],
)
def test_suite_file_outside_test_rs(target: MicrokitTarget, file: str, expected: str) -> None:
    _run(target, file, expected)


def test_locations_are_bare_names() -> None:
    """The harness passes the bare file name: every location the tool prints uses it."""
    result = check_text(
        (SUITE / "pd_invalid_attrs.system").read_text(encoding="utf-8"),
        "pd_invalid_attrs.system",
        DEFAULT_AARCH64_KERNEL_CONFIG,
    )
    assert re.search(r": pd_invalid_attrs\.system:\d+:\d+$", result.errors[0].tool_text)
