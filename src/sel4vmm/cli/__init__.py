"""The ``sel4vmm`` command line.

Each subcommand lives in its own module under :mod:`sel4vmm.cli` and exposes
``register(app)``; this module only assembles them and turns user errors into one clear
line on stderr with exit status 1 (never a traceback).
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from sel4vmm.errors import Sel4VmmError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "check",
    "plan",
    "untyped_mmios",
    "images",
    "run",
    "kvm",
)

app = typer.Typer(
    name="sel4vmm",
    help="seL4 VMM guest memory: check and plan configurations, place images, run guests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """seL4 VMM guest memory: check and plan configurations, place images, run guests."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"sel4vmm.cli.{_name}").register(app)

err_console = Console(stderr=True, highlight=False)


def main() -> None:
    """Entry point of the console script: run the app, report user errors cleanly."""
    try:
        app()
    except Sel4VmmError as error:
        where = f"{error.location}: " if error.location else ""
        err_console.print(
            f"{escape(where)}[bold red]error:[/] {escape(error.message)}", soft_wrap=True
        )
        if error.fix:
            err_console.print(f"    fix: {escape(error.fix)}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
