"""The endpoint gate's HTTP side: one base URL, a fixed request budget, and nothing that leaves the host.

:class:`Prober` sends every probe of a run. It builds each URL from the endpoint's base and a plain
path, refuses one that would reach another host, never follows a redirect, ignores proxy settings
from the environment, reads at most a bounded number of body bytes, and counts every request
against the budget the policy allows. Transport errors become the project's exceptions (an
unreachable endpoint is retryable, never a pass); their messages name the URL path, never a header.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_aisec.exceptions import InputDataError, ServiceUnavailableError


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL: scheme, host, port and the base path probes are appended to."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{self.base_path}{path}"


def parse_endpoint(url: str) -> Endpoint:
    """Check and split the endpoint URL.

    Raises:
        InputDataError: not ``http(s)://host[:port][/base]``, or it carries credentials, a query or
            a fragment.
    """
    text = str(url or "").strip()
    if len(text) > 2048 or any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise InputDataError("endpoint URL is empty, too long or has blanks / control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InputDataError("endpoint URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputDataError("endpoint URL must be http://host[:port][/path] or https://...")
    if parts.username is not None or parts.password is not None:
        raise InputDataError("endpoint URL must not carry credentials (give the token separately)")
    if parts.query or parts.fragment:
        raise InputDataError("endpoint URL must not have a query or a fragment")
    if "\\" in parts.path:
        raise InputDataError("endpoint URL path must not contain a backslash")
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        base_path=parts.path.rstrip("/"),
    )


@dataclass
class Response:
    """What a probe keeps of a response: the status, the headers (lower-case names) and a bounded body."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    truncated: bool = False


@dataclass
class Prober:
    """Sends the probes of one gate run to one endpoint, within a request budget.

    Attributes:
        endpoint: Where every request goes.
        max_requests: The budget; :meth:`reserve` refuses a plan that exceeds it.
        timeout: Seconds per request, in all (:mod:`~airflow_aisec.core.io.deadline`): not per read.
        verify: SSL context for ``https`` (None for ``http``).
        max_body: Most body bytes read from a response (unless a request asks for more).
    """

    endpoint: Endpoint
    max_requests: int
    timeout: float
    verify: ssl.SSLContext | None = None
    max_body: int = 1024 * 1024
    sent: int = 0
    reserved: int = 0
    _client: Any = field(default=None, repr=False)

    def reserve(self, count: int, what: str) -> None:
        """Book ``count`` requests for ``what`` before sending them; more than the budget is an input error."""
        if self.reserved + count > self.max_requests:
            raise InputDataError(
                f"endpoint check needs {self.reserved + count} requests ({what}), more than the policy's "
                f"max_requests {self.max_requests}"
            )
        self.reserved += count

    @contextlib.contextmanager
    def session(self) -> Iterator[Prober]:
        import httpx

        from airflow_aisec.core.io.deadline import bounded_transport

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        transport = bounded_transport(verify=self.verify if self.verify is not None else True, trust_env=False,
                                      limits=limits)
        with httpx.Client(transport=transport, follow_redirects=False, trust_env=False, timeout=self.timeout) as client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                content: bytes | None = None, read: int | None = None) -> Response:
        """Send one request to ``path`` on the endpoint (counted against the budget).

        Args:
            method: HTTP method.
            path: Plain path (``/...``), appended to the endpoint's base path.
            headers: Extra headers (the token, an ``Origin``...).
            content: Request body.
            read: Most body bytes to keep (default :attr:`max_body`; 0 reads none).

        Raises:
            InputDataError: the budget is spent, or the path would leave the endpoint's host.
            ServiceUnavailableError: the endpoint cannot be reached or timed out.
        """
        import httpx

        from airflow_aisec.core.io.deadline import DeadlineExceeded, within

        if self._client is None:
            raise RuntimeError("Prober.request outside session()")
        if self.sent >= self.max_requests:
            raise InputDataError(f"endpoint check would exceed the policy's max_requests {self.max_requests}")
        if not path.startswith("/") or path.startswith("//"):
            raise InputDataError(f"probe path {path[:80]!r} is not a plain path on the endpoint's host")
        url = httpx.URL(self.endpoint.url(path))
        if url.host != self.endpoint.host.lower() or (url.port or self._default_port) != self.endpoint.port:
            raise InputDataError(f"probe path {path[:80]!r} would leave the endpoint's host")
        self.sent += 1
        limit = self.max_body if read is None else read
        try:
            with within(self.timeout), \
                    self._client.stream(method, url, headers=dict(headers or {}), content=content) as resp:
                body = bytearray()
                truncated = False
                if limit > 0:
                    for chunk in resp.iter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            truncated = True
                            del body[limit:]
                            break
                return Response(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                                bytes(body), truncated)
        except (httpx.TimeoutException, DeadlineExceeded):
            raise ServiceUnavailableError(
                f"endpoint {self.endpoint.origin} timed out on {method} {path[:80]} (limit {self.timeout:g}s)") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                httpx.NetworkError) as exc:
            raise ServiceUnavailableError(
                f"endpoint {self.endpoint.origin} unreachable on {method} {path[:80]}: {type(exc).__name__}"
            ) from None
        except httpx.HTTPError as exc:
            raise InputDataError(
                f"request {method} {path[:80]} to the endpoint failed: {type(exc).__name__}") from None

    @property
    def _default_port(self) -> int:
        return 443 if self.endpoint.scheme == "https" else 80
