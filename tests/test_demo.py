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


def test_demo_shortfall_names_the_file_and_place_the_readme_shows() -> None:
    # README "The memory demo": the error reads devices.camkes:21:9, not a deleted temp path.
    (error,) = run_demo().shortfall
    assert str(error.location) == "devices.camkes:21:9"
    assert error.fix == "give vm0 33 untyped objects of 2^24 (simple_untyped24_pool = 33)"
