"""A server that answers a byte at a time, each just inside any per-read timeout (``running_trickler``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

#: What is trickled after the request is read: a status line then header bytes, a whole head then body
#: bytes, or a TLS record header then its bytes (a handshake that never ends).
PREFIXES = {
    "headers": b"HTTP/1.1 200 OK\r\n",
    "body": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
    "tls": b"\x16\x03\x03\x40\x00",
}


@contextlib.contextmanager
def running_trickler(mode: str, *, interval: float = 0.25, count: int = 400) -> Iterator[int]:
    """Serve on a free loopback port (yielded): each connection gets ``PREFIXES[mode]``, then ``count``
    bytes ``interval`` seconds apart (100 s by default), then is closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if mode != "tls":
                conn.recv(65536)
            conn.sendall(PREFIXES[mode])
            for _ in range(count):
                if stop.wait(interval):
                    return
                conn.sendall(b"x" if mode != "tls" else b"\x00")

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                conn, _ = listener.accept()
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        time.sleep(0)
