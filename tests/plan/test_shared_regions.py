"""A shared region is one allocation mapped several times: the plan shows the same frames."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.load import load_system
from sel4vmm.plan.builder import plan_system
from sel4vmm.plan.document import plan_json
from tests.helpers import REALWORLD

TWO_VMS = Path(__file__).parents[1] / "config/microkit/data/shared_two_vms.system"
CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


def _entry(document: dict, vm: str, name: str) -> dict:  # type: ignore[type-arg]
    vms = {v["name"]: v for v in document["vms"]}
    return next(e for e in vms[vm]["map"] if e["name"] == name)


def test_two_vms_map_the_same_frames_of_a_shared_region() -> None:
    plan = plan_system(load_system(TWO_VMS))
    assert not plan.has_errors, plan.all_findings()
    document = plan_json(plan)
    alpha, beta = _entry(document, "alpha", "shared_buf"), _entry(document, "beta", "shared_buf")
    assert (alpha["start"], beta["start"]) == (0x2000_0000, 0x2800_0000)
    assert alpha["physical"] == beta["physical"]
    assert sum(p["size"] for p in alpha["physical"]) == 0x2000
    assert (alpha["shared_with"], beta["shared_with"]) == (["beta"], ["alpha"])
    # A region each VM has alone says so.
    assert _entry(document, "alpha", "ram_alpha")["shared_with"] == []


def test_the_second_vm_holds_cap_copies_not_new_frames() -> None:
    plan = plan_system(load_system(TWO_VMS))
    alpha, beta = (vm.vm for vm in plan.vms)
    assert alpha is not None and beta is not None
    in_alpha = alpha.frames_of(alpha.memory.find(0x2000_0000))  # type: ignore[arg-type]
    in_beta = beta.frames_of(beta.memory.find(0x2800_0000))  # type: ignore[arg-type]
    assert [r.paddr for r in in_alpha] == [r.paddr for r in in_beta]
    # Only alpha's allocator retyped them (its untyped watermark moved); beta copied caps.
    assert not any(run is mine for run in in_alpha for mine in beta.allocator.runs)
    assert any(run is mine for run in in_alpha for mine in alpha.allocator.runs)


def test_a_region_shared_with_the_vmm_says_so() -> None:
    document = plan_json(plan_system(load_system(TWO_VMS)))
    assert _entry(document, "alpha", "mailbox")["shared_with"] == ["VMM_ALPHA"]
    doorbell = _entry(document, "alpha", "doorbell")
    assert (doorbell["start"], doorbell["kind"]) == (0x0B10_0000, "emulated")


def test_camkes_cross_vm_dataports_in_the_plan() -> None:
    plan = plan_system(load_system(CROSS, defines={"PLAT": "qemu-arm-virt"}))
    document = plan_json(plan)
    dataport = _entry(document, "vm0", "cross_vm_conn_0")
    assert (dataport["start"], dataport["size"], dataport["kind"]) == (0xDF00_1000, 4096, "shared")
    assert dataport["shared_with"] == ["crossvm_init"]
    assert len(dataport["physical"]) == 1
    events = _entry(document, "vm0", "cross_vm_conn_0 events")
    assert (events["start"], events["backing"]) == (0xDF00_0000, "VMM emulation (faults)")


def test_guest_ram_two_vms_map_is_allocated_once(tmp_path: Path) -> None:
    text = TWO_VMS.read_text().replace(
        '<map mr="ram_beta" vaddr="0x40000000" perms="rwx" />',
        '<map mr="ram_alpha" vaddr="0x40000000" perms="rwx" />',
    )
    path = tmp_path / "shared_ram.system"
    path.write_text(text)
    document = plan_json(plan_system(load_system(path)))
    alpha, beta = _entry(document, "alpha", "ram_alpha"), _entry(document, "beta", "ram_alpha")
    assert alpha["kind"] == beta["kind"] == "ram"
    assert alpha["physical"] == beta["physical"]
    assert beta["shared_with"] == ["VMM_ALPHA", "alpha"]
