"""Child processes that cannot outlive sel4vmm, hang it, or flood its memory.

sel4vmm runs outside tools (``dtc``, ``fdtoverlay``, QEMU) on files a user chose.  A DTS with
``/incbin/("/dev/zero")`` makes dtc read forever; run plainly, it hung sel4vmm and was left
running when sel4vmm was killed (issue 10 item 8).  So every child is started here:

* in its own process group, killed as a group on timeout, on error, on Ctrl-C;
* with ``PR_SET_PDEATHSIG`` = SIGKILL (Linux ``prctl``, through ctypes), so the kernel kills it
  if sel4vmm dies in any way, even by SIGKILL, where no Python handler runs;
* with an address-space limit (``RLIMIT_AS``) and a bound on the output kept;
* and, when the tool is not installed, one error naming the package that provides it.

:func:`run_tool` runs a tool to completion; :func:`popen_options` gives the same guarantees
(process group, death signal, optional memory limit) to a long-lived child such as QEMU.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sel4vmm.errors import Location, Sel4VmmError

#: ``PR_SET_PDEATHSIG`` from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_OUTPUT = 64 << 20
DEFAULT_MAX_MEMORY = 2 << 30


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def find_tool(name: str, *, package: str, purpose: str) -> str:
    """The full path of ``name`` on PATH, or an error saying which Debian package has it."""
    found = shutil.which(name)
    if found is None:
        raise Sel4VmmError(
            f"'{name}' is not installed; it is needed {purpose}",
            fix=f"install it (Debian/Ubuntu: apt-get install {package})",
        )
    return found


def die_with_parent(max_memory: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel for SIGKILL when sel4vmm dies, optionally with an
    address-space limit.

    ``prctl`` is looked up here, in the parent: the child between fork and exec should only
    make the call.  If the parent died before it ran, the child would never get the signal,
    so it exits at once rather than run as an orphan.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        if max_memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))

    return setup


def popen_options(*, max_memory: int | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`subprocess.Popen`: own process group, killed with
    sel4vmm (``PR_SET_PDEATHSIG``), optionally an address-space limit.  Stop such a child
    with :func:`kill_group`."""
    return {"start_new_session": True, "preexec_fn": die_with_parent(max_memory)}


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group and reap the child."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_tool(
    command: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = DEFAULT_MAX_OUTPUT,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    location: Location | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolResult:
    """Run ``command`` to completion within ``timeout`` seconds, keeping at most
    ``max_output`` bytes of each of stdout and stderr; otherwise kill it and raise a
    :class:`Sel4VmmError` at ``location`` saying what limit it hit."""
    name = os.path.basename(command[0])
    with tempfile.TemporaryFile(prefix="sel4vmm-stdin-") as stdin:
        if input is not None:
            stdin.write(input)
            stdin.seek(0)
        process = subprocess.Popen(
            list(command),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            **popen_options(max_memory=max_memory),
        )
    deadline = time.monotonic() + timeout
    try:
        outputs = _collect(process, name, timeout, deadline, max_output, location)
        try:
            returncode = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise _timed_out(name, timeout, location) from None
    finally:
        kill_group(process)
    return ToolResult(returncode, outputs[0], outputs[1])


def _timed_out(name: str, timeout: float, location: Location | None) -> Sel4VmmError:
    return Sel4VmmError(
        f"{name} did not finish within {timeout:g} s and was stopped",
        location=location,
        fix="check the input for something that never ends (such as /incbin/ of a device "
        "or a FIFO)",
    )


def _collect(
    process: subprocess.Popen[bytes],
    name: str,
    timeout: float,
    deadline: float,
    max_output: int,
    location: Location | None,
) -> tuple[bytes, bytes]:
    assert process.stdout is not None and process.stderr is not None
    buffers = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as selector:
        for stream in (process.stdout, process.stderr):
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timed_out(name, timeout, location)
            for key, _events in selector.select(remaining):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = buffers[key.fd]
                buffer += chunk
                if len(buffer) > max_output:
                    raise Sel4VmmError(
                        f"{name} wrote more than {max_output} bytes and was stopped",
                        location=location,
                        fix="check the input: its output should be far smaller",
                    )
    return bytes(buffers[process.stdout.fileno()]), bytes(buffers[process.stderr.fileno()])
