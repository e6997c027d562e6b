"""Endpoint gate core: real serving processes on loopback (FastAPI/uvicorn), HTTPS with a CA made in the test."""

from __future__ import annotations

import json

import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.endpoint import RULES, check_endpoint
from airflow_aisec.core.gates.endpoint._client import parse_endpoint
from airflow_aisec.core.gates.endpoint._openapi import declares_security, secured_operations
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, PolicyError, ServiceUnavailableError
from tests.helpers.net import free_port
from tests.helpers.serving import make_pki, running_serving

TOKEN = "svc-token-Zq81PLANTED-endpoint"

POLICY = """
name: t
endpoint:
  require_tls: true
  min_tls_version: "{min_tls}"
  auth: {{paths: ["POST /v1/predict", "/v1/models"]}}
  health_path: /healthz
  openapi_path: /openapi.json
  forbidden_paths: [/model, /download, /files, /.git/config, /debug, /docs]
  rate_limit: {{burst: 30}}
  body_limit: {{path: /v1/predict, max_bytes: 1048576}}
"""


def section(min_tls: str = "1.2", **overrides):
    loaded = parse_policy(POLICY.format(min_tls=min_tls).encode())
    sec = loaded.section("endpoint")
    return sec.model_copy(update=overrides) if overrides else sec


def rules(outcome) -> set[str]:
    return {f.rule for f in outcome.findings}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def hardened(pki):
    with running_serving("hardened", TOKEN, pki=pki, tls_min="1.3") as server:
        yield server


@pytest.fixture(scope="module")
def insecure(pki):
    with running_serving("insecure", TOKEN, pki=pki, tls_max="1.2") as server:
        yield server


# ------------------------------------------------------------------------------------------
# Units: URL, policy, OpenAPI
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["", "ftp://h/x", "https://user:pw@h/", "https://h/?q=1", "https://h/#f",
                                 "https://h /x", "https:///x", "https://h:99999/"])
def test_bad_urls_are_input_errors(url):
    with pytest.raises(InputDataError):
        parse_endpoint(url)


def test_url_keeps_base_path_and_default_port():
    ep = parse_endpoint("https://models.example/churn/")
    assert (ep.port, ep.base_path, ep.url("/healthz")) == (443, "/churn", "https://models.example:443/churn/healthz")


@pytest.mark.parametrize("body", [
    "endpoint: {auth: {paths: ['//evil.example/x']}}",
    "endpoint: {auth: {paths: ['FETCH /x']}}",
    "endpoint: {forbidden_paths: ['model']}",
    "endpoint: {auth: {header: 'Bad Header'}}",
    "endpoint: {min_tls_version: '1.0'}",
    "endpoint: {rate_limit: {burst: 5}}",
    "endpoint: {max_requests: true}",
])
def test_invalid_endpoint_policies_are_refused(body):
    with pytest.raises(PolicyError) as info:
        parse_policy(f"name: t\n{body}\n".encode())
    assert "endpoint" in str(info.value)


def test_openapi_security_declaration():
    doc = {"security": [{"bearer": []}], "paths": {
        "/a": {"get": {}},                                     # inherits the document's security
        "/b": {"get": {"security": []}},                       # explicitly public
        "/c/{id}": {"post": {"security": [{}, {"bearer": []}]}},  # optional auth: not declared
        "/d/{id}": {"delete": {"security": [{"bearer": []}]}, "get": {"security": [{"bearer": []}]}},
    }}
    assert declares_security(doc["paths"]["/a"]["get"], doc)
    assert not declares_security(doc["paths"]["/b"]["get"], doc)
    ops, total = secured_operations(doc, methods=["GET", "POST"], parameter="p", limit=10)
    assert total == 5
    assert [(o.method, o.path) for o in ops] == [("GET", "/a"), ("GET", "/d/p")]
    with pytest.raises(InputDataError, match="max_operations"):
        secured_operations(doc, methods=["GET"], parameter="p", limit=1)
    with pytest.raises(InputDataError, match="plain path"):
        secured_operations({"paths": {"//evil.example/x": {"get": {"security": [{"b": []}]}}}},
                           methods=["GET"], parameter="p", limit=10)


# ------------------------------------------------------------------------------------------
# Real servers
# ------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_hardened_endpoint_passes(hardened, pki):
    hardened.reset(pki.ca)
    out = check_endpoint(section("1.3"), hardened.url, token=TOKEN, ca_bundle=str(pki.ca))
    assert out.findings == [], [f.message for f in out.findings]
    m = out.metrics
    assert m["tls_version"] == "TLSv1.3" and m["tls_below_min"] == "refused"
    assert m["openapi_secured_probed"] >= 4 and m["rate_limited_after"] is not None
    assert m["requests_sent"] <= section().max_requests


@pytest.mark.integration
def test_insecure_endpoint_breaks_every_http_rule(insecure, pki):
    out = check_endpoint(section("1.2"), insecure.url, token=TOKEN, ca_bundle=str(pki.ca))
    assert rules(out) == {"endpoint.unauthenticated_access", "endpoint.invalid_token_accepted",
                          "endpoint.openapi_unenforced", "endpoint.forbidden_path_served",
                          "endpoint.cors_wildcard_credentials", "endpoint.body_limit_missing",
                          "endpoint.rate_limit_missing"}
    by_rule = {f.rule: f for f in out.findings}
    assert {p["path"] for p in by_rule["endpoint.unauthenticated_access"].location["probes"]} == {"/v1/predict"}
    assert {p["path"] for p in by_rule["endpoint.invalid_token_accepted"].location["probes"]} == {
        "/v1/predict", "/v1/models"}
    assert "/v1/admin" in {p["path"] for p in by_rule["endpoint.openapi_unenforced"].location["probes"]}
    assert {p["path"] for p in by_rule["endpoint.forbidden_path_served"].location["probes"]} == {
        "/model", "/.git/config", "/debug", "/docs"}
    assert all(rule in RULES for rule in rules(out))
    assert TOKEN not in out.model_dump_json()


@pytest.mark.integration
def test_tls_below_the_minimum_is_a_finding_and_no_token_is_sent(insecure, pki):
    out = check_endpoint(section("1.3"), insecure.url, token=TOKEN, ca_bundle=str(pki.ca))
    assert rules(out) == {"endpoint.tls_version"}
    assert out.metrics["requests_sent"] == 0


@pytest.mark.integration
def test_unknown_ca_and_wrong_hostname(hardened, pki, tmp_path):
    out = check_endpoint(section("1.3"), hardened.url, token=TOKEN, ca_bundle=str(pki.other_ca))
    assert rules(out) == {"endpoint.tls_certificate"} and out.metrics["requests_sent"] == 0
    # The certificate names 127.0.0.1 and localhost: reached as [::1]/another name it must not verify.
    other = make_pki(tmp_path / "pki2", names=("models.example",))
    with running_serving("hardened", TOKEN, pki=other, tls_min="1.3") as server:
        out = check_endpoint(section("1.3"), server.url, token=TOKEN, ca_bundle=str(other.ca))
    assert rules(out) == {"endpoint.tls_hostname"}
    assert out.metrics["requests_sent"] == 0
    with running_serving("hardened", TOKEN, pki=other, tls_min="1.3") as server:
        relaxed = section("1.3", verify_hostname=False, rate_limit=None)
        assert check_endpoint(relaxed, server.url, token=TOKEN, ca_bundle=str(other.ca)).findings == []


@pytest.mark.integration
def test_tls_1_1_accepted_below_a_1_2_minimum(pki):
    with running_serving("hardened", TOKEN, pki=pki, tls_min="1.1", tls_max="1.3") as server:
        out = check_endpoint(section("1.2", rate_limit=None), server.url, token=TOKEN, ca_bundle=str(pki.ca))
    assert out.metrics["tls_below_min"] == "accepted"
    assert rules(out) == {"endpoint.tls_version"}


@pytest.mark.integration
def test_plain_http_under_require_tls_sends_nothing(tmp_path):
    with running_serving("hardened", TOKEN) as server:
        out = check_endpoint(section(), server.url, token=TOKEN)
        assert rules(out) == {"endpoint.tls_required"} and out.metrics["requests_sent"] == 0
        server.reset()
        plain = section(require_tls=False)
        assert check_endpoint(plain, server.url, token=TOKEN).findings == []


@pytest.mark.integration
def test_request_budget_is_enforced_before_probing(hardened, pki):
    small = section("1.3", max_requests=20)
    with pytest.raises(InputDataError, match="max_requests"):
        check_endpoint(small, hardened.url, token=TOKEN, ca_bundle=str(pki.ca))


def test_unreachable_endpoint_is_retryable():
    url = f"https://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailableError):
        check_endpoint(section(), url, token=TOKEN)
    loaded = parse_policy(POLICY.format(min_tls="1.2").encode())
    run = run_check("endpoint", loaded, lambda: check_endpoint(loaded.section("endpoint"), url, token=TOKEN))
    assert run.result.verdict == "error" and run.retryable


def test_missing_token_and_bad_token_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="token is required"):
        check_endpoint(section(), "https://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as info:
        check_endpoint(section(), "https://127.0.0.1:1", token="abc\r\nX-Injected: 1")
    assert "abc" not in str(info.value)


def test_missing_ca_bundle_is_an_input_error(tmp_path):
    with pytest.raises(InputDataError, match="CA bundle not found"):
        check_endpoint(section(), "https://127.0.0.1:1", token=TOKEN, ca_bundle=str(tmp_path / "none.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(InputDataError, match="no usable PEM"):
        check_endpoint(section(), "https://127.0.0.1:1", token=TOKEN, ca_bundle=str(junk))


@pytest.mark.integration
def test_result_never_holds_the_token(insecure, pki):
    loaded = parse_policy(POLICY.format(min_tls="1.2").encode())
    run = run_check("endpoint", loaded, lambda: check_endpoint(loaded.section("endpoint"), insecure.url,
                                                               token=TOKEN, ca_bundle=str(pki.ca)))
    text = json.dumps(run.result.to_dict())
    assert run.result.verdict == "fail"
    assert TOKEN not in text and "PLANTED" not in text
