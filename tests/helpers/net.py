"""Loopback networking for the test services: free ports and waiting for an HTTP endpoint to answer."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (also used as a reliably unreachable endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, ok=(200, 429, 472, 473, 501, 503)) -> None:
    """Poll ``url`` until it answers with one of the ``ok`` statuses.

    Raises:
        RuntimeError: not up within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # loopback only
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s: {last}")


def require_listening(host: str, port: int, timeout: float = 5.0) -> None:
    """Fail (never skip) when nothing accepts TCP connections at ``host:port``."""
    with socket.create_connection((host, port), timeout=timeout):
        pass
