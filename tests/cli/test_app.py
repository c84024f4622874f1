"""The ``sel4vmm`` command line as a whole: conventions (``-h``, ``--version``, plain
metavars) and lazy imports (a command imports only what it runs), issue 12."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sel4vmm import __version__
from sel4vmm.cli import COMMANDS, app, load_command
from tests.helpers import REALWORLD, REPO

QEMU_SIMPLE = REALWORLD / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
runner = CliRunner()


def sel4vmm(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, with this worktree's sources first."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), COLUMNS="100")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def imported_modules(*args: str) -> set[str]:
    """Every module ``python -m sel4vmm ARGS`` imported (``-X importtime``'s report)."""
    result = sel4vmm("-X", "importtime", "-m", "sel4vmm", *args)
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", result.stderr, re.M))


def test_version_and_short_help() -> None:
    assert runner.invoke(app, ["--version"]).output == f"sel4vmm {__version__}\n"
    short = runner.invoke(app, ["-h"])
    assert short.exit_code == 0 and short.output == runner.invoke(app, ["--help"]).output
    assert runner.invoke(app, ["check", "-h"]).exit_code == 0


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_metavars_not_python_types(command: str) -> None:
    output = runner.invoke(app, [command, "--help"], terminal_width=100).output
    assert "Usage:" in output
    for junk in ("<bool>", "<str>", "<path>", "<list[", "<int", "<float", "{"):
        assert junk not in output, (command, junk, output)


def test_root_help_lists_every_command_with_its_own_summary() -> None:
    output = runner.invoke(app, ["--help"], terminal_width=200).output
    for name, entry in COMMANDS.items():
        own = (load_command(name).help or "").strip().splitlines()[0]
        assert entry.summary == own
        assert re.search(rf"^\s+{re.escape(name)}\s+{re.escape(entry.summary)}$", output, re.M)


def test_check_usage_line() -> None:
    output = runner.invoke(app, ["check", "--help"]).output
    assert "Usage: sel4vmm check [OPTIONS] FILE..." in output or "check [OPTIONS] FILE..." in output
    assert "--board NAME" in output and "-D, --define NAME=VALUE" in output


def test_help_imports_no_command_module() -> None:
    modules = imported_modules("--help")
    assert "sel4vmm.cli" in modules
    assert not {m for m in modules if m.startswith("sel4vmm.cli.")}


def test_check_imports_only_the_checker() -> None:
    modules = imported_modules("check", str(QEMU_SIMPLE))
    assert "sel4vmm.config.microkit.check" in modules
    heavy = {
        m
        for m in modules
        if m.split(".")[0] in ("unicorn", "elftools", "pcpp", "libfdt")
        or m.startswith(("sel4vmm.backends", "sel4vmm.images", "sel4vmm.plan", "rich.table"))
    }
    assert heavy == set()


def test_user_error_is_one_located_line_and_exit_1(tmp_path: object) -> None:
    result = sel4vmm("-m", "sel4vmm", "plan", "/nonexistent/x.system")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("/nonexistent/x.system: error: cannot read")
