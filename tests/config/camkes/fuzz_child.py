"""The CAmkES fuzz run, in a child process with hard resource limits (issue 10).

``test_hostile.py`` starts this module with ``python -m``; it limits its own address
space (``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``), arms a per-example alarm, and runs
hypothesis over generated CAmkES files.  Every example must end in a ``SystemSpec`` or
one ``Sel4VmmError`` with a location; anything else (a traceback, ``MemoryError`` from the
address-space limit, the alarm) fails the run, and the parent sees a non-zero exit.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sel4vmm.config.camkes import read_camkes
from sel4vmm.errors import Sel4VmmError

#: Address space the child may use (the interpreter, pcpp and hypothesis need ~200 MiB).
ADDRESS_SPACE_LIMIT = 1 << 30
#: Seconds one example may take; a real configuration reads in milliseconds.
EXAMPLE_SECONDS = 10
REALWORLD = Path(__file__).resolve().parents[3].parent / "shared" / "realworld"

SOURCES = sorted(p for p in REALWORLD.glob("camkes-vm-examples/**/*.camkes"))
TEXTS = [p.read_text(encoding="utf-8") for p in SOURCES] or ["assembly { configuration {} }"]

#: Lines hostile files are made of: include loops, nameless directives, bombs, NULs,
#: huge numbers, strings over lines, devices.
HOSTILE_LINES = [
    '#include "fuzz.camkes"',
    '#include "other.camkes"',
    '#include "/dev/zero"',
    '#include "a\0b"',
    "#include <configurations/vm.h>",
    "#define",
    "#undef",
    "#ifdef",
    "#ifndef",
    "#if",
    "#elif",
    "#else",
    "#endif",
    "#define A A A A A A A A",
    "#define B A A A A A A A A",
    "#define F(x) x x x x",
    "#define G(x) F(F(F(F(x))))",
    "G(G(G(y)))",
    "B B B",
    "#error boom",
    '"unterminated',
    '"two\nlines"',
    "vm0.simple_untyped24_pool = 99999999999999999999999999;",
    "vm0.simple_untyped99999999999999999999_pool = 1;",
    'vm0.untyped_mmios = ["0x40000000:40000000000"];',
    'vm0.untyped_mmios = ["0x40000000:-1"];',
    'vm0.mmios = ["0x9000000:0xffffffffffffffffffff:12"];',
    "vm0.num_vcpus = 1 << 127 << 127;",
    'vm0.vm_address_config = { "ram_base" : "0x40000000", "ram_size" : "0x10000000" };',
    "assembly { composition { component VM vm0; } configuration {",
    "} }",
    "import <devices.camkes>;",
    'import "fuzz.camkes";',
]


@st.composite
def mutated_real_files(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        if draw(st.booleans()):
            text = (
                text[:position]
                + "\n"
                + draw(st.sampled_from(HOSTILE_LINES))
                + "\n"
                + text[position:]
            )
        else:
            text = text[:position] + text[position + draw(st.integers(1, 60)) :]
    return text


hostile_files = st.lists(st.sampled_from(HOSTILE_LINES), min_size=1, max_size=12).map("\n".join)


class ExampleTimeout(Exception):
    """An example ran past EXAMPLE_SECONDS."""


def _alarm(_signal: int, _frame: FrameType | None) -> None:
    raise ExampleTimeout(f"an example ran past {EXAMPLE_SECONDS} s")


def read_one(directory: Path, text: str, other: str) -> None:
    (directory / "fuzz.camkes").write_text(text, encoding="utf-8", errors="surrogatepass")
    (directory / "other.camkes").write_text(other, encoding="utf-8", errors="surrogatepass")
    signal.alarm(EXAMPLE_SECONDS)
    try:
        spec = read_camkes(directory / "fuzz.camkes")
        assert spec.format == "camkes"
    except Sel4VmmError as error:
        assert error.message
        assert error.location is not None, error.message
    finally:
        signal.alarm(0)


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    cpu = int(os.environ.get("SEL4VMM_FUZZ_CPU_SECONDS", "600"))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    signal.signal(signal.SIGALRM, _alarm)
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
    fuzz = settings(
        max_examples=examples,
        deadline=None,
        derandomize=profile == "ci",
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    with tempfile.TemporaryDirectory(prefix="sel4vmm-camkes-fuzz-") as name:
        directory = Path(name)

        @fuzz
        @given(mutated_real_files(), hostile_files)
        def mutated(text: str, other: str) -> None:
            read_one(directory, text, other)

        @fuzz
        @given(hostile_files, hostile_files)
        def hostile(text: str, other: str) -> None:
            read_one(directory, text, other)

        @fuzz
        @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), hostile_files)
        def arbitrary(text: str, other: str) -> None:
            read_one(directory, text, other)

        mutated()
        hostile()
        arbitrary()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"camkes fuzz: {3 * examples} examples, peak RSS {peak_kib >> 10} MiB")


if __name__ == "__main__":
    main()
