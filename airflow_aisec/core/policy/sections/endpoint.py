"""The ``endpoint`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.endpoint`).

What a model serving endpoint must show before it is promoted: TLS, authentication on every listed
path and every OpenAPI operation that declares security, a health path that answers the valid
token, no artefact or internal path served, no wildcard CORS with credentials, a rate limit and a
body size limit. Every request goes to the endpoint's own host, and their number is bounded.

Example::

    endpoint:
      require_tls: true
      min_tls_version: "1.2"
      auth:
        paths: ["POST /v1/predict", "/v1/models"]    # "[METHOD ]/path", GET by default
        header: Authorization
        scheme: Bearer
      health_path: /healthz
      openapi_path: /openapi.json
      forbidden_paths: [/model, /download, /files, /.git/, /debug, /docs]
      cors: {check: true}
      rate_limit: {path: /healthz, burst: 50}
      body_limit: {path: "POST /v1/predict", max_bytes: 1048576}
      max_requests: 300
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, StrictModel

#: HTTP methods a probe may use.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PROBE_RE = re.compile(r"^(?:(?P<method>[A-Z]+) +)?(?P<path>/[^\s]*)$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


def split_probe(value: str, default_method: str = "GET") -> tuple[str, str]:
    """``"POST /v1/predict"`` -> ``("POST", "/v1/predict")``; a bare path gets ``default_method``.

    Raises:
        ValueError: not ``[METHOD ]/path``, an unknown method, or a path that could leave the host
            (``//host``, a scheme, a backslash, control characters).
    """
    match = _PROBE_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected '[METHOD ]/path', got {value!r:.80}")
    method = match.group("method") or default_method
    path = match.group("path")
    if method not in METHODS:
        raise ValueError(f"unknown HTTP method {method!r:.20}; allowed: {list(METHODS)}")
    if path.startswith("//") or "\\" in path or any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        raise ValueError(f"path {path!r:.80} must be a plain path on the endpoint's own host")
    if len(path) > 2048:
        raise ValueError("path longer than 2048 characters")
    return method, path


def _probes(values: list[str]) -> list[str]:
    for value in values:
        split_probe(value)
    if len(set(values)) != len(values):
        raise ValueError("duplicate path")
    return values


class AuthCheck(StrictModel):
    """Authentication probes: without credentials and with a wrong token, every path must answer 401/403.

    Attributes:
        paths: ``"[METHOD ]/path"`` entries (``GET`` by default).
        header: Header that carries the token.
        scheme: Prefix of the header value (``Bearer`` gives ``Authorization: Bearer <token>``);
            empty for a bare key (``X-API-Key: <token>``).
    """

    paths: list[str] = Field(default_factory=list, max_length=200)
    header: str = "Authorization"
    scheme: str = Field(default="Bearer", max_length=50)

    @field_validator("paths")
    @classmethod
    def _valid_paths(cls, value: list[str]) -> list[str]:
        return _probes(value)

    @field_validator("header")
    @classmethod
    def _valid_header(cls, value: str) -> str:
        if not _HEADER_RE.match(value):
            raise ValueError("not a valid HTTP header name")
        return value

    @field_validator("scheme")
    @classmethod
    def _valid_scheme(cls, value: str) -> str:
        if value and not _HEADER_RE.match(value):
            raise ValueError("the scheme must be one token (e.g. 'Bearer') or empty")
        return value


class OpenApiCheck(StrictModel):
    """Which operations of the published OpenAPI document are probed.

    Attributes:
        methods: Operations with these methods are probed without credentials and with a wrong token
            (destructive methods are left out by default: the probe must never change a live service).
        max_operations: More operations declaring security than this is an input error (the request
            budget could not cover them, and a partial check must not pass).
        max_document_bytes: A larger document is an input error.
        path_parameter: Value put in every ``{parameter}`` of a path template.
    """

    methods: list[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]] = Field(
        default_factory=lambda: ["GET", "HEAD", "POST"], min_length=1)
    max_operations: int = Field(default=100, ge=1, le=10_000)
    max_document_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    path_parameter: str = Field(default="aisec-probe", pattern=r"^[A-Za-z0-9._~-]{1,64}$")


class CorsCheck(StrictModel):
    """CORS: a foreign origin must never be allowed together with credentials.

    Attributes:
        check: Run the check (a simple request and a preflight to the health path).
        probe_origin: Origin sent with the probes.
    """

    check: bool = True
    probe_origin: str = Field(default="https://aisec-cors-probe.invalid", pattern=r"^https?://[A-Za-z0-9.-]+$")


class RateLimitCheck(StrictModel):
    """A burst of up to ``burst`` requests (with the valid token) must see a 429.

    Attributes:
        path: ``"[METHOD ]/path"`` probed (default: the health path).
        burst: Most requests sent; no 429 among them is a finding.
    """

    path: str | None = None
    burst: int = Field(default=50, ge=1, le=10_000)

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str | None) -> str | None:
        if value is not None:
            split_probe(value)
        return value


class BodyLimitCheck(StrictModel):
    """A request body one byte over ``max_bytes`` (with the valid token) must get 413.

    Attributes:
        path: ``"[METHOD ]/path"`` probed (``POST`` when no method is given).
        max_bytes: The largest body the endpoint should accept.
    """

    path: str
    max_bytes: int = Field(default=1024 * 1024, ge=1, le=64 * 1024 * 1024)

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        split_probe(value)
        return value

    def probe(self) -> tuple[str, str]:
        return split_probe(self.path, default_method="POST")


class EndpointPolicy(GateSection):
    """Policy section ``endpoint``.

    Attributes:
        require_tls: Only ``https://`` endpoints; plain ``http://`` is a finding (and no token is sent).
        min_tls_version: Lowest TLS version the server may accept (a handshake one version lower
            must fail).
        ca_bundle: PEM file of the CAs that may sign the server certificate (relative to the policy
            file); the caller's ``ca_bundle`` (``--ca-bundle``) takes precedence; default: the
            system store.
        verify_hostname: The certificate must name the endpoint's host.
        auth: Authentication probes.
        health_path: ``"[METHOD ]/path"`` that must answer 2xx with the valid token.
        openapi_path: Where the OpenAPI (JSON) document is published, if anywhere.
        openapi: Which of its operations are probed.
        forbidden_paths: Paths that must not be served (2xx, with or without the token).
        cors: The CORS check.
        rate_limit: The rate-limit check (None: not checked).
        body_limit: The body-size check (None: not checked).
        timeout_seconds: Time limit of one request (or TLS handshake), in all (not per read).
        max_requests: Most requests of one run; a policy (or OpenAPI document) needing more is an
            input error before the first request.
        max_response_bytes: Most bytes read from one response (the OpenAPI document has its own limit).
    """

    require_tls: bool = True
    min_tls_version: Literal["1.2", "1.3"] = "1.2"
    ca_bundle: str | None = None
    verify_hostname: bool = True
    auth: AuthCheck = Field(default_factory=AuthCheck)
    health_path: str | None = None
    openapi_path: str | None = None
    openapi: OpenApiCheck = Field(default_factory=OpenApiCheck)
    forbidden_paths: list[str] = Field(
        default_factory=lambda: ["/model", "/download", "/files", "/.git/", "/debug"], max_length=200)
    cors: CorsCheck = Field(default_factory=CorsCheck)
    rate_limit: RateLimitCheck | None = None
    body_limit: BodyLimitCheck | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_requests: int = Field(default=300, ge=1, le=100_000)
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    @field_validator("health_path", "openapi_path")
    @classmethod
    def _valid_path(cls, value: str | None) -> str | None:
        if value is not None:
            split_probe(value)
        return value

    @field_validator("forbidden_paths")
    @classmethod
    def _valid_forbidden(cls, value: list[str]) -> list[str]:
        return _probes(value)

    @model_validator(mode="after")
    def _something_to_check(self) -> EndpointPolicy:
        if self.rate_limit is not None and self.rate_limit.path is None and self.health_path is None:
            raise ValueError("rate_limit needs a path (or a health_path to probe)")
        if self.cors.check and self.health_path is None and not self.auth.paths:
            raise ValueError("the CORS check needs a health_path or an auth path to probe")
        return self


__all__ = [
    "METHODS",
    "AuthCheck",
    "BodyLimitCheck",
    "CorsCheck",
    "EndpointPolicy",
    "OpenApiCheck",
    "RateLimitCheck",
    "split_probe",
]
