"""Hostile CAmkES input (issue 10 item 5): one located error each, bounded time and memory.

One regression test per crasher the issue lists, then the fuzz run in a child process
with an address-space and CPU limit (``fuzz_child.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.camkes.preprocess import MAX_INCLUDE_DEPTH, MAX_SOURCE_BYTES
from sel4vmm.errors import Location, Sel4VmmError
from tests.config.camkes.conftest import WriteFile

REPO = Path(__file__).resolve().parents[3]
VM = """#include <configurations/vm.h>
assembly {{ composition {{}} configuration {{
    vm0.vm_address_config = {{ "ram_base" : "0x40000000", "ram_size" : "0x10000000" }};
    {line}
}} }}
"""


def error_of(path: Path) -> Sel4VmmError:
    with pytest.raises(Sel4VmmError) as caught:
        read_camkes(path)
    assert caught.value.location is not None and caught.value.fix
    return caught.value


def test_a_file_including_itself(write: WriteFile) -> None:
    path = write("self.camkes", '#include "self.camkes"\nassembly { configuration {} }\n')
    error = error_of(path)
    assert f"nests {MAX_INCLUDE_DEPTH} files deep" in error.message
    assert error.location is not None and error.location.path.endswith("self.camkes")


def test_two_files_including_each_other(write: WriteFile) -> None:
    write("b.camkes", '#include "a.camkes"\n')
    path = write("a.camkes", '#include "b.camkes"\n')
    assert "in a loop" in error_of(path).message


def test_include_guards_still_allow_a_file_twice(write: WriteFile) -> None:
    write("h.h", "#ifndef H\n#define H\n#define RAM 0x10000000\n#endif\n")
    path = write("app.camkes", '#include "h.h"\n#include "h.h"\n' + VM.format(line=""))
    assert read_camkes(path).vms[0].ram_size == 0x10000000


@pytest.mark.parametrize("directive", ["#define", "#undef", "#ifdef", "#ifndef", "# define "])
def test_a_directive_without_a_macro_name(write: WriteFile, directive: str) -> None:
    path = write("bare.camkes", f"\n{directive}\nassembly {{ configuration {{}} }}\n")
    error = error_of(path)
    # GCC's wording: "no macro name given in #define directive".
    assert "no macro name given in #" in error.message
    assert error.location == Location(str(path), 2, 1)


def test_a_bare_define_in_an_included_file(write: WriteFile) -> None:
    write("inc.h", "#ifndef INC\n#define\n#endif\n")
    path = write("app.camkes", '#include "inc.h"\n')
    error = error_of(path)
    assert error.location is not None and error.location.path.endswith("inc.h")


def test_a_nul_byte_in_an_include_path(write: WriteFile) -> None:
    path = write("nul.camkes", '#include "a\0b.h"\n')
    assert "NUL byte" in error_of(path).message


def test_including_a_device_is_refused(write: WriteFile) -> None:
    path = write("zero.camkes", '#include "/dev/zero"\n')
    error = error_of(path)
    assert "/dev/zero is a character device, not a regular file" in error.message
    assert error.location == Location(str(path), 1, 0)


def test_a_fifo_is_never_opened_for_reading(write: WriteFile, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.camkes"
    os.mkfifo(fifo)
    path = write("app.camkes", f'#include "{fifo}"\n')
    assert "not a regular file" in error_of(path).message
    with pytest.raises(Sel4VmmError):
        read_camkes(fifo)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.camkes"
    with path.open("wb") as out:
        out.truncate(50 << 20)  # 50 MB, sparse: nothing is held in memory here
    error = error_of(path)
    assert f"more than the {MAX_SOURCE_BYTES} bytes sel4vmm reads for it" in error.message


def test_a_huge_included_file_is_refused(write: WriteFile, tmp_path: Path) -> None:
    with (tmp_path / "big.h").open("wb") as out:
        out.truncate(50 << 20)
    path = write("app.camkes", '#include "big.h"\n')
    error = error_of(path)
    assert "big.h is 52428800 bytes" in error.message
    assert error.location == Location(str(path), 1, 0)


def test_an_object_like_macro_bomb(write: WriteFile) -> None:
    lines = ["#define A0 x x x x x x x x x x"]
    lines += [f"#define A{i} " + " ".join([f"A{i - 1}"] * 10) for i in range(1, 10)]
    path = write("bomb.camkes", "\n".join([*lines, "A9", ""]))
    error = error_of(path)
    assert "macro bomb" in error.message
    assert error.location is not None and error.location.line == 11


def test_a_function_like_macro_bomb(write: WriteFile) -> None:
    lines = ["#define F0(x) x x"]
    lines += [f"#define F{i}(x) F{i - 1}(F{i - 1}(x))" for i in range(1, 40)]
    path = write("bomb.camkes", "\n".join([*lines, "F39(y)", ""]))
    assert "macro bomb" in error_of(path).message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('vm0.untyped_mmios = ["0x40000000:40000000000"];', "size of 2^40000000000 bytes"),
        ('vm0.untyped_mmios = ["0x40000000:-1"];', "size of 2^-1 bytes"),
        ('vm0.untyped_mmios = ["0x40000000:' + "9" * 5000 + '"];', "too long to be a C integer"),
        ('vm0.untyped_mmios = ["0x' + "f" * 20 + ':12"];', "does not fit in 64 bits"),
        ('vm0.mmios = ["0x9000000:0x1000:99"];', "size of 2^99 bytes"),
        ("vm0.simple_untyped" + "9" * 5000 + "_pool = 1;", "is impossible"),
        ("vm0.simple_untyped24_pool = 100000000;", "more untyped objects than sel4vmm plans"),
        ("vm0.num_vcpus = 1 << 100 << 100;", "does not fit in 64 bits"),
    ],
)
def test_numbers_are_bounded(write: WriteFile, line: str, message: str) -> None:
    path = write("numbers.camkes", VM.format(line=line))
    error = error_of(path)
    assert message in error.message
    assert error.location is not None and error.location.line == 4


FUZZ_EXAMPLES = int(os.environ.get("SEL4VMM_FUZZ_EXAMPLES", "150"))


def test_fuzzed_files_stay_within_time_and_memory_limits() -> None:
    # The child limits its own address space to 1 GiB and CPU time, and each example to
    # 10 s; this process only bounds the whole run.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.config.camkes.fuzz_child", str(FUZZ_EXAMPLES)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "camkes fuzz:" in result.stdout


def test_a_configuration_that_is_a_device_is_named_so(tmp_path: Path) -> None:
    from sel4vmm.config.load import load_system

    link = tmp_path / "zero.camkes"
    link.symlink_to("/dev/zero")
    with pytest.raises(Sel4VmmError, match="not a regular file"):
        load_system(link)
