"""The ``sel4vmm`` command line.

Each subcommand lives in its own module under :mod:`sel4vmm.cli` and exposes
``register(app)``.  The modules are imported only when their command runs (or its help is
shown): ``sel4vmm check`` never imports unicorn, KVM, QEMU or the image readers, and
``sel4vmm --help`` lists the commands from :data:`COMMANDS` without importing any of them.
User errors become one clear line on stderr with exit status 1 (never a traceback).
"""

from __future__ import annotations

import signal
import sys
from typing import Any, NamedTuple

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from sel4vmm import __version__
from sel4vmm.errors import Sel4VmmError


class CommandEntry(NamedTuple):
    """Where a command is implemented and the one-line help ``--help`` lists for it."""

    module: str
    summary: str


#: Every command, in the order ``--help`` lists them; ``tests/cli/test_app.py`` checks that
#: each summary is the first line of the command's own help.
COMMANDS: dict[str, CommandEntry] = {
    "demo": CommandEntry(
        "demo",
        "Plan seed 000's 512 MiB CAmkES guest, write and read its RAM, show map and resources.",
    ),
    "check": CommandEntry("check", "Check configuration files; exit 1 if any has an error."),
    "plan": CommandEntry(
        "plan",
        "Plan a configuration: guest-physical map, seL4 objects, CSpace, findings with fixes.",
    ),
    "initramfs": CommandEntry(
        "images", "Build a newc initramfs (with /dev/console) from busybox and/or a directory."
    ),
    "untyped-mmios": CommandEntry(
        "untyped_mmios",
        "Print the untyped_mmios lines that back guest RAM 1:1, and the pool size left.",
    ),
    "images": CommandEntry("images", "Place and check a VM's kernel, initrd and device tree."),
    "run": CommandEntry(
        "run",
        "Boot a guest and stream its console; exit 0 when it powers off, 1 if it was stopped.",
    ),
    "kvm-boot": CommandEntry(
        "kvm", "Boot an x86_64 Linux kernel on KVM with its console on standard output."
    ),
    "kvm-info": CommandEntry(
        "kvm", "Say whether KVM guests can run here, and how fast guest kernel mode is."
    ),
}


class _PlainArgument(TyperArgument):
    """An argument shown as ``FILE...`` in usage and help, not ``{files}`` / ``<list[Path]>``."""

    def _display(self) -> str:
        name = self.metavar or (self.name or "").upper()
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name

    def _usage_display_name(self) -> str:
        return self._display() if self.required else f"[{self._display()}]"

    def _rich_display_name(self) -> str:
        return self._display()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _PlainOption(TyperOption):
    """An option shown with its metavar (``--board NAME``), never a Python type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return self.metavar or (self.name or "value").upper()


def plain_help(command: Any) -> Any:
    """Give ``command``'s parameters the plain display above; returns the command."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    return command


_loaded: dict[str, Any] = {}


def load_command(name: str) -> Any:
    """The click command ``name``, importing its module on first use."""
    if name not in _loaded:
        import importlib

        module = importlib.import_module(f"sel4vmm.cli.{COMMANDS[name].module}")
        holder = typer.Typer(rich_markup_mode=None, add_completion=False)
        module.register(holder)

        @holder.callback()
        def _holder() -> None:
            """Keeps typer in multi-command mode so commands are found by name."""

        group = typer.main.get_command(holder)
        for command_name, command in group.commands.items():  # type: ignore[attr-defined]
            _loaded[command_name] = plain_help(command)
    return _loaded[name]


class LazyCommands(TyperGroup):
    """The root group: commands come from :data:`COMMANDS`, imported when used."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a stop by signal exits as a shell reports it (130 SIGINT, 143
        SIGTERM) after the command has cleaned up (typer would say 130 for both)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as stop:
            raise typer.Exit(_interrupted(stop)) from None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, entry.summary) for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="sel4vmm",
    cls=LazyCommands,
    help="seL4 VMM guest memory: check and plan configurations, place images, run guests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sel4vmm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print sel4vmm's version and exit.",
    ),
) -> None:
    """seL4 VMM guest memory: check and plan configurations, place images, run guests."""


def print_error(error: Sel4VmmError) -> None:
    """``file:line:col: error: message`` and ``    fix: ...`` on stderr."""
    from rich.console import Console
    from rich.markup import escape

    err_console = Console(stderr=True, highlight=False)
    where = f"{error.location}: " if error.location else ""
    err_console.print(f"{escape(where)}[bold red]error:[/] {escape(error.message)}", soft_wrap=True)
    if error.fix:
        err_console.print(f"    fix: {escape(error.fix)}", soft_wrap=True)


def _interrupted(stop: KeyboardInterrupt) -> int:
    """Say that the run was interrupted; the exit status for the signal."""
    # A backend that turns SIGTERM into KeyboardInterrupt says which signal it was.
    signum = int(getattr(stop, "signum", signal.SIGINT))
    print(f"interrupted ({signal.Signals(signum).name}): stopped cleanly", file=sys.stderr)
    return 128 + signum


def main() -> None:
    """Entry point of the console script: run the app, report user errors cleanly."""
    try:
        app()
    except Sel4VmmError as error:
        print_error(error)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        sys.exit(_interrupted(stop))
