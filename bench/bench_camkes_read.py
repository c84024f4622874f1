"""How long reading the real CAmkES VM configurations takes, and where the time goes.

Baseline: running the C preprocessor (pcpp) alone over the same files.  The figures are
the full read (preprocess every imported file, lex, parse, build the SystemSpec) as a
ratio of that baseline, so the cost of sel4vmm's own lexer/parser is visible apart from
pcpp's.  Prints figures only; nothing here passes or fails.
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.camkes.preprocess import BUNDLED_INCLUDE_DIR, preprocess
from sel4vmm.config.camkes.reader import platform_directories
from timing import best_of

EXAMPLES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "realworld" / "camkes-vm-examples"
)
ROUNDS = 5


def cases() -> list[tuple[Path, dict[str, str]]]:
    found: list[tuple[Path, dict[str, str]]] = []
    for path in sorted(EXAMPLES.glob("**/*.camkes")):
        platforms = [] if path.name == "devices.camkes" else platform_directories(path.parent)
        found += [(path, {"PLAT": p}) for p in platforms] or [(path, {})]
    return found


def main() -> None:
    work = cases()
    devices = sorted(EXAMPLES.glob("**/devices.camkes"))

    def preprocess_only() -> None:
        for path in devices:
            preprocess(
                path,
                path.read_text(),
                include_dirs=[BUNDLED_INCLUDE_DIR / "plat_include" / "zynqmp", BUNDLED_INCLUDE_DIR],
                defines={},
            )

    def read_devices() -> None:
        for path in devices:
            read_camkes(path)

    def read_everything() -> None:
        for path, defines in work:
            read_camkes(path, defines=defines)

    baseline = best_of(ROUNDS, preprocess_only)
    full_devices = best_of(ROUNDS, read_devices)
    everything = best_of(ROUNDS, read_everything)
    print(f"devices.camkes files: {len(devices)}; configurations (file x platform): {len(work)}")
    print(f"baseline  pcpp only, devices files : {baseline * 1e3:8.1f} ms")
    print(
        f"read_camkes, devices files         : {full_devices * 1e3:8.1f} ms "
        f"({full_devices / baseline:.2f}x baseline)"
    )
    print(
        f"read_camkes, every configuration   : {everything * 1e3:8.1f} ms "
        f"({everything / len(work) * 1e3:.1f} ms each)"
    )


if __name__ == "__main__":
    main()
