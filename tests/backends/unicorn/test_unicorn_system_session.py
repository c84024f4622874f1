"""``run_system``: every VM a system file describes, run together (issue 14, items 1-4).

The systems are small ``.system`` files in ``data/`` (after libvmm's ``simple.system``):
two VMs with the same guest RAM base and size, one of them pinned 1:1, two pinned over
the same RAM, and two at different priorities with an MCS budget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.scheduling import Schedule
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.system_session import run_system, schedule_of, system_vms
from sel4vmm.config.spec import VmSpec
from sel4vmm.errors import Sel4VmmError
from tests.backends.unicorn.test_unicorn_linux import _initramfs, needs_debian
from tests.backends.unicorn.test_unicorn_system import fnv1a

DATA = Path(__file__).parent / "data"
MEMTEST = bundled_guest("memtest")
#: The emulated board's command line (board.py's GuestLayout), then the VM's name.
BOOTARGS = "console=ttyAMA0 earlycon=pl011,0x9000000 sel4vmm.vm="


def test_every_vm_of_the_system_runs_memtest_interleaved_with_its_own_pattern() -> None:
    printed: dict[str, bytearray] = {}

    def consoles(name: str) -> Callable[[bytes], None]:
        return printed.setdefault(name, bytearray()).extend

    result = run_system(DATA / "two_vms.system", MEMTEST, one_to_one=False, consoles=consoles)
    assert result.ok, [vm.diagnostic for vm in result.vms]
    assert [vm.layout.name for vm in result.vms] == ["vm_a", "vm_b"]
    for vm in result.vms:
        assert (vm.layout.ram_base, vm.layout.ram_size) == (0x4000_0000, 0x100_0000)
        assert not vm.layout.one_to_one
        seed = fnv1a(f"{BOOTARGS}{vm.layout.name}".encode())
        assert f"memtest: seed {seed:#x}" in vm.console_text
        assert "memtest: OK 16228352 bytes" in vm.console_text
        assert bytes(printed[vm.layout.name]) == vm.console
        assert vm.statistics.instructions_counted > 0 and vm.rounds == vm.statistics.slices
    both = min(vm.rounds for vm in result.vms)
    assert result.trace[: 2 * both] == [0, 1] * both


def test_one_vm_pinned_one_to_one_and_one_from_pools() -> None:
    result = run_system(DATA / "one_to_one_and_pools.system", MEMTEST, one_to_one=False)
    assert result.ok
    assert [vm.layout.one_to_one for vm in result.vms] == [True, False]
    assert all("memtest: OK" in vm.console_text for vm in result.vms)


def test_two_vms_pinned_to_the_same_ram_are_the_checkers_error() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        run_system(DATA / "two_pinned.system", MEMTEST, one_to_one=False)
    # The Microkit checker's wording (config/microkit/system_checks.py, as the tool says it).
    assert raised.value.message.endswith(
        "memory region 'ram_b' physical address range [0x40000000..0x41000000) overlaps "
        "with another memory region 'ram_a' [0x40000000..0x41000000)"
    )
    assert raised.value.location is not None and raised.value.location.line == 5


def test_two_vms_made_one_to_one_by_the_run_are_refused_at_the_second_vm() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        run_system(DATA / "two_vms.system", MEMTEST)  # 1:1 unless --pools
    error = raised.value
    assert "physical address 0x40000000 is already in use" in error.message
    assert error.location is not None
    assert (error.location.path, error.location.line) == (str(DATA / "two_vms.system"), 21)
    assert error.fix is not None and "run --pools" in error.fix


def test_the_schedule_is_the_vmm_protection_domains() -> None:
    vms = system_vms(DATA / "priorities.system", one_to_one=False)
    assert [vm.schedule for vm in vms] == [
        Schedule(priority=200, budget_us=2000, period_us=10000),
        Schedule(priority=100, budget_us=1000, period_us=1000),
    ]


def test_camkes_vms_run_at_their_components_priority(realworld: Path) -> None:
    """camkes-vm's ``VM_CONFIGURATION_DEF`` (configurations/vm.h) sets ``vm##num._priority =
    101`` for every VM of vm_multi: three equal priorities, the default budget."""
    path = realworld / "camkes-vm-examples" / "vm_multi" / "vm_multi.camkes"
    vms = system_vms(path, defines={"PLAT": "qemu-arm-virt"})
    assert [(vm.layout.name, vm.schedule) for vm in vms] == [
        (name, Schedule(priority=101)) for name in ("vm0", "vm1", "vm2")
    ]


def test_a_camkes_control_thread_priority_wins_over_the_instance_priority() -> None:
    """The CAmkES manual ("Thread Priorities"): ``_priority`` is the control thread's,
    ``priority`` every thread's; camkes-vm's VMM loop is the control thread."""
    both = VmSpec(name="vm0", arch="aarch64", extra={"_priority": 150, "priority": 90})
    instance = VmSpec(name="vm1", arch="aarch64", extra={"priority": 90})
    assert schedule_of(both) == Schedule(priority=150)
    assert schedule_of(instance) == Schedule(priority=90)
    assert schedule_of(VmSpec(name="vm2", arch="aarch64")) == Schedule(priority=0)


def test_a_higher_priority_vm_with_a_budget_runs_first_and_waits_for_its_periods() -> None:
    result = run_system(DATA / "priorities.system", MEMTEST, one_to_one=False)
    assert result.ok
    fast, slow = result.vms
    assert result.trace[0] == 0  # the higher priority goes first
    # memtest's rounds take longer than 2 ms of its 10 ms: its budget ran out, and while
    # it waited the lower-priority VM ran.
    assert fast.throttles > 0
    last_fast = len(result.trace) - 1 - result.trace[::-1].index(0)
    assert result.trace.index(1) < last_fast  # the lower one ran while the higher waited
    assert slow.throttles == 0  # a budget equal to its period never runs out


def test_vm_names_choose_which_vms_run() -> None:
    result = run_system(DATA / "two_vms.system", MEMTEST, vm_names=["vm_b"])
    assert [vm.layout.name for vm in result.vms] == ["vm_b"]
    assert result.ok


def test_an_unknown_or_repeated_vm_name_is_an_error() -> None:
    with pytest.raises(Sel4VmmError, match="no VM named 'vm_c'"):
        run_system(DATA / "two_vms.system", MEMTEST, vm_names=["vm_a", "vm_c"])
    with pytest.raises(Sel4VmmError, match="--vm vm_a is given twice"):
        run_system(DATA / "two_vms.system", MEMTEST, vm_names=["vm_a", "vm_a"])


def test_until_stops_the_vm_that_printed_it_and_the_other_goes_on() -> None:
    result = run_system(
        DATA / "two_vms.system", MEMTEST, one_to_one=False, until="seed 0x8891a0c917ef665f"
    )
    vm_a, vm_b = result.vms
    assert fnv1a(f"{BOOTARGS}vm_a".encode()) == 0x8891A0C917EF665F
    assert vm_a.stop_reason is StopReason.CONSOLE_MATCH
    assert "memtest: OK" not in vm_a.console_text
    assert vm_b.stop_reason is StopReason.SYSTEM_OFF
    assert "memtest: OK" in vm_b.console_text


def test_typed_keys_reach_the_vm_they_were_typed_to() -> None:
    keys = [[(0, b"a"), (1, b"b")]]

    def wait(timeout: float) -> bool:
        del timeout
        return bool(keys)

    def take() -> list[tuple[int, bytes]]:
        return keys.pop() if keys else []

    result = run_system(
        DATA / "two_vms.system",
        bundled_guest("gictimer"),
        one_to_one=False,
        wait_for_input=wait,
        input_source=take,
        time_limit=60,
    )
    assert result.ok, [vm.stop_reason for vm in result.vms]
    vm_a, vm_b = result.vms
    assert "uart rx 'a'" in vm_a.console_text and "uart rx 'b'" not in vm_a.console_text
    assert "uart rx 'b'" in vm_b.console_text and "uart rx 'a'" not in vm_b.console_text


def test_the_camkes_vm_multi_example_lays_out_three_vms(realworld: Path) -> None:
    """vm_multi's three VMs (RAM at 0x40000000, 0x48000000, 0x50000000) run together.

    The bundled guests are linked at 0x40080000 (guests/aarch64/guest.ld), so only vm0
    can run one: vm1 and vm2 jump to their own RAM and their first stack write at
    0x40085a50 — vm0's RAM, not theirs — is stopped by the VMM, while vm0 finishes.
    """
    path = realworld / "camkes-vm-examples" / "vm_multi" / "vm_multi.camkes"
    result = run_system(path, bundled_guest("hello"), defines={"PLAT": "qemu-arm-virt"})
    assert [(vm.layout.name, vm.layout.ram_base) for vm in result.vms] == [
        ("vm0", 0x4000_0000),
        ("vm1", 0x4800_0000),
        ("vm2", 0x5000_0000),
    ]
    vm0, vm1, vm2 = result.vms
    assert vm0.stop_reason is StopReason.SYSTEM_OFF
    assert "hello from the sel4vmm aarch64 guest" in vm0.console_text
    for other in (vm1, vm2):
        assert other.stop_reason is StopReason.GUEST_FAULT
        assert other.diagnostic is not None and other.diagnostic.address == 0x4008_5A50


def test_when_both_vms_idle_the_shared_clock_skips_to_the_next_timer() -> None:
    """gictimer waits in WFI for five 10 ms ticks: the board's time is skipped, once both
    VMs idle, and both see their ticks and the typed key."""
    result = run_system(
        DATA / "two_vms.system", bundled_guest("gictimer"), one_to_one=False, console_input=b"q"
    )
    assert result.ok, [vm.stop_reason for vm in result.vms]
    assert result.statistics.idle_skips > 0 and result.skipped_seconds > 0
    for vm in result.vms:
        assert "gictimer: 5 timer ticks, 1 uart interrupts" in vm.console_text
        assert vm.guest_seconds >= 0.05  # five ticks of 10 ms of guest time


def test_the_time_limit_stops_every_vm() -> None:
    result = run_system(DATA / "two_vms.system", MEMTEST, one_to_one=False, time_limit=0)
    assert [vm.stop_reason for vm in result.vms] == [StopReason.TIME_LIMIT] * 2
    assert all(vm.diagnostic is not None for vm in result.vms)


CMDLINE_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "cmdline: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""


@pytest.mark.slow
@needs_debian
def test_two_linux_vms_with_the_same_ram_base_boot_together(tmp_path: Path) -> None:
    initrd = _initramfs(tmp_path, CMDLINE_INIT)
    result = run_system(
        DATA / "two_vms.system",
        find_debian_arm64().kernel,
        one_to_one=False,
        ram_size=128 << 20,
        linux=LinuxBootFiles(initrd=initrd),
        time_limit=900,
    )
    assert result.ok, [(vm.stop_reason, vm.last_lines[-5:]) for vm in result.vms]
    for vm in result.vms:
        assert f"cmdline: {BOOTARGS}{vm.layout.name}" in vm.console_text
        assert "Memory: " in vm.console_text  # Linux's own count of its 128 MiB
    assert result.statistics.switches > 100
