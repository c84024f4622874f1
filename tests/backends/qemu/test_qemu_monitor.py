"""The QMP client against a scripted server speaking QEMU's protocol."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sel4vmm.backends.qemu.monitor import QmpClient, QmpError

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}


class ScriptedQmp:
    """Accepts one connection, greets, then answers each request from ``replies``."""

    def __init__(self, path: Path, replies: dict[str, list[dict[str, object]]]) -> None:
        self.requests: list[dict[str, object]] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._replies = replies
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection, connection.makefile("rwb") as stream:
            stream.write(json.dumps(GREETING).encode() + b"\r\n")
            stream.flush()
            for line in stream:
                request = json.loads(line)
                self.requests.append(request)
                for reply in self._replies.get(request["execute"], [{"return": {}}]):
                    stream.write(json.dumps(reply).encode() + b"\r\n")
                stream.flush()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "qmp.sock"


def test_negotiates_capabilities_then_runs_commands_skipping_events(socket_path: Path) -> None:
    event = {"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}
    server = ScriptedQmp(socket_path, {"cont": [event, {"return": {}}]})
    client = QmpClient.connect(socket_path, alive=lambda: True)
    assert client.command("cont") == {}
    client.close()
    server.close()
    assert [r["execute"] for r in server.requests] == ["qmp_capabilities", "cont"]


def test_refused_command_is_an_error_with_qemus_description(socket_path: Path) -> None:
    error = {"error": {"class": "GenericError", "desc": "not paused"}}
    server = ScriptedQmp(socket_path, {"cont": [error]})
    client = QmpClient.connect(socket_path, alive=lambda: True)
    with pytest.raises(QmpError, match="QEMU refused 'cont': not paused"):
        client.command("cont")
    client.close()
    server.close()


def test_waits_for_the_socket_but_not_for_a_dead_qemu(socket_path: Path) -> None:
    with pytest.raises(QmpError, match="exited before its monitor was ready"):
        QmpClient.connect(socket_path, alive=lambda: False)


def test_gives_up_after_the_timeout(socket_path: Path) -> None:
    with pytest.raises(QmpError, match="did not appear"):
        QmpClient.connect(socket_path, alive=lambda: True, timeout=0.05)
