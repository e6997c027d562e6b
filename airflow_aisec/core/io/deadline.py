"""A request to a candidate endpoint ends on time, however slowly the endpoint answers.

Socket timeouts (httpx's, ``ssl``'s) bound each network operation, not a request: an endpoint that
sends a byte of its headers, body or TLS handshake just inside the timeout holds the request open for
as long as it likes (16 kB of headers at a byte per 9 s: 40 hours). The endpoint and red-team gates
probe endpoints that a pipeline's own author may control, so each of their requests runs
:func:`within` a time limit: its sockets are watched, and when the time is up they are shut down,
which ends any read or write blocked on them, and the request raises :class:`DeadlineExceeded`.

httpx opens its sockets inside the request; :func:`bounded_transport` gives it a network backend
that hands every socket it opens or uses to the request running in that thread.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from typing import Any


class DeadlineExceeded(TimeoutError):
    """The request was not over within its time limit."""


class _Watch:
    """The sockets of one request, and whether its time ran out."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()

    def add(self, sock: Any) -> None:
        if sock is None:
            return
        with self.lock:
            if any(s is sock for s in self.sockets):
                return
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError, ValueError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


@contextlib.contextmanager
def within(seconds: float, *sockets: socket.socket) -> Iterator[None]:
    """Run one request in this thread within ``seconds``: ``sockets``, and those the request opens
    through :func:`bounded_transport`, are shut down when the time is up.

    Raises:
        DeadlineExceeded: the time ran out (whatever the request itself raised then).
    """
    watch = _Watch()
    for sock in sockets:
        watch.add(sock)
    outer = getattr(_current, "watch", None)
    _current.watch = watch
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except BaseException:
        if watch.expired:
            raise DeadlineExceeded(f"not over within {seconds:g}s") from None
        raise
    finally:
        timer.cancel()
        _current.watch = outer
    if watch.expired:  # the answer came, but not in time (a connection it shut down is not reused)
        raise DeadlineExceeded(f"not over within {seconds:g}s")


def _watched(sock: Any) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


def bounded_transport(**kwargs: Any) -> Any:
    """An ``httpx.HTTPTransport(**kwargs)`` whose sockets the running :func:`within` watches."""
    import httpx

    transport = httpx.HTTPTransport(**kwargs)
    # httpx takes no network backend; its connection pool (httpcore's public ConnectionPool) does.
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpx's transport has no httpcore connection pool: deadlines cannot be kept")
    pool._network_backend = _backend_class()(pool._network_backend)
    return transport


@functools.cache
def _backend_class() -> type:
    """httpcore's network backend, with every stream's socket watched (built when first used: httpcore
    is imported then, not with this module)."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            _watched(inner.get_extra_info("socket"))

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            _watched(self._inner.get_extra_info("socket"))
            return self._inner.read(max_bytes, timeout)

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            _watched(self._inner.get_extra_info("socket"))
            self._inner.write(buffer, timeout)

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self, inner: Any) -> None:
            self._inner = inner if inner is not None else httpcore.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> Any:
            return Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            return Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return Backend
