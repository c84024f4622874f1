"""Check + plan time: the largest real file, and generated systems of 10, 100, 1000 VMs.

``sel4vmm plan`` reads, checks and then builds every VM with the memory core's objects
(untyped, frames, tables, CSpace).  This measures the whole pipeline and prints the growth
ratio against the 10-VM system measured in the same run (target: linear, i.e. ~10x per
10x VMs; the largest real file under 0.2 s).  Generated systems come from
``bench_microkit_check.generated_system`` (each VM: 256 MiB of RAM shared with its VMM, a
passthrough UART, the GIC vCPU window); the board's RAM is sized to hold them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from bench_microkit_check import generated_system  # noqa: E402
from sel4vmm.config.load import load_system  # noqa: E402
from sel4vmm.config.microkit import MicrokitTarget, check_text  # noqa: E402
from sel4vmm.config.microkit.to_spec import to_system_spec  # noqa: E402
from sel4vmm.config.spec import SystemSpec  # noqa: E402
from sel4vmm.plan import plan_system  # noqa: E402
from timing import best_of  # noqa: E402

REALWORLD = REPO.parent / "shared" / "realworld"


def main() -> None:
    real = sorted(REALWORLD.glob("**/*.system"), key=lambda p: p.stat().st_size)
    if real:
        largest = real[-1]

        def real_run() -> None:
            plan_system(load_system(largest))

        seconds = best_of(5, real_run)
        print(
            f"largest real file {largest.relative_to(REALWORLD)}: check + plan "
            f"{seconds * 1e3:.1f} ms (target < 200 ms)"
        )
    target = MicrokitTarget(max_pds=10_000)
    baseline = None
    plan_times: dict[int, float] = {}
    for count in (10, 100, 1000):
        text = generated_system(count)
        # 256 MiB per guest, plus room for the objects that cost 2 MiB alignment each.
        ram = max(2 << 30, (count * 0x10_400_000 + (1 << 30)) // (1 << 30) << 30)

        def run(text: str = text, ram: int = ram) -> None:
            spec = to_system_spec(check_text(text, "generated.system", target), target)
            plan = plan_system(spec, board="qemu_virt_aarch64", ram_size=ram)
            assert not plan.has_errors, plan.all_findings()[:3]

        spec = to_system_spec(check_text(text, "generated.system", target), target)

        def plan_only(spec: SystemSpec = spec, ram: int = ram) -> None:
            plan_system(spec, board="qemu_virt_aarch64", ram_size=ram)

        repeats = 3 if count < 1000 else 1
        seconds = best_of(repeats, run)
        plan_times[count] = best_of(repeats + 1, plan_only)
        baseline = baseline or seconds
        print(
            f"{count:5d} VMs: check + plan {seconds * 1e3:9.1f} ms   x{seconds / baseline:6.1f} "
            f"vs 10 VMs ({seconds / count * 1e3:.2f} ms per VM); plan alone "
            f"{plan_times[count] * 1e3:9.1f} ms"
        )
    # Issue 15: planning is linear from 100 to 1000 VMs: x10 within 5% (9.5 to 10.5).
    growth = plan_times[1000] / plan_times[100]
    verdict = "linear" if growth <= 10.5 else "SUPERLINEAR"
    print(
        f"plan, 100 -> 1000 VMs: x{growth:.2f} (target x10 +- 5%: {verdict}; "
        "the machine is shared, expect noise)"
    )


if __name__ == "__main__":
    main()
