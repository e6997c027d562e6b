"""Endpoint gate: probe a model serving endpoint before it is promoted.

In this order, with a bounded number of requests (policy ``max_requests``) to that host only:

1. TLS (``endpoint.tls_required``, ``tls_certificate``, ``tls_hostname``, ``tls_version``): plain
   ``http://`` under ``require_tls``, the certificate chain against the CA bundle, the host name, and a
   handshake one version below the minimum. A failure here ends the run before any HTTP request:
   a server that is not the one it claims to be never receives the token.
2. The OpenAPI document (``openapi_path``), fetched once with the valid token; the requests its
   secured operations need are booked before the first probe.
3. Authentication (``endpoint.unauthenticated_access``, ``invalid_token_accepted``): every listed
   path refuses (401/403) a request without credentials and one with a random wrong token; every
   operation of the document that declares security likewise (``endpoint.openapi_unenforced``).
4. ``endpoint.health_failed``: the health path answers 2xx with the valid token.
5. ``endpoint.forbidden_path_served``: no artefact / internal path answers 2xx, even with the token.
6. ``endpoint.cors_wildcard_credentials``: no foreign origin allowed together with credentials.
7. ``endpoint.body_limit_missing``: a body over the limit gets 413.
8. ``endpoint.rate_limit_missing``: a burst sees a 429 (last, as it may trip the limiter).

Findings hold methods, paths, statuses and counts; never the token, a header value or a response
body. An unreachable endpoint is retryable (never a pass). The policy section is
:class:`~airflow_aisec.core.policy.sections.endpoint.EndpointPolicy`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from airflow_aisec.core.gates.endpoint import _probes as probes
from airflow_aisec.core.gates.endpoint._client import Prober, parse_endpoint
from airflow_aisec.core.gates.endpoint._openapi import parse_document, secured_operations
from airflow_aisec.core.gates.endpoint._tls import check_tls, verify_context
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.endpoint import EndpointPolicy, split_probe
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError

GATE = probes.GATE
#: Every rule id of the gate.
RULES = tuple(f"{GATE}.{r}" for r in (
    "tls_required", "tls_certificate", "tls_hostname", "tls_version", "unauthenticated_access",
    "invalid_token_accepted", "openapi_unenforced", "health_failed", "forbidden_path_served",
    "cors_wildcard_credentials", "body_limit_missing", "rate_limit_missing"))

__all__ = ["GATE", "RULES", "check_endpoint", "policy_base_dir"]


def policy_base_dir(source: str | None) -> str | None:
    """The directory a relative ``ca_bundle`` in a policy read from ``source`` is resolved against."""
    if not source or source.startswith(("<", "s3://")):
        return None
    return str(Path(source).parent)


def _auth_headers(section: EndpointPolicy, token: str) -> dict[str, str]:
    value = f"{section.auth.scheme} {token}" if section.auth.scheme else token
    return {section.auth.header: value}


def _check_token(token: str | None) -> str | None:
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError("the endpoint token is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token) or not token.isascii():
        raise ConfigurationError("the endpoint token holds characters a header cannot carry")
    return token


def _ca_path(section: EndpointPolicy, ca_bundle: str | None, base_dir: str | Path | None) -> str | None:
    if ca_bundle:
        return str(ca_bundle)
    if section.ca_bundle:
        path = Path(section.ca_bundle)
        return str(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)
    return None


def check_endpoint(
    section: EndpointPolicy,
    url: str,
    *,
    token: str | None = None,
    ca_bundle: str | None = None,
    base_dir: str | Path | None = None,
) -> CheckOutcome:
    """The endpoint gate's core check.

    Args:
        section: The ``endpoint`` policy section.
        url: The endpoint's base URL (``https://host[:port][/base]``); probe paths are appended to it.
        token: The valid token (needed when the policy lists authenticated paths); only ever sent in the
            policy's auth header, to this host, after the certificate verified.
        ca_bundle: PEM file of trusted CAs (overrides the policy's ``ca_bundle``).
        base_dir: Directory a relative ``ca_bundle`` in the policy is resolved against (the policy's).

    Returns:
        Findings, metrics (requests sent, TLS version, probes per check) and the endpoint as input.

    Raises:
        InputDataError / ConfigurationError: a bad URL, token, CA bundle, OpenAPI document or a plan
            over the request budget.
        ServiceUnavailableError: the endpoint cannot be reached (retryable).
    """
    endpoint = parse_endpoint(url)
    token = _check_token(token)
    if token is None and section.auth.paths:
        raise ConfigurationError("the endpoint policy lists authenticated paths: the valid token is required "
                                 "(from Vault, a connection or --token-env)")
    metrics: dict[str, object] = {"endpoint": endpoint.origin}
    findings: list[Finding] = []

    def outcome() -> CheckOutcome:
        metrics.setdefault("requests_sent", prober.sent)
        return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=endpoint.url(""))])

    prober = Prober(endpoint, section.max_requests, section.timeout_seconds,
                    max_body=section.max_response_bytes)

    if endpoint.scheme == "http":
        if section.require_tls:
            findings.append(probes.finding("tls_required", Severity.CRITICAL,
                                           f"{endpoint.origin} is plain http but the policy requires TLS; "
                                           "no request was sent with the token"))
            return outcome()
    else:
        ctx = verify_context(_ca_path(section, ca_bundle, base_dir), verify_hostname=section.verify_hostname,
                             min_version=section.min_tls_version)
        prober.verify = ctx
        prober.reserve(2, "TLS handshakes")
        tls = check_tls(endpoint, ctx, min_version=section.min_tls_version, timeout=section.timeout_seconds)
        metrics.update(tls_version=tls.version, tls_below_min=tls.below_min)
        for rule, message in tls.problems:
            findings.append(probes.finding(rule, Severity.CRITICAL, message))
        if not tls.trusted:
            return outcome()

    good = _auth_headers(section, token) if token is not None else {}
    wrong_token = "aisec-invalid-" + secrets.token_hex(16)
    bad = _auth_headers(section, wrong_token)
    auth_targets = [split_probe(p) for p in section.auth.paths]
    forbidden = [split_probe(p) for p in section.forbidden_paths]
    health = split_probe(section.health_path) if section.health_path else None
    prober.reserve(2 * len(auth_targets) + len(forbidden) + (1 if health else 0)
                   + (1 if section.openapi_path else 0) + (2 if section.cors.check else 0)
                   + (1 if section.body_limit else 0) + (section.rate_limit.burst if section.rate_limit else 0),
                   "the policy's probes")

    with prober.session():
        operations = []
        if section.openapi_path:
            method, path = split_probe(section.openapi_path)
            resp = prober.request(method, path, headers=good, read=section.openapi.max_document_bytes)
            metrics["openapi_status"] = resp.status
            if 200 <= resp.status < 300:
                doc = parse_document(resp.body, truncated=resp.truncated, limit=section.openapi.max_document_bytes)
                operations, total = secured_operations(doc, methods=section.openapi.methods,
                                                       parameter=section.openapi.path_parameter,
                                                       limit=section.openapi.max_operations)
                metrics.update(openapi_operations=total, openapi_secured_probed=len(operations))
                prober.reserve(2 * len(operations), "the OpenAPI operations that declare security")

        findings += probes.check_auth(prober, auth_targets, bad_headers=bad, rule_none="unauthenticated_access",
                                      rule_bad="invalid_token_accepted", what="authenticated path(s)")
        if operations:
            found = probes.check_auth(prober, [(o.method, o.path) for o in operations], bad_headers=bad,
                                      rule_none="openapi_unenforced", rule_bad="openapi_unenforced",
                                      what="OpenAPI operation(s) declaring security")
            findings += _merge(found)
        if health:
            findings += probes.check_health(prober, *health, good)
        findings += probes.check_forbidden(prober, forbidden, good)
        if section.cors.check:
            method, path = health or auth_targets[0]
            findings += probes.check_cors(prober, method, path, good, section.cors.probe_origin)
        if section.body_limit:
            findings += probes.check_body_limit(prober, *section.body_limit.probe(), good,
                                                section.body_limit.max_bytes)
        if section.rate_limit:
            method, path = split_probe(section.rate_limit.path) if section.rate_limit.path else health
            found, position = probes.check_rate_limit(prober, method, path, good, section.rate_limit.burst)
            findings += found
            metrics["rate_limited_after"] = position
    metrics.update(auth_paths=len(auth_targets), forbidden_paths=len(forbidden))
    return outcome()


def _merge(found: list[Finding]) -> list[Finding]:
    """One ``openapi_unenforced`` finding for both probe kinds (without credentials, wrong token)."""
    if len(found) < 2:
        return found
    first, second = found
    probes_all = [*first.location.get("probes", []), *second.location.get("probes", [])]
    message = f"{first.message}; {second.message}"
    return [first.model_copy(update={"message": message, "count": first.count + second.count,
                                     "location": {"probes": probes_all[:50]}})]
