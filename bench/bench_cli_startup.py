"""Command-line start-up: wall time of ``sel4vmm --help`` and ``sel4vmm check FILE``.

Each command is a fresh ``python3 -m sel4vmm`` process (what a user or a CI step pays), the
best of several runs, printed beside ``python3 -c pass`` measured in the same run (the
interpreter's own start-up, which no command can beat).  Target (issue 12): ``check`` on
libvmm's qemu_virt_aarch64 ``simple.system`` under 0.25 s wall on an idle machine.  The
machine is shared: wall time grows with the load, so the child's CPU time (user + system,
what an idle machine's wall time comes to) is printed too; compare ratios, not seconds.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from timing import timed  # noqa: E402

SYSTEM = REPO.parent / "shared/realworld/libvmm/simple/board/qemu_virt_aarch64/simple.system"
RUNS = 9
TARGET_SECONDS = 0.25


def runner(*args: str) -> tuple[str, Callable[[], None]]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, *args]

    def run() -> None:
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )

    return " ".join(args), run


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(action: Callable[[], None]) -> tuple[float, float]:
    """Best wall seconds and best child CPU seconds of :data:`RUNS` runs."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before = child_cpu()
        walls.append(timed(action))
        cpus.append(child_cpu() - before)
    return min(walls), min(cpus)


def main() -> None:
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    label, baseline = runner("-c", "pass")
    python_wall, python_cpu = measure(baseline)
    print(
        f"{'python3 ' + label:<28} wall {python_wall * 1000:6.1f} ms  "
        f"cpu {python_cpu * 1000:6.1f} ms  (baseline)"
    )
    commands = [runner("-m", "sel4vmm", "--help"), runner("-m", "sel4vmm", "--version")]
    if SYSTEM.is_file():
        commands.append(runner("-m", "sel4vmm", "check", str(SYSTEM)))
    for label, action in commands:
        wall, cpu = measure(action)
        shown = "sel4vmm check simple.system" if "check" in label else label.replace("-m ", "")
        verdict = ""
        if "check" in label:
            met = "met" if wall < TARGET_SECONDS else "NOT met at this load"
            verdict = f"  (target wall < {TARGET_SECONDS * 1000:.0f} ms: {met})"
        print(
            f"{shown:<28} wall {wall * 1000:6.1f} ms  cpu {cpu * 1000:6.1f} ms  "
            f"= {wall / python_wall:.1f}x / {cpu / python_cpu:.1f}x python3 -c pass{verdict}"
        )


if __name__ == "__main__":
    main()
