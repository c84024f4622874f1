"""``sel4vmm plan`` says what is shared, in the table and in the JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sel4vmm.cli import app

runner = CliRunner()
TWO_VMS = Path(__file__).parents[1] / "config/microkit/data/shared_two_vms.system"


def test_the_table_names_who_else_maps_a_region() -> None:
    result = runner.invoke(app, ["plan", str(TWO_VMS)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "shared_buf (shared with beta)" in result.output
    assert "shared_buf (shared with alpha)" in result.output
    assert "mailbox (shared with VMM_ALPHA)" in result.output


def test_the_json_document_lists_shared_regions_notifications_and_doorbells() -> None:
    result = runner.invoke(app, ["plan", str(TWO_VMS), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    shared = {r["name"]: r for r in document["shared_regions"]}
    assert [(m["owner"], m["owner_kind"], m["addr"]) for m in shared["shared_buf"]["mappings"]] == [
        ("alpha", "vm", 0x2000_0000),
        ("beta", "vm", 0x2800_0000),
    ]
    assert [
        (n["sender"], n["sender_id"], n["receiver"], n["receiver_id"])
        for n in document["notifications"]
    ] == [
        ("alpha", 1, "beta", 2),
        ("beta", 2, "alpha", 1),
    ]
    assert [(d["vm"], d["base"], d["irq"]) for d in document["doorbells"]] == [
        ("alpha", 0x0B10_0000, 82),
        ("beta", 0x0B10_0000, 82),
    ]


def test_camkes_cross_vm_connector_plan_json(realworld: Path) -> None:
    path = realworld / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"
    result = runner.invoke(app, ["plan", str(path), "-D", "PLAT=qemu-arm-virt", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [r["name"] for r in document["shared_regions"]] == ["cross_vm_conn_0", "cross_vm_conn_1"]
    assert [(d["connection"], d["base"]) for d in document["doorbells"]] == [
        ("cross_vm_conn_0", 0xDF00_0000),
        ("cross_vm_conn_1", 0xDF00_2000),
    ]
