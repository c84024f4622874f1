"""The README's Python example runs as written."""

from __future__ import annotations

import re

from sel4vmm.memory import FaultResult, MemoryFault
from tests.helpers import REPO


def test_readme_python_example_runs() -> None:
    text = (REPO / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    vm = namespace["vm"]
    fault = MemoryFault(0x8000000, 4, False)
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED  # type: ignore[attr-defined]
    assert fault.read_value == 0x43B
    assert vm.ram.read(0x40080000, 3) == b"..."  # type: ignore[attr-defined]
