"""Command-line start-up: wall time of ``sel4vmm --help`` and ``sel4vmm check FILE``.

Each command is a fresh ``python3 -m sel4vmm`` process (what a user or a CI step pays), the
best of several runs, printed beside ``python3 -c pass`` measured in the same run (the
interpreter's own start-up, which no command can beat).  Target (issue 12): ``check`` on
libvmm's qemu_virt_aarch64 ``simple.system`` under 0.25 s wall on an idle machine.  The
machine is shared: expect noise, and compare the ratios rather than the seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from timing import best_of  # noqa: E402

SYSTEM = REPO.parent / "shared/realworld/libvmm/simple/board/qemu_virt_aarch64/simple.system"
RUNS = 9
TARGET_SECONDS = 0.25


def runner(*args: str) -> tuple[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, *args]

    def run() -> None:
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )

    return " ".join(args), run


def main() -> None:
    label, baseline = runner("-c", "pass")
    python = best_of(RUNS, baseline)  # type: ignore[arg-type]
    print(f"{'python3 ' + label:<40} {python * 1000:7.1f} ms  (baseline)")
    commands = [runner("-m", "sel4vmm", "--help"), runner("-m", "sel4vmm", "--version")]
    if SYSTEM.is_file():
        commands.append(runner("-m", "sel4vmm", "check", str(SYSTEM)))
    for label, action in commands:
        seconds = best_of(RUNS, action)  # type: ignore[arg-type]
        shown = label.replace(str(REPO.parent) + "/", "../")
        verdict = ""
        if "check" in label:
            verdict = "  (target < 250 ms: " + ("met" if seconds < TARGET_SECONDS else "NOT met")
            verdict += ")"
        print(
            f"{'python3 ' + shown[:60]:<40} {seconds * 1000:7.1f} ms  "
            f"= {seconds / python:.1f}x python3 -c pass{verdict}"
        )


if __name__ == "__main__":
    main()
