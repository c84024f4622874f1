"""The embedded default job does what the README says."""

from __future__ import annotations

from sel4vmm.demo import run_demo


def test_demo_plans_seed_000_and_round_trips_guest_ram() -> None:
    result = run_demo()
    assert result.pattern_ok
    (vm,) = result.plan.vms
    assert vm.resources is not None
    assert vm.resources.untyped_used[(24, False)] == 33
    (error,) = result.shortfall
    assert "needs 1 more untyped of 2^24" in error.message
    ram = next(e for e in result.one_to_one.vms[0].entries if e.kind == "ram")
    assert ram.physical == [(0x40000000, 0x20000000)]
