"""Shared fixtures: the real-world files beside the repository, and small seL4 platforms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

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


# CI runs every property test with a fixed seed, so a green run stays green; developers
# get fresh random examples each run (set HYPOTHESIS_PROFILE=ci to reproduce CI).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
