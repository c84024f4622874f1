"""The code stays ruff- and mypy-clean: the suite fails when it does not."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_ruff_check_and_format() -> None:
    checked = run("ruff", "check", "src", "tests", "bench")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = run("ruff", "format", "--check", "src", "tests", "bench")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_mypy_strict() -> None:
    typed = run("mypy")
    assert typed.returncode == 0, typed.stdout + typed.stderr
