"""``run --net``: one definition, emulator only, a Linux-guest option, a fixed set of peers."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from sel4vmm.cli import run as run_command


def make_app() -> typer.Typer:
    app = typer.Typer()
    run_command.register(app)

    @app.callback()
    def _root() -> None:
        """Keep ``run`` a subcommand."""

    return app


def test_net_is_an_emulator_option() -> None:
    result = CliRunner().invoke(
        make_app(), ["run", "--backend", "qemu", "--kernel", "x", "--net", "loopback"]
    )
    assert result.exit_code == 1
    assert "--net: only the emulator backend has this option" in str(result.exception)


def test_net_for_a_bare_metal_guest_is_refused() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--net", "switch"])
    assert result.exit_code == 1
    assert "is a raw binary: --net switch is for a Linux Image" in str(result.exception)


def test_net_takes_only_its_three_peers_and_says_them_in_help() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--net", "tap"])
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for '--net'" in words
    assert "'tap' is not one of 'none', 'loopback', 'switch'" in words
    help_text = CliRunner().invoke(make_app(), ["run", "--help"]).output
    assert "--net" in help_text and "none|loopback|switch" in help_text
