"""Unknown attributes on a VM instance: a typo of a known name is a warning naming it."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.camkes.attributes import KNOWN_VM_ATTRIBUTES, attribute_typo
from tests.config.camkes.conftest import WriteFile

APP = """
assembly {{ composition {{}} configuration {{
    vm0.vm_address_config = {{ "ram_base" : "0x40000000", "ram_size" : "0x10000000" }};
    vm0.simple_untyped24_pool = 17;
    vm0.{attribute} = {value};
}} }}
"""


def warnings_for(write: WriteFile, attribute: str, value: str = "18") -> list[str]:
    path: Path = write("app.camkes", APP.format(attribute=attribute, value=value))
    spec = read_camkes(path)
    return [
        f"{f.message} | {f.fix} | {f.location}"
        for f in spec.findings
        if f.severity == "warning" and "has no attribute" in f.message
    ]


def test_cnode_size_bit_is_a_typo_of_cnode_size_bits(write: WriteFile) -> None:
    (warning,) = warnings_for(write, "cnode_size_bit")
    assert "vm0 has no attribute 'cnode_size_bit'" in warning
    assert "did you mean vm0.cnode_size_bits?" in warning
    assert warning.endswith(":5:5")


def test_a_misspelt_pool_names_the_pool(write: WriteFile) -> None:
    (warning,) = warnings_for(write, "simple_untyped24_pools", "2")
    assert "did you mean vm0.simple_untyped24_pool?" in warning


def test_known_and_interface_attributes_are_quiet(write: WriteFile) -> None:
    for attribute in ("cnode_size_bits", "num_extra_frame_caps", "send1_id", "vswitch_layout"):
        assert warnings_for(write, attribute) == [], attribute
    assert attribute_typo("vm0", "recv1_shmem_size", None) is None
    assert attribute_typo("vm0", "simple_untyped12_pool", None) is None
    assert "cnode_size_bits" in KNOWN_VM_ATTRIBUTES


def test_real_configurations_have_no_typo_warnings(realworld: Path) -> None:
    for path in sorted(realworld.glob("camkes-vm-examples/**/*.camkes")):
        if path.name == "devices.camkes":
            continue
        for platform in sorted(p.name for p in path.parent.iterdir() if p.is_dir())[:1]:
            spec = read_camkes(path, defines={"PLAT": platform})
            typos = [f for f in spec.findings if "has no attribute" in f.message]
            assert typos == [], (path, typos)
