"""Shared fixtures: the real-world files beside the repository, and small seL4 platforms."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.sel4.platform import Sel4Platform
from tests.helpers import REALWORLD, make_platform


@pytest.fixture
def realworld() -> Path:
    """``../shared/realworld`` beside the repository (CI has it there)."""
    if not REALWORLD.is_dir():
        pytest.skip(f"the real-world files are not at {REALWORLD} (../shared/realworld)")
    return REALWORLD


@pytest.fixture
def platform() -> Sel4Platform:
    return make_platform()
