"""A webhook sink: a real HTTP server on loopback that records every POST (path, headers, JSON body)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class WebhookSink:
    url: str
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)

    def bodies(self) -> list[Any]:
        return [r["json"] for r in self.requests]


@contextlib.contextmanager
def running_sink() -> Iterator[WebhookSink]:
    """A sink on a free loopback port, for the duration of the block."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            received.append({"path": self.path, "headers": dict(self.headers), "raw": raw.decode("utf-8", "replace"),
                             "json": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield WebhookSink(url=f"http://127.0.0.1:{port}", port=port, requests=received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
