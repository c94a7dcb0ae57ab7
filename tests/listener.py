"""A TCP listener that records every connection and never answers: a service that must
not be contacted (bad input is refused before any connection), or one that hangs."""
from __future__ import annotations

import socket
import threading


class RecordingListener:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            self._held.append(conn)  # accepted, never answered

    def reset(self) -> int:
        count, self.connections = self.connections, 0
        for conn in self._held:
            conn.close()
        self._held.clear()
        return count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.reset()
        self._sock.close()
