"""A QEMU child process: its serial console streamed, its lifetime bounded.

Whatever happens in the caller - a timeout, a loading error, Ctrl-C, SIGTERM - leaving the
``with QemuProcess(...)`` block stops QEMU (SIGTERM, then SIGKILL, every wait bounded), and
if sel4vmm itself is killed the kernel kills QEMU (``PR_SET_PDEATHSIG``), so no emulator
outlives the run that started it.  A non-interactive QEMU runs in its own process group:
a terminal's Ctrl-C reaches sel4vmm, which stops QEMU itself and cleans up.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from sel4vmm.backends.qemu.console import ConsoleStream
from sel4vmm.closing import Closing
from sel4vmm.subprocesses import die_with_parent

#: QEMU's stderr kept for an error message (the last lines say what went wrong).
STDERR_LIMIT = 64 << 10
#: Seconds QEMU gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE = 2.0
#: Seconds to reap QEMU once it was killed or closed its output (it never takes long).
REAP_TIMEOUT = 10.0
#: Seconds between progress reports while the guest runs.
PROGRESS_INTERVAL = 15.0

#: ``progress(seconds_running, console_bytes)``, called every :data:`PROGRESS_INTERVAL`.
ProgressReport = Callable[[float, int], None]


@dataclass(frozen=True)
class ProcessOutcome:
    """How a QEMU process ended: exit status (None if it was stopped) and its stderr."""

    exit_code: int | None
    timed_out: bool
    stderr: str
    #: The console printed the ``until`` text and QEMU was stopped for it.
    until_seen: bool = False


class QemuProcess(Closing):
    """``qemu-system-*`` with stdout (the guest's serial port) and stderr piped to us."""

    def __init__(self, command: list[str], *, interactive: bool = False) -> None:
        self.command = command
        self.started = time.monotonic()
        # An interactive QEMU shares the terminal (it puts it in raw mode, so Ctrl-C goes
        # to the guest); any other gets its own process group, so signals come to us.
        self._process = subprocess.Popen(
            command,
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent(),
            process_group=None if interactive else 0,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def stream(
        self,
        console: ConsoleStream,
        timeout: float | None = None,
        progress: ProgressReport | None = None,
    ) -> ProcessOutcome:
        """Copy the console until QEMU exits, the console shows ``console.until`` (QEMU is
        stopped, the outcome says ``until_seen``), or ``timeout`` seconds after QEMU started
        (it is stopped and the outcome says ``timed_out``).  ``progress`` is called every
        :data:`PROGRESS_INTERVAL` seconds meanwhile."""
        process = self._process
        assert process.stdout is not None and process.stderr is not None
        deadline = None if timeout is None else self.started + timeout
        next_report = time.monotonic() + PROGRESS_INTERVAL
        stderr = bytearray()
        timed_out = False
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            selector.register(process.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map() and not console.seen_until:
                now = time.monotonic()
                if deadline is not None and deadline <= now:
                    timed_out = True
                    break
                if progress is not None and now >= next_report:
                    progress(now - self.started, console.bytes_seen)
                    next_report = now + PROGRESS_INTERVAL
                wait = next_report - now if progress is not None else None
                if deadline is not None:
                    wait = min(deadline - now, wait if wait is not None else deadline - now)
                for key, _events in selector.select(wait):
                    data = os.read(key.fd, 1 << 16)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif key.data == "stdout":
                        console.feed(data)
                    else:
                        stderr += data
                        del stderr[:-STDERR_LIMIT]
        console.finish()
        stopped = timed_out or console.seen_until
        if stopped:
            self.stop()
        else:
            # Both pipes closed: QEMU is exiting; reap it rather than signal it.
            try:
                process.wait(REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.stop()
        return ProcessOutcome(
            exit_code=None if stopped else process.returncode,
            timed_out=timed_out,
            stderr=stderr.decode("utf-8", "replace"),
            until_seen=console.seen_until,
        )

    def close(self) -> None:
        """Leaving a ``with`` block stops QEMU."""
        self.stop()

    def stop(self) -> None:
        """Stop QEMU if it still runs and close the pipes; safe to call twice."""
        process = self._process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(TERMINATE_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(REAP_TIMEOUT)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def run_process(
    command: list[str],
    console: ConsoleStream,
    *,
    timeout: float | None = None,
    interactive: bool = False,
) -> ProcessOutcome:
    """Run a QEMU command line to its end with its serial console on ``console``."""
    with QemuProcess(command, interactive=interactive) as process:
        return process.stream(console, timeout)
