"""Optional compiled fast paths, each with a pure-Python fallback.

sel4vmm runs without a C compiler: ``pip install`` builds the extensions here when a
compiler and the Python headers are present (``setup.py`` declares them
``optional=True``) and skips them otherwise.  Callers ask this module for an extension and
get ``None`` when it is absent or when ``SEL4VMM_PURE_PYTHON=1`` forces the Python path
(the test suite runs both paths that way); :func:`describe` says which one a run uses, for
``sel4vmm kvm-info`` and run outcomes.

* ``_kvmexit`` — the KVM vCPU exit loop (``KVM_RUN`` and MMIO decoding in C; the fault
  dispatch stays the memory core's ``handle_fault``); used by ``backends/kvm/run.py``.
* ``_ucmmio`` — C functions with unicorn's MMIO callback signatures that call a per-page
  Python callable with a reused fault; see :mod:`sel4vmm.native.unicorn_mmio`.
* ``_ucmsr`` — a C register filter in front of unicorn's ``MSR`` hook, so only writes to
  the registers the VMM owns call Python; see :mod:`sel4vmm.backends.unicorn.msr_filter`.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: Set to ``1`` to run every pure-Python path even where the extension is built.
PURE_PYTHON_VARIABLE = "SEL4VMM_PURE_PYTHON"

#: The extensions setup.py builds, by their short names.
EXTENSIONS = ("_kvmexit", "_ucmmio", "_ucmsr")


def pure_python_forced() -> bool:
    """Whether ``SEL4VMM_PURE_PYTHON`` asks for the Python paths (any value but '' or 0)."""
    return os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0")


def import_error(name: str) -> str | None:
    """Why extension ``name`` cannot be used, or None when it can."""
    if name not in EXTENSIONS:
        raise ValueError(f"unknown extension {name!r}; sel4vmm builds {', '.join(EXTENSIONS)}")
    if pure_python_forced():
        return f"{PURE_PYTHON_VARIABLE}=1 forces the pure-Python path"
    try:
        importlib.import_module(f"{__name__}.{name}")
    except ImportError as error:
        return (
            f"the C extension {__name__}.{name} is not built ({error}); reinstall with a C "
            "compiler and the Python headers (./install.sh) to build it"
        )
    return None


def extension(name: str) -> ModuleType | None:
    """Extension ``name`` (e.g. ``"_kvmexit"``), or None for the pure-Python path."""
    if import_error(name) is not None:
        return None
    return importlib.import_module(f"{__name__}.{name}")


def describe(name: str) -> str:
    """One line: which path ``name`` stands for in this process, and why."""
    reason = import_error(name)
    if reason is None:
        return f"C extension ({__name__}.{name})"
    return f"pure Python ({reason})"
