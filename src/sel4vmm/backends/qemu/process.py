"""A QEMU child process: its serial console streamed, its lifetime bounded.

Whatever happens in the caller - a timeout, a loading error, Ctrl-C - leaving the
``with QemuProcess(...)`` block stops QEMU (SIGTERM, then SIGKILL), so no emulator
outlives the run that started it.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass

from sel4vmm.backends.qemu.console import ConsoleStream
from sel4vmm.closing import Closing

#: QEMU's stderr kept for an error message (the last lines say what went wrong).
STDERR_LIMIT = 64 << 10
#: Seconds QEMU gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE = 2.0


@dataclass(frozen=True)
class ProcessOutcome:
    """How a QEMU process ended: exit status (None if it was stopped) and its stderr."""

    exit_code: int | None
    timed_out: bool
    stderr: str


class QemuProcess(Closing):
    """``qemu-system-*`` with stdout (the guest's serial port) and stderr piped to us."""

    def __init__(self, command: list[str], *, interactive: bool = False) -> None:
        self.command = command
        self.started = time.monotonic()
        self._process = subprocess.Popen(
            command,
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def stream(self, console: ConsoleStream, timeout: float | None = None) -> ProcessOutcome:
        """Copy the console until QEMU exits, or until ``timeout`` seconds after it was
        started (then it is stopped and the outcome says ``timed_out``)."""
        process = self._process
        assert process.stdout is not None and process.stderr is not None
        deadline = None if timeout is None else self.started + timeout
        stderr = bytearray()
        timed_out = False
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            selector.register(process.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    timed_out = True
                    break
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
        if timed_out:
            self.stop()
        else:
            # Both pipes closed: QEMU is exiting; reap it rather than signal it.
            process.wait()
        return ProcessOutcome(
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            stderr=stderr.decode("utf-8", "replace"),
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
                process.wait()
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
