"""The scheduling rules (backends/unicorn/scheduling.py), checked exactly on fake VM rounds.

Clock: one tick per microsecond, every fake round costs 100 ticks unless said otherwise.
"""

from __future__ import annotations

import pytest

from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.scheduling import MIN_SLICE, Schedule, Scheduler, fitted_slice
from sel4vmm.backends.unicorn.system_loop import SystemLoop
from sel4vmm.config.microkit.limits import BUDGET_DEFAULT
from tests.backends.unicorn.fake_vms import FREQUENCY_HZ, FakeClock, FakeVm, Step


def run(
    scripts: list[list[Step]], schedules: list[Schedule], cost: int = 100
) -> tuple[SystemLoop, list[FakeVm], FakeClock]:
    clock = FakeClock()
    vms = [FakeVm(clock, script, cost) for script in scripts]
    loop = SystemLoop([f"vm{i}" for i in range(len(vms))], vms, clock, schedules)
    outcomes = loop.run([0] * len(vms))
    assert len(outcomes) == len(vms)
    return loop, vms, clock


def test_microkit_defaults_are_the_manuals() -> None:
    # seL4/microkit docs/manual.md (b270e9eb91d84640f4ceadd7c1c6a3f1c083b788):
    # "`budget`: (optional) The PD's budget in microseconds; defaults to 1,000."
    # "`period`: (optional) The PD's period in microseconds; must not be smaller than the
    # budget; defaults to the budget."
    assert BUDGET_DEFAULT == 1_000
    default = Schedule()
    assert (default.priority, default.budget_us, default.period) == (0, 1_000, 1_000)
    assert not default.limited  # a budget equal to its period never runs out
    assert Schedule(budget_us=500).period == 500
    assert Schedule(budget_us=500, period_us=2_000).limited


def test_equal_priorities_take_turns_round_robin() -> None:
    loop, _, _ = run([["run"] * 4, ["run"] * 4, ["run"] * 4], [Schedule()] * 3)
    assert list(loop.trace) == [0, 1, 2] * 4
    assert loop.stats.switches == 11


def test_a_higher_priority_vm_runs_first_and_alone() -> None:
    loop, _, _ = run([["run"] * 3, ["run"] * 3], [Schedule(priority=10), Schedule(priority=20)])
    assert list(loop.trace) == [1, 1, 1, 0, 0, 0]


def test_a_lower_priority_vm_runs_only_while_the_higher_one_idles() -> None:
    # vm0 (high) runs twice, sleeps until tick 1000, runs twice; vm1 (low) has 20 rounds.
    high: list[Step] = ["run", "run", ("sleep", 1_000), "run", "run"]
    loop, vms, _ = run([high, ["run"] * 20], [Schedule(priority=200), Schedule(priority=100)])
    trace = list(loop.trace)
    # Two high rounds (0..200), then the low VM until the high one's deadline at 1000
    # (200..1000: eight rounds), then the high VM's last two rounds, then the rest.
    assert trace[:2] == [0, 0]
    assert trace[2:10] == [1] * 8
    assert trace[10:12] == [0, 0]
    assert trace[12:] == [1] * 12
    assert vms[0].ran_at == [0, 100, 1_000, 1_100]


def test_a_vm_out_of_budget_waits_for_its_next_period() -> None:
    # vm0: 300 us every 1000 us at a high priority; vm1 below it takes what is left.
    limited = Schedule(priority=200, budget_us=300, period_us=1_000)
    loop, vms, _ = run([["run"] * 9, ["run"] * 30], [limited, Schedule(priority=100)])
    assert vms[0].ran_at == [0, 100, 200, 1_000, 1_100, 1_200, 2_000, 2_100, 2_200]
    trace = list(loop.trace)
    assert trace[:3] == [0, 0, 0]
    assert trace[3:10] == [1] * 7  # 300..1000
    assert trace[10:13] == [0, 0, 0]
    assert loop.scheduler.throttles(0) == 3


def test_what_a_round_uses_beyond_the_budget_comes_off_the_next_one() -> None:
    # 250 us of budget, 100 us rounds: three rounds (300 used), then only two (50 + 200).
    limited = Schedule(priority=200, budget_us=250, period_us=1_000)
    _, vms, _ = run([["run"] * 6, ["run"] * 30], [limited, Schedule(priority=100)])
    assert vms[0].ran_at[:5] == [0, 100, 200, 1_000, 1_100]
    assert vms[0].ran_at[5] == 2_000


def test_an_unused_window_refills_without_a_wait() -> None:
    scheduler = Scheduler([Schedule(budget_us=300, period_us=1_000)], FREQUENCY_HZ)
    scheduler.charge(0, 0, 200)
    assert scheduler.candidates(500) == [0]
    assert scheduler.candidates(1_000) == [0]  # the window ended: a full budget again
    scheduler.charge(0, 1_000, 250)
    assert scheduler.candidates(1_250) == [0]
    scheduler.charge(0, 1_250, 100)  # 350 >= 300 in the window that began at 1000
    assert scheduler.candidates(1_350) == []
    assert scheduler.next_release() == 2_000
    assert scheduler.candidates(2_000) == [0]


def test_when_every_vm_idles_the_clock_skips_to_the_earliest_deadline() -> None:
    scripts: list[list[Step]] = [["run", ("sleep", 5_000), "run"], ["run", ("sleep", 3_000), "run"]]
    loop, vms, clock = run(scripts, [Schedule()] * 2)
    assert clock.skips == [3_000, 5_000]
    assert vms[1].ran_at == [100, 3_000]
    assert vms[0].ran_at == [0, 5_000]
    assert loop.stats.idle_skips == 2


def test_the_clock_skips_to_a_budget_refill_when_nothing_else_can_run() -> None:
    limited = Schedule(budget_us=200, period_us=10_000)
    _, vms, clock = run([["run"] * 4, ["wfi", "run"]], [limited, Schedule()])
    assert clock.skips[0] == 10_000
    assert vms[0].ran_at == [0, 100, 10_000, 10_100]


def test_vms_nothing_can_wake_stop_idle_forever_and_the_others_finish() -> None:
    clock = FakeClock()
    vms = [FakeVm(clock, ["run", "wfi", "run"]), FakeVm(clock, ["run", ("sleep", 900), "run"])]
    outcomes = SystemLoop(["a", "b"], vms, clock, None).run([0, 0])
    assert outcomes[1].stop_reason is StopReason.SYSTEM_OFF
    assert outcomes[0].stop_reason is StopReason.IDLE_FOREVER
    # b ran its last round at 900 and powered off at 1000; then nothing could wake a.
    assert outcomes[0].guest_seconds == pytest.approx(1_000 / FREQUENCY_HZ)


def test_a_stop_check_stops_every_vm() -> None:
    clock = FakeClock()
    vms = [FakeVm(clock, ["run"] * 100), FakeVm(clock, ["run"] * 100)]
    loop = SystemLoop(["a", "b"], vms, clock, None)
    loop.stop_checks.append(lambda: StopReason.INTERRUPTED if clock.ticks >= 1_000 else None)
    outcomes = loop.run([0, 0])
    assert [o.stop_reason for o in outcomes] == [StopReason.INTERRUPTED] * 2
    assert loop.stats.rounds == 10


def test_each_vm_is_charged_its_own_rounds() -> None:
    loop, _, _ = run([["run"] * 3, ["run"] * 5], [Schedule()] * 2)
    assert [loop.scheduler.charged_ticks(i) for i in (0, 1)] == [300, 500]


def test_what_is_left_of_a_budget() -> None:
    scheduler = Scheduler([Schedule(budget_us=300, period_us=1_000), Schedule()], FREQUENCY_HZ)
    assert scheduler.remaining(1) is None  # budget = period: it cannot run out
    assert scheduler.remaining(0) == 300
    scheduler.charge(0, 0, 120)
    assert scheduler.remaining(0) == 180
    scheduler.charge(0, 120, 250)
    assert scheduler.remaining(0) == 0


def test_a_budget_shortens_the_slices_to_what_is_left() -> None:
    # 1000 ticks for 200,000 instructions in one-slice rounds: 5 ticks per 1000.
    assert fitted_slice(500, 1_000, 200_000, 1, 1, 200_000) == 100_000
    assert fitted_slice(5_000, 1_000, 200_000, 1, 1, 200_000) == 200_000  # never longer
    assert fitted_slice(1, 1_000, 200_000, 1, 1, 200_000) == MIN_SLICE  # never shorter
    assert fitted_slice(500, 1_000, 200_000, 4, 2, 200_000) == 50_000  # two vCPUs a round
    assert fitted_slice(500, 0, 0, 0, 0, 200_000) == 200_000  # nothing measured yet


def test_slices_end_at_the_budget_and_at_a_higher_vms_refill() -> None:
    # 250 us of every 1000 for the high VM; a full slice (200,000 instructions) takes
    # 100 us.  After two full rounds 50 us are left: the third round gets a
    # 100,000-instruction slice and the budget ends with it.  The low VM's rounds are cut
    # to end at the high VM's refill (1000, 2000), so the high VM starts on time.
    clock = FakeClock()
    high = FakeVm(clock, ["run"] * 9, counted=True)
    low = FakeVm(clock, ["run"] * 40, counted=True)
    schedules = [Schedule(priority=200, budget_us=250, period_us=1_000), Schedule(priority=100)]
    SystemLoop(["high", "low"], [high, low], clock, schedules).run([0, 0])
    assert high.ran_at == [0, 100, 200, 1_000, 1_100, 1_200, 2_000, 2_100, 2_200]
    assert high.slices_run[:3] == [200_000, 200_000, 100_000]
    # 250..1000: seven full rounds would end at 950, then one of 50 us to the refill.
    assert low.ran_at[:8] == [250, 350, 450, 550, 650, 750, 850, 950]
    assert low.slices_run[:8] == [200_000] * 7 + [100_000]


def test_a_lower_vm_without_measurements_keeps_its_slice() -> None:
    loop, vms, _ = run(
        [["run"] * 6, ["run"] * 20],
        [Schedule(priority=200, budget_us=300, period_us=1_000), Schedule(priority=100)],
    )
    assert set(vms[0].slices_run) == {200_000} and set(vms[1].slices_run) == {200_000}
    assert loop.scheduler.throttles(0) == 2
