"""Fixtures for the unicorn backend: the two emulated-MMIO paths (sel4vmm.native)."""

from __future__ import annotations

import pytest

from sel4vmm.native import PURE_PYTHON_VARIABLE, import_error


@pytest.fixture(params=["c", "python"])
def mmio_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with fault pages on the C MMIO trampoline and on the binding's Python
    callbacks; answers the prefix of :func:`sel4vmm.native.describe` for that path."""
    if request.param == "python":
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
        return "pure Python"
    monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    reason = import_error("_ucmmio")
    if reason is not None:
        pytest.skip(f"the C MMIO trampoline is not available: {reason}")
    return "C extension"
