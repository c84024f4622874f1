"""``sel4vmm run SYSTEM`` with several VMs: run them together, one console per VM.

Every VM the system describes runs (or those named with ``--vm``, repeatable) on one
emulated board (:func:`sel4vmm.backends.unicorn.system_session.run_system`).  The
terminal (or ``--log FILE``) shows every VM's console, each line labelled ``[name]``;
with ``--out DIR`` each VM's console also goes to ``DIR/<vm>.log`` (with ``--json`` and
no ``--out``, to a new temporary directory, whose paths the document gives).  On a
terminal one VM has the focus and takes typed keys: the first at start, and Ctrl-A N
moves it to the next (stderr says which); Ctrl-A X stops every VM.

Exit status: 0 when every VM powered itself off (or printed ``--until``'s text, or the
run was stopped with Ctrl-A X), 1 when any VM had to be stopped, 130/143 after
SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.markup import escape

from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import read_system
from sel4vmm.backends.unicorn.system_session import (
    SystemRunResult,
    VmRunResult,
    chosen_vms,
    run_system,
)
from sel4vmm.cli.labelled_console import LabelledConsole
from sel4vmm.cli.options import parse_defines
from sel4vmm.cli.run import DEFAULT_TIMEOUT, EmulatorRequest, _stop_check
from sel4vmm.cli.terminal import SignalFlag, TerminalSession
from sel4vmm.errors import Sel4VmmError

#: Console lines shown for a VM that failed.
FAILURE_LINES = 25


def runs_several(request: EmulatorRequest) -> bool:
    """Whether a run takes the several-VM path: several ``--vm``, or none and a system
    of several VMs, or CAmkES ``-D``/``-I`` (which only this path reads)."""
    if request.system is None:
        return False
    if len(request.vms) > 1 or request.defines or request.includes:
        return True
    return not request.vms and len(read_system(request.system).vms) > 1


def _log_directory(out: Path | None, as_json: bool) -> Path | None:
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise Sel4VmmError(
                f"cannot make the console log directory {out}: {error.strerror}",
                fix="give --out a directory sel4vmm may write",
            ) from None
        return out
    if as_json:
        return Path(tempfile.mkdtemp(prefix="sel4vmm-consoles-"))
    return None


def _open(path: Path, what: str) -> BinaryIO:
    try:
        return path.open("wb")
    except OSError as error:
        raise Sel4VmmError(
            f"cannot write the {what} {path}: {error.strerror}",
            fix="give --log/--out a writable path",
        ) from None


def refuse_one_vm_options(request: EmulatorRequest) -> None:
    """The options that serve one VM's devices are refused for a run of several."""
    given = [
        name
        for name, used in (
            ("--smmu", request.smmu),
            ("--disk", request.virtio.disk is not None),
            ("--console virtio", request.virtio.console),
        )
        if used
    ]
    if given:
        raise Sel4VmmError(
            f"{', '.join(given)}: for a run of one VM, and this run has several",
            fix="choose one VM with --vm NAME, or drop the option",
        )


def run_several(request: EmulatorRequest, kernel: Path, linux: LinuxBootFiles) -> int:
    """Run the VMs, report on stderr (or ``--json`` on stdout); the exit status."""
    assert request.system is not None
    refuse_one_vm_options(request)
    system = request.system
    defines = parse_defines(request.defines)
    includes = tuple(request.includes)
    spec = read_system(system, defines=defines, include_dirs=includes)
    names = [vm.name for vm in chosen_vms(spec, request.vms)]
    directory = _log_directory(request.out, request.as_json)
    err = Console(stderr=True, highlight=False)
    interactive = sys.stdin.isatty()
    timeout = request.timeout
    if timeout is None and not interactive:
        timeout = DEFAULT_TIMEOUT
    signals = SignalFlag()
    logs: dict[str, Path] = {}
    log = request.log
    if request.as_json and log is None:
        # stdout is the document's: the labelled console goes to a file, as for one VM.
        log = Path(tempfile.mkstemp(prefix="sel4vmm-console-", suffix=".log")[1])
    with ExitStack() as files:
        whole = files.enter_context(_open(log, "console log")) if log is not None else None
        stream = whole if whole is not None else sys.stdout.buffer

        def write(data: bytes) -> None:
            stream.write(data)
            stream.flush()

        labelled = LabelledConsole(write)
        per_vm: dict[str, BinaryIO] = {}
        if directory is not None:
            for name in names:
                logs[name] = directory / f"{name}.log"
                per_vm[name] = files.enter_context(_open(logs[name], "console log"))

        def consoles(name: str) -> Callable[[bytes], None]:
            shown = labelled.sink(name) if len(names) > 1 else write
            own = per_vm.get(name)

            def sink(data: bytes) -> None:
                shown(data)
                if own is not None:
                    own.write(data)
                    own.flush()

            return sink

        def on_focus(name: str) -> None:
            err.print(f"\nsel4vmm: keys go to {escape(name)} (Ctrl-A N: next VM)")

        try:
            terminal = TerminalSession(names, on_focus) if interactive else None
            with terminal if terminal is not None else nullcontext():
                if terminal is not None and len(names) > 1:
                    on_focus(names[0])
                result = run_system(
                    system,
                    kernel,
                    vm_names=request.vms or None,
                    consoles=consoles,
                    one_to_one=not request.pools,
                    ram_size=request.ram_size,
                    num_vcpus=request.vcpus,
                    console_input=request.send.encode() if request.send else b"",
                    wait_for_input=terminal.wait if terminal else None,
                    input_source=terminal.take_routed if terminal else None,
                    time_limit=timeout,
                    linux=linux,
                    until=request.until,
                    stop_check=_stop_check(signals, terminal, timeout),
                    defines=defines,
                    include_dirs=includes,
                    net=request.virtio.net,
                    net_required=request.virtio.net_required,
                    spec=spec,
                )
        finally:
            signals.restore()
    status = exit_status(result, signals)
    if request.as_json:
        document = run_document(result, system, kernel, logs, log, status, timeout)
        print(json.dumps(document, indent=2))
    else:
        report(err, result)
    return status


def exit_status(result: SystemRunResult, signals: SignalFlag) -> int:
    reasons = {vm.stop_reason for vm in result.vms}
    if StopReason.INTERRUPTED in reasons and signals.received is not None:
        return 128 + signals.received
    if all(vm.ok or vm.stop_reason is StopReason.ESCAPE for vm in result.vms):
        return 0
    return 1


def report(err: Console, result: SystemRunResult) -> None:
    """One line per VM: how it ended; for a VM that failed, why (diagnostic or panic)."""
    for vm in result.vms:
        name = escape(vm.layout.name)
        for warning in vm.warnings:
            err.print(f"[yellow]warning:[/] {name}: {escape(warning)}", soft_wrap=True)
        reason = vm.stop_reason
        if vm.network is not None:
            net = vm.network
            err.print(
                f"{name}: virtio-net MAC {net['mac']} on {net['backend']}, "
                f"{net['frames_sent']} frames sent, {net['frames_received']} received"
            )
        if vm.ok or reason is StopReason.ESCAPE:
            err.print(f"[green]{name}[/]: {escape(reason.value)}")
            continue
        err.print(f"[bold red]{name}: stopped:[/] {escape(reason.value)}", soft_wrap=True)
        if reason is StopReason.KERNEL_PANIC:
            for line in vm.last_lines[-FAILURE_LINES:]:
                err.print(f"  {escape(line)}", soft_wrap=True)
        elif vm.diagnostic is not None and reason is not StopReason.TIME_LIMIT:
            err.print(escape(str(vm.diagnostic)), soft_wrap=True)
    stats = result.statistics
    err.print(
        f"{len(result.vms)} VMs: {stats.rounds} rounds, {stats.switches} switches, "
        f"{result.guest_seconds:.3f} guest s in {result.host_seconds:.3f} host s"
    )


def _vm_document(vm: VmRunResult, log: Path | None) -> dict[str, object]:
    stats = vm.statistics
    return {
        "name": vm.layout.name,
        "exit_reason": vm.stop_reason.name.lower(),
        "message": vm.stop_reason.value,
        "ok": vm.ok,
        "console_log": str(log) if log is not None else None,
        "guest_seconds": round(vm.guest_seconds, 3),
        "run_seconds": round(vm.run_seconds, 3),
        "instructions_counted": stats.instructions_counted,
        "slices": stats.slices,
        "rounds": vm.rounds,
        "irqs_delivered": stats.irqs_delivered,
        "faults_handled": vm.faults_handled,
        "vcpus": vm.layout.num_vcpus,
        "one_to_one": vm.layout.one_to_one,
        "schedule": {
            "priority": vm.schedule.priority,
            "budget_us": vm.schedule.budget_us,
            "period_us": vm.schedule.period,
            "budget_exhausted": vm.throttles,
        },
        "diagnostic": str(vm.diagnostic) if vm.diagnostic is not None else None,
        "warnings": vm.warnings,
        "network": vm.network,
        "last_lines": vm.last_lines if not vm.ok else [],
    }


def run_document(
    result: SystemRunResult,
    system: Path,
    kernel: Path,
    logs: dict[str, Path],
    log: Path | None,
    status: int,
    timeout: float | None,
) -> dict[str, object]:
    """``run --json`` of several VMs: a stable document (``schema:
    "sel4vmm-run-system"``; fields only added)."""
    stats = result.statistics
    return {
        "schema": "sel4vmm-run-system",
        "version": 1,
        "backend": "emulator",
        "system": str(system),
        "kernel": str(kernel),
        "exit_status": status,
        "console_log": str(log) if log is not None else None,
        "timeout": timeout,
        "vms": [_vm_document(vm, logs.get(vm.layout.name)) for vm in result.vms],
        "totals": {
            "vms": len(result.vms),
            "host_seconds": round(result.host_seconds, 3),
            "guest_seconds": round(result.guest_seconds, 3),
            "guest_seconds_skipped_idle": round(result.skipped_seconds, 3),
            "rounds": stats.rounds,
            "switches": stats.switches,
            "instructions_counted": sum(v.statistics.instructions_counted for v in result.vms),
            "slices": sum(v.statistics.slices for v in result.vms),
        },
    }
