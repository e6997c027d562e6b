"""The HTTP probes of the endpoint gate, each its own rule; findings name paths and statuses only.

Every function takes the :class:`~airflow_aisec.core.gates.endpoint._client.Prober` (which bounds and
pins the requests) and returns findings. The token is only ever put in a request header: no message,
location or metric is built from a header value, a response body or the token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_aisec.core.gates.endpoint._client import Prober, Response
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.result import Finding
from airflow_aisec.exceptions import ServiceUnavailableError

GATE = "endpoint"
REFUSED = (401, 403)
_MAX_LISTED = 50


def finding(check: str, severity: Severity, message: str, probes: Sequence[Mapping[str, Any]] = (),
            **location: Any) -> Finding:
    """A finding of rule ``endpoint.<check>`` listing at most 50 probes (method, path, status)."""
    loc = dict(location)
    if probes:
        loc["probes"] = [dict(p) for p in probes[:_MAX_LISTED]]
    return Finding(rule=f"{GATE}.{check}", severity=severity, message=message,
                   count=len(probes) or 1, location=loc)


def _probe(method: str, path: str, status: int | str) -> dict[str, Any]:
    return {"method": method, "path": path[:300], "status": status}


def _listing(probes: Sequence[Mapping[str, Any]]) -> str:
    shown = ", ".join(f"{p['method']} {p['path'][:80]} -> {p['status']}" for p in probes[:5])
    return shown + (f" and {len(probes) - 5} more" if len(probes) > 5 else "")


def check_auth(prober: Prober, targets: Iterable[tuple[str, str]], *, bad_headers: Mapping[str, str],
               rule_none: str, rule_bad: str, what: str) -> list[Finding]:
    """Every target must refuse (401/403) a request without credentials and one with a wrong token."""
    open_probes: list[dict[str, Any]] = []
    bad_probes: list[dict[str, Any]] = []
    for method, path in targets:
        bare = prober.request(method, path, read=0)
        if bare.status not in REFUSED:
            open_probes.append(_probe(method, path, bare.status))
        wrong = prober.request(method, path, headers=bad_headers, read=0)
        if wrong.status not in REFUSED:
            bad_probes.append(_probe(method, path, wrong.status))
    out = []
    if open_probes:
        out.append(finding(rule_none, Severity.CRITICAL,
                           f"{len(open_probes)} {what} answered a request without credentials with something "
                           f"other than 401/403: {_listing(open_probes)}", open_probes))
    if bad_probes:
        out.append(finding(rule_bad, Severity.CRITICAL,
                           f"{len(bad_probes)} {what} answered a request with a wrong token with something "
                           f"other than 401/403: {_listing(bad_probes)}", bad_probes))
    return out


def check_health(prober: Prober, method: str, path: str, headers: Mapping[str, str]) -> list[Finding]:
    """The health path answers 2xx with the valid token."""
    resp = prober.request(method, path, headers=headers, read=0)
    if 200 <= resp.status < 300:
        return []
    return [finding("health_failed", Severity.HIGH,
                    f"health path {method} {path[:80]} answered {resp.status} with the valid token (2xx expected)",
                    [_probe(method, path, resp.status)])]


def check_forbidden(prober: Prober, targets: Iterable[tuple[str, str]], headers: Mapping[str, str]) -> list[Finding]:
    """No forbidden (artefact, internal) path answers 2xx, even with the valid token."""
    served = []
    for method, path in targets:
        resp = prober.request(method, path, headers=headers, read=0)
        if 200 <= resp.status < 300:
            served.append(_probe(method, path, resp.status))
    if not served:
        return []
    return [finding("forbidden_path_served", Severity.CRITICAL,
                    f"{len(served)} forbidden path(s) are served: {_listing(served)}", served)]


def _cors_allows(resp: Response, origin: str) -> str | None:
    allow = resp.headers.get("access-control-allow-origin", "").strip()
    creds = resp.headers.get("access-control-allow-credentials", "").strip().lower() == "true"
    if not creds:
        return None
    if allow == "*":
        return "wildcard"
    if allow == origin:
        return "reflected"
    return None


def check_cors(prober: Prober, method: str, path: str, headers: Mapping[str, str], origin: str) -> list[Finding]:
    """Neither a simple request nor a preflight from a foreign origin is allowed with credentials."""
    simple = prober.request(method, path, headers={**headers, "Origin": origin}, read=0)
    preflight = prober.request("OPTIONS", path, read=0, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})
    hits = [(kind, how) for kind, how in (("simple", _cors_allows(simple, origin)),
                                          ("preflight", _cors_allows(preflight, origin))) if how]
    if not hits:
        return []
    how = sorted({h for _, h in hits})
    return [finding("cors_wildcard_credentials", Severity.HIGH,
                    f"CORS allows any origin ({' and '.join(how)}) together with credentials on {path[:80]}",
                    [_probe(method if kind == "simple" else "OPTIONS", path, "allowed") for kind, _ in hits],
                    allow_origin=how)]


def check_rate_limit(prober: Prober, method: str, path: str, headers: Mapping[str, str],
                     burst: int) -> tuple[list[Finding], int | None]:
    """Up to ``burst`` requests: the first 429 ends the burst. Returns findings and the 429's position."""
    for n in range(1, burst + 1):
        if prober.request(method, path, headers=headers, read=0).status == 429:
            return [], n
    return [finding("rate_limit_missing", Severity.MEDIUM,
                    f"no 429 within a burst of {burst} requests to {method} {path[:80]}",
                    [_probe(method, path, "no 429")], burst=burst)], None


def check_body_limit(prober: Prober, method: str, path: str, headers: Mapping[str, str],
                     max_bytes: int) -> list[Finding]:
    """A body one byte over ``max_bytes`` gets 413."""
    body = b"a" * (max_bytes + 1)
    try:
        status: int | str = prober.request(method, path, headers={**headers, "Content-Type": "application/octet-stream"},
                                           content=body, read=0).status
    except ServiceUnavailableError:
        status = "no response"  # the server dropped the upload without answering 413
    if status == 413:
        return []
    return [finding("body_limit_missing", Severity.MEDIUM,
                    f"a {max_bytes + 1}-byte body to {method} {path[:80]} got {status} (413 expected)",
                    [_probe(method, path, status)], max_bytes=max_bytes)]
