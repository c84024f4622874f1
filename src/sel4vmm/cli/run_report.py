"""What a finished one-VM emulator run tells its user: exit status, summary, JSON.

``sel4vmm run`` on the emulator ends in one of three ways for the user: an exit status
(the contract scripts rely on), a few lines on stderr saying why the guest stopped (a
panic's last console lines, the diagnostic, the time limit that ended it), or with
``--json`` the ``sel4vmm-run`` document.  They are kept apart from the code that boots
and streams the guest (:mod:`sel4vmm.cli.run`) because they only read a
:class:`RunResult`; a run of several VMs has its own in :mod:`sel4vmm.cli.run_several`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.session import RunResult
from sel4vmm.cli.terminal import SignalFlag

#: Console lines shown after a panic.
PANIC_LINES = 25


def exit_status(result: RunResult, signals: SignalFlag) -> int:
    """0 for a guest that powered off (or ``--until``, Ctrl-A X), 128+N after signal N, else 1."""
    if result.stop_reason is StopReason.INTERRUPTED and signals.received is not None:
        return 128 + signals.received
    if result.ok or result.stop_reason is StopReason.ESCAPE:
        return 0
    return 1


def report(result: RunResult, status: int, timeout: float | None, default: bool) -> None:
    """The run's end on stderr: warnings, the network card, why the guest stopped."""
    err = Console(stderr=True, highlight=False)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if result.network is not None:
        net = result.network
        err.print(
            f"virtio-net {escape(str(net['node']))}: MAC {net['mac']} on {net['backend']}, "
            f"{net['frames_sent']} frames sent, {net['frames_received']} received"
        )
    reason = result.stop_reason
    if status == 0:
        err.print(f"[green]{escape(result.layout.name)}[/]: {escape(reason.value)}")
        return
    if reason is StopReason.KERNEL_PANIC:
        err.print(f"[bold red]{escape(result.layout.name)}: the guest kernel panicked[/]")
        for line in result.last_lines[-PANIC_LINES:]:
            err.print(f"  {escape(line)}", soft_wrap=True)
        return
    err.print(f"[bold red]stopped:[/] {escape(reason.value)}", soft_wrap=True)
    if reason is StopReason.TIME_LIMIT and timeout is not None:
        which = "the default --timeout" if default else "--timeout"
        err.print(f"after {timeout:g} s ({which}; pass --timeout SECONDS to change it)")
    if result.diagnostic is not None and reason is not StopReason.TIME_LIMIT:
        err.print(escape(str(result.diagnostic)), soft_wrap=True)


def run_document(
    result: RunResult, kernel: Path, log: Path | None, status: int, timeout: float | None
) -> dict[str, object]:
    """``run --json``: a stable document (``schema: "sel4vmm-run"``; fields only added)."""
    stats = result.statistics
    return {
        "schema": "sel4vmm-run",
        "version": 1,
        "backend": "emulator",
        "vm": result.layout.name,
        "kernel": str(kernel),
        "linux": result.linux,
        "vcpus": result.layout.num_vcpus,
        "mmio_path": result.mmio_path,
        "exit_status": status,
        "exit_reason": result.stop_reason.name.lower(),
        "message": result.stop_reason.value,
        "console_log": str(log) if log is not None else None,
        "timeout": timeout,
        "timings": {
            "host_seconds": round(result.host_seconds, 3),
            "guest_seconds": round(result.guest_seconds, 3),
            "guest_seconds_skipped_idle": round(result.skipped_seconds, 3),
        },
        "guest": {
            "instructions_counted": stats.instructions_counted,
            "slices": stats.slices,
            "irqs_delivered": stats.irqs_delivered,
            "idle_skips": stats.idle_skips,
            "faults_handled": result.faults_handled,
        },
        "diagnostic": str(result.diagnostic) if result.diagnostic is not None else None,
        "warnings": result.warnings,
        "network": result.network,
        "last_lines": result.last_lines if status != 0 else [],
    }
