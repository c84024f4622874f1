"""The preprocessing step: real cpp semantics, bundled headers, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.camkes.lexer import tokenize
from sel4vmm.config.camkes.parse import parse_tokens
from sel4vmm.config.camkes.preprocess import BUNDLED_INCLUDE_DIR, display_path, preprocess
from sel4vmm.errors import Location, Sel4VmmError

from .conftest import WriteFile


def run(path: Path, defines: dict[str, str] | None = None) -> str:
    return preprocess(
        path,
        path.read_text(),
        include_dirs=[path.parent, BUNDLED_INCLUDE_DIR],
        defines=defines or {},
    )


def test_var_stringize_and_vm_macros_expand_as_camkes_vm_defines_them(write: WriteFile) -> None:
    path = write(
        "vm.camkes",
        """#include <configurations/vm.h>
#define VM_RAM_BASE 0x40000000
assembly {
    composition { VM_COMPOSITION_DEF(3) }
    configuration {
        VM_CONFIGURATION_DEF(3)
        vm3.vm_address_config = { "ram_base" : VAR_STRINGIZE(VM_RAM_BASE) };
    }
}
""",
    )
    parsed = parse_tokens(tokenize(run(path), str(path)), str(path))
    assert [(i.type_name, i.name) for i in parsed.instances] == [("VM", "vm3")]
    settings = {s.attribute: s for s in parsed.settings if s.instance == "vm3"}
    assert settings["heap_size"].value.value == 0x300000  # type: ignore[union-attr]
    address = settings["vm_address_config"]
    assert address.location == Location(str(path), 7, 9)
    assert '"0x40000000"' in run(path)


def test_virtual_serial_macro_calls_each_vm(write: WriteFile) -> None:
    path = write(
        "serial.camkes",
        "#include <configurations/vm.h>\n"
        "assembly { configuration { VM_VIRTUAL_SERIAL_CONFIGURATION_DEF(0,1,2) } }\n",
    )
    parsed = parse_tokens(tokenize(run(path), str(path)), str(path))
    shmem = {s.instance for s in parsed.settings if s.attribute == "batch_shmem_size"}
    assert shmem == {"vm0", "vm1", "vm2"}


def test_defines_and_conditionals(write: WriteFile) -> None:
    path = write("c.camkes", "#if FEATURE\nyes\n#else\nno\n#endif\n")
    assert "yes" in run(path, {"FEATURE": "1"})
    assert "no" in run(path, {})


def test_locations_survive_includes(write: WriteFile) -> None:
    write("inc/part.h", "\n\nvm0.from_header = 1;\n")
    path = write("main.camkes", '#include "inc/part.h"\n\nvm0.after = 2;\n')
    tokens = tokenize(run(path), str(path))
    header = next(t for t in tokens if t.value == "from_header")
    after = next(t for t in tokens if t.value == "after")
    assert header.location.path.endswith("part.h") and header.location.line == 3
    assert after.location == Location(str(path), 3, 5)


def test_missing_include_names_file_line_and_fix(write: WriteFile) -> None:
    path = write("m.camkes", "\n#include <plat/missing.h>\n")
    with pytest.raises(Sel4VmmError, match=r"missing\.h") as caught:
        run(path)
    assert caught.value.location == Location(str(path), 2, 0)
    assert caught.value.fix is not None and "--include" in caught.value.fix


def test_error_directive_is_an_error(write: WriteFile) -> None:
    path = write("e.camkes", "#error pick a platform\n")
    with pytest.raises(Sel4VmmError, match="pick a platform"):
        run(path)


def test_bad_define_name_is_refused(write: WriteFile) -> None:
    path = write("d.camkes", "x\n")
    with pytest.raises(Sel4VmmError, match="not a macro name"):
        run(path, {"1BAD": "1"})


def test_bundled_files_are_named_as_sel4vmm_files() -> None:
    assert (
        display_path(BUNDLED_INCLUDE_DIR / "VM_Arm" / "VM.camkes") == "<sel4vmm>/VM_Arm/VM.camkes"
    )
    assert display_path(Path("user/devices.camkes")) == "user/devices.camkes"
