"""The data flows one way (ARCHITECTURE.md): configuration -> plan -> seL4 objects -> guest
address space -> devices -> backend.  No layer imports one that comes after it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sel4vmm"

#: For each layer, the layers it must never import.
FORBIDDEN = {
    "sel4": {"memory", "vm", "config", "plan", "images", "backends", "cli", "demo", "devices"},
    "memory": {"vm", "config", "plan", "images", "backends", "cli", "demo", "devices"},
    "config": {"sel4", "memory", "vm", "plan", "images", "backends", "cli", "demo"},
    "plan": {"images", "backends", "cli", "demo"},
    "images": {"plan", "backends", "cli", "demo"},
    # Device models sit between the address space and the backends.
    "devices": {"config", "plan", "backends", "cli", "demo"},
    "backends": {"cli", "demo"},
    # Compiled fast paths serve the backends; they know faults, nothing above them.
    "native": {"vm", "config", "plan", "images", "backends", "cli", "demo"},
}


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sel4vmm" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def test_vm_does_not_import_devices() -> None:
    assert "devices" not in imported_layers(PACKAGE / "vm.py")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_later_one(layer: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_layers(path) & FORBIDDEN[layer])
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        if imported_layers(path) & FORBIDDEN[layer]
    }
    assert offenders == {}
