"""The stable JSON form of a plan (``sel4vmm plan --json``).

Schema, version 1 (documented in README.md; fields are only ever added):

``{"schema": "sel4vmm-plan", "version": 1, "file", "format", "board": {"name", "arch",
"ram": [{"base", "size"}], "reserved_memory": [{"base", "size", "name"}]},
"findings": [FINDING], "vms": [{"name", "arch", "ram_base", "ram_size", "map": [{"start",
"end", "size", "kind", "name", "backing", "page_bits", "physical": [{"paddr", "size"}],
"location", "shared_with": [NAME]}], "resources": RESOURCES | null, "findings": [FINDING]}]}``

Added since: ``"shared_regions": [{"name", "size", "page_bits", "mappings": [{"owner",
"owner_kind": "vm"|"component", "addr" | null, "perms"}]}]``, ``"notifications": [{"name",
"sender", "sender_kind", "sender_id", "receiver", "receiver_kind", "receiver_id"}]`` and
``"doorbells": [{"vm", "layout": "microkit"|"camkes-crossvm", "base", "irq", "index",
"connection"}]`` at the top level.

FINDING is ``{"severity", "message", "location": {"path", "line", "column"} | null, "fix"}``;
RESOURCES is :meth:`sel4vmm.vm.ResourceReport.to_json`.  Addresses and sizes are integers.
"""

from __future__ import annotations

from typing import Any

from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location
from sel4vmm.plan.model import SystemPlan

SCHEMA = "sel4vmm-plan"
VERSION = 1


def location_json(location: Location | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {"path": location.path, "line": location.line, "column": location.column}


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "severity": finding.severity,
        "message": finding.message,
        "location": location_json(finding.location),
        "fix": finding.fix,
    }


def plan_json(plan: SystemPlan, vm_name: str | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready dict; ``vm_name`` keeps only that VM."""
    vms = [vm for vm in plan.vms if vm_name is None or vm.name == vm_name]
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "file": plan.path,
        "format": plan.format,
        "board": {
            "name": plan.board.name,
            "arch": plan.board.arch,
            "ram": [{"base": r.base, "size": r.size} for r in plan.board.ram],
            "reserved_memory": [
                {"base": r.base, "size": r.size, "name": r.name} for r in plan.board.reserved_memory
            ],
        },
        "findings": [finding_json(f) for f in plan.findings],
        "shared_regions": [
            {
                "name": r.name,
                "size": r.size,
                "page_bits": r.page_bits,
                "mappings": [
                    {"owner": m.owner, "owner_kind": m.owner_kind, "addr": m.addr, "perms": m.perms}
                    for m in r.mappings
                ],
            }
            for r in plan.shared_regions
        ],
        "notifications": [
            {
                "name": n.name,
                "sender": n.sender,
                "sender_kind": n.sender_kind,
                "sender_id": n.sender_id,
                "receiver": n.receiver,
                "receiver_kind": n.receiver_kind,
                "receiver_id": n.receiver_id,
            }
            for n in plan.notifications
        ],
        "doorbells": [
            {
                "vm": d.vm,
                "layout": d.layout,
                "base": d.base,
                "irq": d.irq,
                "index": d.index,
                "connection": d.connection,
            }
            for d in plan.doorbells
        ],
        "vms": [
            {
                "name": vm.name,
                "arch": vm.arch,
                "ram_base": vm.ram_base,
                "ram_size": vm.ram_size,
                "map": [
                    {
                        "start": e.start,
                        "end": e.end,
                        "size": e.size,
                        "kind": e.kind,
                        "name": e.name,
                        "backing": e.backing,
                        "page_bits": e.page_bits,
                        "physical": [{"paddr": p, "size": n} for p, n in e.physical],
                        "location": location_json(e.location),
                        "shared_with": list(e.shared_with),
                    }
                    for e in vm.entries
                ],
                "resources": vm.resources.to_json() if vm.resources is not None else None,
                "findings": [finding_json(f) for f in vm.findings],
            }
            for vm in vms
        ],
    }
