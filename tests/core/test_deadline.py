"""core/io/deadline.py: a request to an endpoint ends within its time limit, however slowly the endpoint
answers (a byte of its headers, body or TLS handshake every 0.25 s, inside every per-read timeout).

Each trickle would last 100 s; the tests' timeout marker (30 s) is the bound, not a timed assertion.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from airflow_aisec.core.io.deadline import DeadlineExceeded, bounded_transport, within
from airflow_aisec.exceptions import ServiceUnavailableError
from tests.helpers.trickle import running_trickler

pytestmark = pytest.mark.timeout(30)


def _client() -> httpx.Client:
    return httpx.Client(transport=bounded_transport(trust_env=False), timeout=5.0, trust_env=False)


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickled_answer_ends_at_the_deadline(mode):
    with running_trickler(mode) as port, _client() as client, pytest.raises(DeadlineExceeded), within(1.0), \
            client.stream("GET", f"http://127.0.0.1:{port}/") as response:
        for _ in response.iter_bytes():
            pass


def test_prompt_answers_are_untouched():
    from tests.helpers.webhook_sink import running_sink

    with running_sink() as sink, _client() as client:
        for _ in range(3):  # one kept-alive connection, watched by each request in turn
            with within(5.0):
                assert client.post(sink.url, json={"a": 1}).status_code == 204
        assert len(sink.requests) == 3


def test_a_socket_given_to_within_is_watched_too():
    with running_trickler("tls") as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        with sock, pytest.raises(DeadlineExceeded), within(1.0, sock):
            while sock.recv(1):
                pass


def test_the_endpoint_gate_times_out_a_trickled_answer_and_tls_handshake():
    from airflow_aisec.core.gates.endpoint import check_endpoint
    from airflow_aisec.core.policy import parse_policy

    def section(tls: bool):
        text = (f"version: 1\nname: t\nendpoint:\n  require_tls: {str(tls).lower()}\n  timeout_seconds: 1\n"
                "  health_path: /healthz\n  max_requests: 10\n")
        return parse_policy(text.encode()).section("endpoint")

    with running_trickler("headers") as port, \
            pytest.raises(ServiceUnavailableError, match=r"timed out on GET /healthz \(limit 1s\)"):
        check_endpoint(section(False), f"http://127.0.0.1:{port}")
    with running_trickler("tls") as port, \
            pytest.raises(ServiceUnavailableError, match="did not finish the TLS handshake within 1s"):
        check_endpoint(section(True), f"https://127.0.0.1:{port}", token="t")


def test_the_red_team_client_counts_a_trickled_answer_as_a_timeout():
    from airflow_aisec.core.gates.llm_redteam._client import HttpTarget, ProbeError
    from airflow_aisec.core.policy.sections.llm_redteam import LlmRedTeamPolicy

    with running_trickler("body") as port:
        target = HttpTarget(f"http://127.0.0.1:{port}/v1/chat/completions", LlmRedTeamPolicy(), model=None, token=None)
        try:
            with pytest.raises(ProbeError, match="timeout"):
                target([{"role": "user", "content": "hi"}], 1.0)
        finally:
            target.close()
