"""A server that keeps every request's raw head and body bytes, and answers a fixed response."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

OK_JSON = b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}]}'


@dataclass
class Captured:
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


@dataclass
class RawCaptureServer:
    """Listens on 127.0.0.1 (port 0); one thread per connection, keep-alive honoured."""

    status: int = 200
    response_body: bytes = OK_JSON
    content_type: str = "application/json"
    every_other: tuple[str, bytes] | None = None
    """(Content-Type, body) of the 2nd, 4th, ... response, when given."""
    every_other_status: int | None = None
    requests: list[Captured] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(Captured(head, b"").header("content-length") or 0)
                while len(buffer) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append(Captured(head, body))
                    second = len(self.requests) % 2 == 0
                content_type, answer = self.content_type, self.response_body
                if second and self.every_other is not None:
                    content_type, answer = self.every_other
                status = self.status
                if second and self.every_other_status is not None:
                    status = self.every_other_status
                reason = b"OK" if status < 400 else b"Error"
                conn.sendall(
                    b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, reason, content_type.encode(), len(answer), answer)
                )
