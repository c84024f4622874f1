"""Guest isolation through KVM's CPU path: sentinels outside the guest's frames.

Sentinels sit in physical memory that is not the guest's (another VM's frames, the VM's
own kernel objects, free board RAM); the guest reads and then overwrites each address.
What must hold (issue 10): no sentinel is read or written without a report — KVM only
has memory slots for the guest's own mapped extents, so an address outside them exits
to the VMM, finds no reservation and stops the VM with a diagnostic naming it.
"""

from __future__ import annotations

import pytest

from sel4vmm.backends.kvm.run import StopReason
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.backends.kvm.conftest import Script, ScriptGuest

SENTINEL = b"SENTINEL"
KINDS = ["frames of other", "kernel objects of guest (vspace)", "free board RAM"]


def sentinel_address(guest: ScriptGuest, kind: str) -> int:
    vm = guest.vm
    if kind.startswith("frames"):
        other = VirtualMachine.create("other", vm.platform, pools=[PoolRequest(24, 1)])
        other.ram.register_at(0x10_0000, 0x1_0000)
        return other.ram.physical_pieces(0x10_4000, 8)[0][1]
    if kind.startswith("kernel"):
        assert vm.tables.root is not None
        return vm.tables.root.paddr
    return 0x0F00_0000


@pytest.mark.parametrize("kind", KINDS)
def test_the_cpu_never_reaches_a_sentinel(script_guest: ScriptGuest, kind: str) -> None:
    paddr = sentinel_address(script_guest, kind)
    vm = script_guest.vm
    assert str(vm.ownership.owner_of(paddr)).startswith(kind)
    assert not any(e.paddr <= paddr < e.paddr + e.size for e in vm.memory.extents())
    vm.physmem.view(paddr, len(SENTINEL))[:] = SENTINEL
    script = Script()
    script.read(paddr, width=8)
    script.write(paddr, 0x0BAD_BEEF, width=8)
    script.out(0xF4, 0, width=4)
    outcome = script_guest.run(script)
    assert bytes(vm.physmem.view(paddr, len(SENTINEL))) == SENTINEL
    reservation = vm.memory.find(paddr)
    if reservation is not None and reservation.extent_at(paddr) is not None:
        assert outcome.reason is StopReason.EXITED, outcome.diagnostic  # its own frame
    else:
        assert outcome.reason is StopReason.FAULT
        assert f"{paddr:#x}" in outcome.diagnostic
