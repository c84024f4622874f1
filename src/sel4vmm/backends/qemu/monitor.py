"""Just enough QMP (QEMU's JSON machine protocol) to start a guest that QEMU holds paused.

QEMU is started with ``-S`` so that it initialises - process start, TCG, the board, the
mapping of sel4vmm's RAM file - *while* sel4vmm loads the images into that file; the CPU
runs only when loading is complete and ``cont`` is sent.  Without the overlap, sel4vmm's
load would add its whole duration to every boot; QEMU's own ``-kernel`` loader cannot
overlap at all.

The protocol (``docs/interop/qmp-spec.rst``): the server greets with ``{"QMP": ...}``, the
client must send ``qmp_capabilities`` before any other command, every command gets one
``{"return": ...}`` or ``{"error": {"class", "desc"}}``, and asynchronous
``{"event": ...}`` messages may arrive in between.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sel4vmm.errors import Sel4VmmError

#: How long QEMU may take to create its monitor socket and answer (it is paused, so this
#: is process start-up, not guest time).
CONNECT_TIMEOUT = 30.0


class QmpError(Sel4VmmError):
    """QEMU's monitor refused a command or went away."""


class QmpClient:
    """A connected, capability-negotiated QMP session on a Unix socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._reader = sock.makefile("rb")
        greeting = self._message()
        if "QMP" not in greeting:
            raise QmpError(f"QEMU's monitor did not greet with QMP: {greeting!r}")
        self.command("qmp_capabilities")

    @classmethod
    def connect(
        cls,
        path: Path,
        *,
        alive: Callable[[], bool],
        timeout: float = CONNECT_TIMEOUT,
    ) -> QmpClient:
        """Connect once QEMU has created ``path``; gives up if ``alive()`` turns false."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.1))
                sock.connect(str(path))
                return cls(sock)
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if not alive():
                    raise QmpError("QEMU exited before its monitor was ready") from None
                if time.monotonic() > deadline:
                    raise QmpError(
                        f"QEMU's monitor socket {path} did not appear within {timeout:g} s",
                        fix="check that the machine is not overloaded",
                    ) from None
                time.sleep(0.002)
            except BaseException:
                sock.close()
                raise

    def _message(self) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise QmpError("QEMU closed its monitor connection")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise QmpError(f"unexpected QMP message {message!r}")
        return message

    def command(self, name: str, **arguments: Any) -> Any:
        """Run one command and return its ``return`` value; events are skipped."""
        request: dict[str, Any] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self._socket.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                error = message["error"]
                raise QmpError(f"QEMU refused '{name}': {error.get('desc', error)}")

    def close(self) -> None:
        self._reader.close()
        self._socket.close()
