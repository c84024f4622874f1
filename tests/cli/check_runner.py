"""Running ``sel4vmm check`` in-process for the CLI tests (``test_check``,
``test_check_microkit``)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from sel4vmm.cli.check import register


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Force sub-command mode so ``check`` is addressed by name."""

    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(make_app(), ["check", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
