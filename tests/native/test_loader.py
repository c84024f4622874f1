"""sel4vmm.native: which path a run uses, and the switch that forces pure Python."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from sel4vmm import native


@pytest.mark.parametrize("name", native.EXTENSIONS)
def test_forcing_pure_python_hides_every_extension(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(native.PURE_PYTHON_VARIABLE, "1")
    assert native.extension(name) is None
    assert (
        native.describe(name) == "pure Python (SEL4VMM_PURE_PYTHON=1 forces the pure-Python path)"
    )


@pytest.mark.parametrize("name", native.EXTENSIONS)
def test_a_built_extension_is_used_and_named(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.PURE_PYTHON_VARIABLE, raising=False)
    if importlib.util.find_spec(f"sel4vmm.native.{name}") is None:
        assert native.extension(name) is None
        assert native.describe(name).startswith(
            f"pure Python (the C extension sel4vmm.native.{name} is not built"
        )
        pytest.skip(f"sel4vmm.native.{name} is not built here (no compiler at install time)")
    module = native.extension(name)
    assert module is not None and module.__name__ == f"sel4vmm.native.{name}"
    assert native.describe(name) == f"C extension (sel4vmm.native.{name})"


@pytest.mark.parametrize("value", ["", "0"])
def test_an_empty_or_zero_switch_does_not_force_python(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(native.PURE_PYTHON_VARIABLE, value)
    assert not native.pure_python_forced()


def test_unknown_extensions_are_refused() -> None:
    with pytest.raises(
        ValueError, match="unknown extension '_nope'; sel4vmm builds _kvmexit, _ucmmio"
    ):
        native.extension("_nope")


def test_the_package_imports_and_reports_without_the_extensions() -> None:
    """A process in which the compiled modules cannot be imported still runs sel4vmm."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('sel4vmm.native._'):\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from sel4vmm import native\n"
        "from sel4vmm.backends.kvm import run\n"
        "print(native.describe('_kvmexit'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != native.PURE_PYTHON_VARIABLE}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    assert out.startswith("pure Python (the C extension sel4vmm.native._kvmexit is not built")
