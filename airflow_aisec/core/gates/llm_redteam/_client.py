"""Talking to the candidate model: an OpenAI-compatible ``/v1/chat/completions`` endpoint (httpx) or an
in-process Python callable (``module:function``).

The HTTP target refuses plain ``http://`` unless the policy allows it (or allows it on loopback), refuses
credentials in the URL, never follows redirects (a redirect could downgrade to http or carry the
token elsewhere), sends the token only as ``Authorization: Bearer``, reads at most
``max_response_bytes`` of a response, and names the endpoint in results without its query string.
Errors are split into *fatal* (the endpoint is unreachable, refuses the token, or is not a chat
endpoint: the run stops) and *per request* (timeout, 5xx, 429, unreadable body: that probe is not
answered).
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.policy.sections.llm_redteam import LlmRedTeamPolicy
from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InputDataError,
    ServiceUnavailableError,
)

_CALLABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
Messages = list[dict[str, str]]


class ProbeError(Exception):
    """One request failed (timeout, server error, unreadable body): the probe is not answered."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def chat_url(endpoint: str, section: LlmRedTeamPolicy) -> tuple[str, str]:
    """The chat-completions URL of ``endpoint`` and its printable form (no query string).

    Raises:
        ConfigurationError: not http(s), credentials in the URL, or plain http where the policy forbids it.
    """
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise ConfigurationError("the model endpoint is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError("the model endpoint must be an http(s) URL or a 'module:function' callable")
    if parts.username or parts.password:
        raise ConfigurationError("the model endpoint URL must not carry credentials (use a token)")
    if parts.scheme == "http" and section.require_https and not (section.allow_http_loopback and is_loopback(host)):
        where = "on loopback only" if section.allow_http_loopback else "never"
        raise ConfigurationError(f"the policy requires https for the model endpoint (plain http: {where})")
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path = path + "/chat/completions" if path.endswith("/v1") else path + "/v1/chat/completions"
    url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    shown = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return url, shown


class HttpTarget:
    """An OpenAI-compatible chat endpoint.

    Args:
        url: Full ``.../chat/completions`` URL (from :func:`chat_url`).
        section: Bounds (timeouts, response size, max_tokens, temperature).
        model: ``model`` sent with each request.
        token: Bearer token, or None.
    """

    def __init__(self, url: str, section: LlmRedTeamPolicy, *, model: str | None, token: str | None) -> None:
        import httpx

        self.url = url
        self.section = section
        self.model = model
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        from airflow_aisec.core.io.deadline import bounded_transport

        limits = httpx.Limits(max_connections=section.concurrency, max_keepalive_connections=section.concurrency)
        self._client = httpx.Client(headers=headers, transport=bounded_transport(limits=limits, trust_env=False),
                                    follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __call__(self, messages: Messages, timeout: float) -> str:
        import httpx

        from airflow_aisec.core.io.deadline import DeadlineExceeded, within

        body: dict[str, Any] = {"messages": messages, "max_tokens": self.section.max_tokens,
                                "temperature": self.section.temperature, "stream": False}
        if self.model:
            body["model"] = self.model
        try:
            with within(timeout), \
                    self._client.stream("POST", self.url, json=body, timeout=httpx.Timeout(timeout)) as response:
                status = response.status_code
                if status in (401, 403):
                    raise AccessDeniedError(f"the model endpoint refused the request (HTTP {status})",
                                            rule="llm_redteam.access_denied")
                if status == 429 or status >= 500 or status == 408:
                    raise ProbeError(f"HTTP {status}")
                if 300 <= status < 400:
                    raise ConfigurationError(f"the model endpoint redirects (HTTP {status}); give its final URL")
                if status >= 400:
                    raise InputDataError(f"the model endpoint rejected the request (HTTP {status}): is it an "
                                         "OpenAI-compatible /v1/chat/completions endpoint, and the model name right?")
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > self.section.max_response_bytes:
                        raise ProbeError("response larger than max_response_bytes")
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise ServiceUnavailableError(f"the model endpoint is unreachable ({type(exc).__name__})") from None
        except (httpx.TimeoutException, DeadlineExceeded):
            raise ProbeError("timeout") from None
        except httpx.HTTPError as exc:
            raise ProbeError(type(exc).__name__) from None
        return _content(bytes(raw))


def _content(raw: bytes) -> str:
    try:
        doc = loads_json(raw)
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProbeError("not a chat-completions response") from None
    if content is None:
        return ""
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


class CallableTarget:
    """A Python callable ``fn(messages[, model=...]) -> str`` (an in-process model)."""

    def __init__(self, fn: Callable[..., Any], *, model: str | None) -> None:
        self.fn = fn
        self.model = model
        try:
            params = inspect.signature(fn).parameters
            self._takes_model = "model" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            self._takes_model = False

    def close(self) -> None:
        pass

    def __call__(self, messages: Messages, timeout: float) -> str:
        try:
            reply = self.fn(messages, model=self.model) if self._takes_model else self.fn(messages)
        except Exception as exc:  # noqa: BLE001 - the model's own failure: this probe is not answered
            raise ProbeError(type(exc).__name__) from None
        return "" if reply is None else str(reply)


def load_callable(reference: str) -> Callable[..., Any]:
    """Import ``module:function``.

    Raises:
        ConfigurationError: the module or the function does not exist, or is not callable.
    """
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigurationError(f"cannot import the model module '{module_name}'") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigurationError(f"'{reference}' is not a callable")
    return fn


def make_target(endpoint: str | Callable[..., Any], section: LlmRedTeamPolicy, *, model: str | None,
                token: str | None) -> tuple[Any, str]:
    """The target for ``endpoint`` and how results name it."""
    if callable(endpoint):
        name = f"{getattr(endpoint, '__module__', '?')}:{getattr(endpoint, '__qualname__', '?')}"
        return CallableTarget(endpoint, model=model), f"python:{name}"
    endpoint = str(endpoint).strip()
    if _CALLABLE.match(endpoint):
        return CallableTarget(load_callable(endpoint), model=model), f"python:{endpoint}"
    url, shown = chat_url(endpoint, section)
    return HttpTarget(url, section, model=model, token=token), shown
