"""The checker never crashes: any input gives a verdict, never a traceback.

Two generators: random edits of real system descriptions (near-valid files hit the deep
checks), and random element trees built from the format's own vocabulary (odd attribute
values, wrong nesting, extreme numbers).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sel4vmm.config.microkit import MicrokitTarget, check_text
from sel4vmm.config.microkit.to_spec import to_system_spec
from sel4vmm.config.microkit.versions import MicrokitVersion
from tests.helpers import REALWORLD
from tests.images.limits import bounded

SOURCES = sorted(
    [
        *REALWORLD.glob("microkit-sdf-tests/*.system"),
        *REALWORLD.glob("libvmm/**/*.system"),
        *REALWORLD.glob("microkit-examples/*.system"),
    ]
)
TEXTS = [path.read_text(encoding="utf-8") for path in SOURCES]
TARGETS = [
    MicrokitTarget(arch="aarch64"),
    MicrokitTarget(arch="x86_64"),
    MicrokitTarget(arch="riscv64"),
    MicrokitTarget(arch="aarch64", hypervisor=False, num_cores=4, iommu=False),
    MicrokitTarget(arch="aarch64", microkit=MicrokitVersion.V1_4),
    MicrokitTarget(arch="aarch64", arm_smc=False, arm_pa_size_bits=44, num_cores=4),
]

TAGS = [
    "system", "memory_region", "protection_domain", "program_image", "map", "irq", "ioport",
    "setvar", "virtual_machine", "vcpu", "channel", "end", "cspace", "cap_tcb", "cap_sc",
    "cap_vspace", "io_address_space", "iomap", "domains", "domain", "domain_schedule",
    "schedule_entry", "schedule_end_marker",
]  # fmt: skip
ATTRIBUTES = [
    "name", "size", "page_size", "phys_addr", "prefill_path", "prefill_bootinfo", "priority",
    "budget", "period", "passive", "stack_size", "smc", "cpu", "domain", "fpu", "id",
    "setvar_id", "path", "mr", "vaddr", "perms", "cached", "setvar_vaddr", "setvar_size",
    "setvar_prefill_size", "irq", "trigger", "pin", "ioapic", "polarity", "vector", "pcidev",
    "handle", "addr", "symbol", "region_paddr", "pd", "pp", "notify", "slot", "peripheral_id",
    "domain_id", "iovaddr", "duration", "start_index", "index_shift",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        ["0", "1", "62", "-1", "0x1000", "0x200000", "0x200001", "0xffffffffffffffff",
         "0x1_0000_0000_0000_0000", "true", "false", "rwx", "w", "a", "b", "vmm", "0:3.0",
         "1:2.3", "ff:1f.7", "100 us", "0 ticks", "level", "high", "x86_tsc_freq", ""]
    ),
    st.text(alphabet="0123456789abcdefx_-+: .rw", max_size=12),
)  # fmt: skip


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    names = draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=5, unique=True))
    attributes = "".join(f' {name}="{draw(VALUES).replace(chr(34), "")}"' for name in names)
    children = draw(st.lists(elements(depth + 1), max_size=4)) if depth < 3 else []  # bounded depth
    return f"<{tag}{attributes}>{''.join(children)}</{tag}>"


@st.composite
def systems(draw: st.DrawFn) -> str:
    children = draw(st.lists(elements(1), min_size=0, max_size=8))
    return "<system>" + "".join(children) + "</system>"


@st.composite
def mutated_real_files(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if action == "delete":
            length = draw(st.integers(min_value=1, max_value=40))
            text = text[:position] + text[position + length :]
        elif action == "insert":
            snippet = draw(
                st.one_of(
                    st.sampled_from(['"', "<", ">", "/>", "&", "0x", "_", ' id="1"', "\n"]),
                    VALUES,
                )
            )
            text = text[:position] + snippet + text[position:]
        else:
            end = min(len(text), position + draw(st.integers(min_value=1, max_value=200)))
            text = text[:end] + text[position:end] + text[end:]
    return text


def assert_verdict(text: str, target: MicrokitTarget) -> None:
    """A verdict -- never a traceback, a hang (30 s) or a memory blow-up (256 MiB)."""
    with bounded(seconds=30):
        result = check_text(text, "fuzz.system", target)
        spec = to_system_spec(result, target) if result.ok else None
    if result.ok:
        assert result.system is not None
        assert spec is not None
        assert all(vm.name for vm in spec.vms)
    else:
        (error,) = result.errors
        assert error.message and error.tool_text
        assert error.location is None or error.location.path == "fuzz.system"


#: Examples per property; raise it (e.g. SEL4VMM_FUZZ_EXAMPLES=5000) for a long soak.
FUZZ_EXAMPLES = int(os.environ.get("SEL4VMM_FUZZ_EXAMPLES", "250"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(mutated_real_files(), st.sampled_from(TARGETS))
def test_mutated_real_files_never_crash(text: str, target: MicrokitTarget) -> None:
    assert_verdict(text, target)


@FUZZ
@given(systems(), st.sampled_from(TARGETS))
def test_random_element_trees_never_crash(text: str, target: MicrokitTarget) -> None:
    assert_verdict(text, target)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    assert_verdict(text, TARGETS[0])


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    depth = 5000
    text = "<system>" + '<protection_domain name="p" id="1">' * depth
    text += "</protection_domain>" * depth + "</system>"
    result = check_text(text, "fuzz.system")
    (error,) = result.errors
    assert "nested" in error.message
