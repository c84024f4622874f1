"""The planner reads older-syntax files as written, with a warning; ``check`` stays strict."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.microkit import MicrokitTarget, check_file, read_microkit
from sel4vmm.config.microkit.legacy import read_as_written
from sel4vmm.config.microkit.versions import MicrokitVersion
from tests.helpers import REALWORLD

VIRTIO_SND = REALWORLD / "libvmm/virtio-snd/board/qemu_virt_aarch64/virtio-snd.system"
GPI = REALWORLD / "sel4-gpi/qemu_arm_virt/simple.system"


def test_a_1_4_file_is_planned_under_1_4_with_a_warning() -> None:
    result, used = read_as_written(VIRTIO_SND, MicrokitTarget())
    assert result.ok and used.microkit is MicrokitVersion.V1_4
    assert result.warnings[0].message.startswith(
        "the file uses Microkit 1.4's syntax (pp on a protection domain): planned under "
        "Microkit 1.4's rules"
    )
    assert not check_file(VIRTIO_SND, MicrokitTarget()).ok


def test_a_pre_release_vm_id_is_planned_as_its_single_vcpu() -> None:
    spec = read_microkit(GPI)
    assert [f.severity for f in spec.findings if f.severity == "error"] == []
    assert any("pre-release syntax" in f.message for f in spec.findings)
    result, used = read_as_written(GPI, MicrokitTarget())
    assert used.accept_vm_id and result.system is not None
    vms = [pd.virtual_machine for pd in result.system.protection_domains if pd.virtual_machine]
    assert [vcpu.id for vcpu in vms[0].vcpus] == [0]


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "bad.system"
    path.write_text('<system><protection_domain name="a" pp="maybe" /></system>')
    result, used = read_as_written(path, MicrokitTarget())
    (error,) = result.errors
    assert used.microkit is MicrokitVersion.V2 and not used.accept_vm_id
    assert error.tool_text.startswith("Error: invalid attribute 'pp'")
    # Under 1.4 this file would still fail (pp must be true/false): nothing accepted it.
    assert result.warnings == []


def test_an_explicit_version_is_never_second_guessed() -> None:
    target = MicrokitTarget(microkit=MicrokitVersion.V1_4)
    result, used = read_as_written(GPI, target)
    assert not result.ok and used is target
