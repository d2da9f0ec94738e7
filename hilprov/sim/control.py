"""Control channel of a virtual board running in another process (``hilprov sim``).

The board process listens on a Unix socket; each request is one JSON line and gets one JSON line
back. :class:`SimBoardClient` speaks it with the same `flash` / `reset` / `console_port` calls as an
in-process :class:`~hilprov.sim.board.VirtualBoard`, so a flow can drive either.

Requests: ``{"cmd": "flash", "image": PATH, "erase": BOOL}``, ``{"cmd": "reset"}``,
``{"cmd": "status"}``, ``{"cmd": "stop"}``. Replies: ``{"ok": true, ...}`` or
``{"ok": false, "error": MESSAGE}``.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hilprov.errors import BoardError, HilprovError
from hilprov.sim.board import VirtualBoard

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


class ControlServer:
    """Serves one VirtualBoard on a Unix socket; `on_stop` is called for a "stop" request."""

    def __init__(self, board: VirtualBoard, path: Path,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.board = board
        self.path = Path(path)
        self.on_stop = on_stop
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
        except OSError as err:
            sock.close()
            raise BoardError(f"virtual board control socket {self.path}: {err.strerror}") from None
        os.chmod(self.path, 0o600)
        sock.listen(4)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="sim-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(30.0)
                try:
                    self._session(conn)
                except (OSError, ValueError) as err:
                    log.warning("control connection failed: %s", err)

    def _session(self, conn: socket.socket) -> None:
        stream = conn.makefile("rwb")
        while not self._stop.is_set():
            line = stream.readline(MAX_REQUEST)
            if not line:
                return
            reply = self._handle(line)
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
            if reply.get("stopping"):
                if self.on_stop is not None:
                    self.on_stop()
                return

    def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            cmd = request.get("cmd")
            if cmd == "flash":
                self.board.flash(Path(str(request["image"])), erase=bool(request.get("erase")))
                return {"ok": True, "image": self.board.image}
            if cmd == "reset":
                self.board.reset()
                return {"ok": True}
            if cmd == "status":
                return {"ok": True, "port": self.board.port, "image": self.board.image,
                        "provisioned": self.board.provisioned,
                        "endpoint": self.board.endpoint_name, "stats": self.board.stats}
            if cmd == "stop":
                return {"ok": True, "stopping": True}
            return {"ok": False, "error": f"unknown command {cmd!r} (flash, reset, status, stop)"}
        except HilprovError as err:
            return {"ok": False, "error": str(err)}
        except (ValueError, KeyError, TypeError) as err:
            return {"ok": False, "error": f"bad control request: {err}"}


class SimBoardClient:
    """Drives a virtual board in another process through its control socket."""

    def __init__(self, control_path: Path | str, *, timeout: float = 30.0) -> None:
        self.control_path = Path(control_path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SimBoardClient({str(self.control_path)!r})"

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request/reply; BoardError if the board is unreachable or refuses."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.control_path))
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = sock.makefile("rb").readline(MAX_REQUEST)
        except OSError as err:
            raise BoardError(f"virtual board control socket {self.control_path}: "
                             f"{err.strerror or err} (is the board process running?)") from None
        if not reply:
            raise BoardError(f"virtual board at {self.control_path} closed the connection "
                             f"without answering {request.get('cmd')!r}")
        answer = json.loads(reply)
        if not answer.get("ok"):
            raise BoardError(str(answer.get("error", "virtual board refused the request")))
        return answer

    def flash(self, image: Path, erase: bool = True) -> None:
        self.call({"cmd": "flash", "image": str(Path(image).resolve()), "erase": bool(erase)})

    def reset(self) -> None:
        self.call({"cmd": "reset"})

    def status(self) -> dict[str, Any]:
        return self.call({"cmd": "status"})

    def console_port(self) -> str:
        return str(self.status()["port"])

    def stop(self) -> None:
        self.call({"cmd": "stop"})
